//! The fixed (deployable) cell built from a [`Genotype`] (paper §4.3, §5.2; official TF
//! `nas_cell.py`, facts §7).
//!
//! Construction as in the official code:
//! - H^{l-1} goes through ReLU, 1x1 conv, BN to C channels.
//! - H^{l-2} is resized bilinearly to H^{l-1}'s size when they differ, then goes through ReLU,
//!   1x1 conv, BN only when its channel count differs from C.
//! - Each block sums its two edges; every edge applies its own op to its own input, whatever
//!   order the genotype lists them in. A cell that moves one level coarser (stride 2) applies
//!   stride 2 in the ops that read H^{l-2} or H^{l-1}; ops on earlier blocks use stride 1.
//! - The output is the concatenation of the B blocks, `B * C` channels.
//!
//! Ops use the deployed definitions ([`OpStyle::Deployed`]): BN with scale and offset, full
//! (non-separable) atrous convolutions.

use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::genotype::{CellEdge, Genotype};
use crate::ops::{Op, OpConfig, OpStyle, ReluConvBn};

/// Shape of one deployable cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedCellConfig {
    /// Which op each block applies to which input.
    pub genotype: Genotype,
    /// Channels of every block, C (`F * s / 4` at downsample rate s).
    pub channels: i64,
    /// Channels of H^{l-2}.
    pub prev_prev_channels: i64,
    /// Channels of H^{l-1}.
    pub prev_channels: i64,
    /// 2 when the cell moves one level coarser than H^{l-1}, else 1.
    pub stride: i64,
}

impl FixedCellConfig {
    /// Output channels, `B * C`.
    pub fn out_channels(&self) -> i64 {
        self.genotype.num_blocks() as i64 * self.channels
    }

    /// Builds the cell under `p`.
    pub fn build(&self, p: &nn::Path) -> FixedCell {
        let c = self.channels;
        let prev_prev = (self.prev_prev_channels != c)
            .then(|| ReluConvBn::new(&(p / "prev_1x1"), self.prev_prev_channels, c, 1, 1, true));
        let prev = ReluConvBn::new(&(p / "1x1"), self.prev_channels, c, 1, 1, true);
        let blocks = self
            .genotype
            .blocks()
            .iter()
            .enumerate()
            .map(|(block, edges)| {
                let build = |slot: usize, edge: &CellEdge| {
                    let stride = if edge.input < 2 { self.stride } else { 1 };
                    let config = OpConfig { primitive: edge.op, channels: c, stride, style: OpStyle::Deployed };
                    let op = config
                        .build(&(p / format!("block{block}") / format!("edge{slot}")))
                        .expect("a genotype never holds `none`");
                    (edge.input, op)
                };
                [build(0, &edges[0]), build(1, &edges[1])]
            })
            .collect();
        FixedCell { config: self.clone(), prev_prev, prev, blocks }
    }
}

/// A deployable cell. See the module documentation.
#[derive(Debug)]
pub struct FixedCell {
    config: FixedCellConfig,
    prev_prev: Option<ReluConvBn>,
    prev: ReluConvBn,
    /// Per block, its two edges as (input in DARTS numbering, op).
    blocks: Vec<[(usize, Op); 2]>,
}

impl FixedCell {
    /// The configuration the cell was built from.
    pub fn config(&self) -> &FixedCellConfig {
        &self.config
    }

    /// Whether H^{l-2} goes through its own 1x1 conv (its channels differ from C).
    pub fn preprocesses_prev_prev(&self) -> bool {
        self.prev_prev.is_some()
    }

    /// Every edge as `(block, input, op)`, blocks in order, each block's edges as listed.
    pub fn edges(&self) -> Vec<(usize, usize, crate::Primitive)> {
        self.blocks
            .iter()
            .enumerate()
            .flat_map(|(block, edges)| edges.iter().map(move |(input, op)| (block, *input, op.primitive())))
            .collect()
    }

    /// `prev_prev`: H^{l-2} `[N, C_pp, H', W']` (any size: it is resized to H^{l-1}'s);
    /// `prev`: H^{l-1} `[N, C_p, H, W]`. Returns `[N, B * C, H_out, W_out]` with
    /// `H_out = H` at stride 1 and `(H - 1) / 2 + 1` at stride 2.
    pub fn forward_t(&self, prev_prev: &Tensor, prev: &Tensor, train: bool) -> Tensor {
        self.forward_drop_path(prev_prev, prev, train, 1.0)
    }

    /// [`FixedCell::forward_t`] with drop path (Zoph et al., CVPR 2018; paper §5.2): in training,
    /// every edge output except `skip_connect` is zeroed per image with probability
    /// `1 - keep_prob` and otherwise scaled by `1 / keep_prob`, as the official code does.
    pub fn forward_drop_path(&self, prev_prev: &Tensor, prev: &Tensor, train: bool, keep_prob: f64) -> Tensor {
        let (_, _, h, w) = prev.size4().expect("H^(l-1) is [N, C, H, W]");
        let (_, _, hp, wp) = prev_prev.size4().expect("H^(l-2) is [N, C, H, W]");
        let resized;
        let prev_prev = if (hp, wp) != (h, w) {
            resized = prev_prev.upsample_bilinear2d([h, w], true, None, None);
            &resized
        } else {
            prev_prev
        };
        let mut states = Vec::with_capacity(2 + self.blocks.len());
        states.push(match &self.prev_prev {
            Some(pre) => pre.forward_t(prev_prev, train),
            None => prev_prev.shallow_clone(),
        });
        states.push(self.prev.forward_t(prev, train));
        let drop = train && keep_prob < 1.0;
        let edge = |input: usize, op: &Op, states: &[Tensor]| {
            let y = op.forward_t(&states[input], train);
            if drop && op.primitive() != crate::Primitive::SkipConnect {
                let n = y.size()[0];
                let mask = Tensor::rand([n, 1, 1, 1], (y.kind(), y.device())).ge(1.0 - keep_prob).to_kind(y.kind());
                y * mask / keep_prob
            } else {
                y
            }
        };
        for [(left_input, left), (right_input, right)] in &self.blocks {
            let output = edge(*left_input, left, &states) + edge(*right_input, right, &states);
            states.push(output);
        }
        Tensor::cat(&states[2..], 1)
    }
}
