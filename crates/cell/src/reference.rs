//! The plain per-edge form of the search cell (DARTS `model_search.py`): one module per op and
//! edge, each edge's mixed op computed on its own. Not used by the search; it is the reference
//! the equivalence tests compare [`crate::MixedOp`] and [`crate::SearchCell`] against (after
//! [`crate::SearchCell::copy_from_reference`] gives both the same weights), and the benchmark's
//! baseline.

use tch::{nn, Tensor};

use crate::cell::edges_from;
use crate::cell::{SearchCell, SearchCellConfig};
use crate::edges::{block_inputs, edge_index};
use crate::mixed::MixedOp;
use crate::ops::{Op, OpConfig, OpStyle, ReluConvBn};
use crate::primitive::Primitive;

/// The seven non-zero search-time ops of one edge, each its own module (built from the op
/// registry through [`OpConfig`]), mixed by that edge's row of softmax(α).
#[derive(Debug)]
pub struct ReferenceMixedOp {
    ops: Vec<Op>,
    /// K of partial channel connections ([`crate::partial`]); 1: every channel.
    partial: i64,
}

impl ReferenceMixedOp {
    /// The ops of one edge at `channels` channels (`channels / k` with partial channel
    /// connections), one sub-path per op name.
    pub fn new(p: &nn::Path, channels: i64, k: i64) -> ReferenceMixedOp {
        let channels = channels / k;
        let ops = Primitive::ALL
            .iter()
            .filter_map(|&primitive| {
                OpConfig { primitive, channels, stride: 1, style: OpStyle::Search }.build(&(p / primitive.name()))
            })
            .collect();
        ReferenceMixedOp { ops, partial: k }
    }

    /// The op of `primitive` (panics for `none`, which has none).
    pub fn op(&self, primitive: Primitive) -> &Op {
        self.ops.iter().find(|op| op.primitive() == primitive).expect("every primitive but none is built")
    }

    /// `xs`: `[N, C, H, W]`; `weights`: `[8]`, this edge's row of softmax(α). Returns
    /// `[N, C, H, W]`, `sum_k weights[k] * O_k(xs)`.
    pub fn forward_t(&self, xs: &Tensor, weights: &Tensor, train: bool) -> Tensor {
        let input = match self.partial {
            1 => xs.shallow_clone(),
            k => crate::partial::processed(xs, k),
        };
        let mixed = self
            .ops
            .iter()
            .map(|op| op.forward_grouped(&input, None, train, 1) * weights.get(op.primitive().index() as i64))
            .reduce(|a, b| a + b)
            .expect("seven non-zero ops");
        match self.partial {
            1 => mixed,
            k => crate::partial::join(&mixed, xs, k, 1),
        }
    }
}

/// Gives `mixed` (the production op of `ops.len()` edges leaving one state) the weights of
/// `ops`, the per-edge reference ops of those edges in edge order.
pub fn ops_into(ops: &[&ReferenceMixedOp], mixed: &MixedOp) {
    assert_eq!(ops.len(), mixed.edges(), "one reference op per edge");
    for (slot, reference) in ops.iter().enumerate() {
        for op in &reference.ops {
            mixed.set_edge_weights(slot as i64, op.primitive(), &op.conv_weights());
        }
    }
}

/// A search cell computed edge by edge and transition by transition. Same variables for the
/// preprocessing as [`crate::SearchCell`]; the edges are `edge<e>/<primitive>/…`.
#[derive(Debug)]
pub struct ReferenceCell {
    pub(crate) config: SearchCellConfig,
    pub(crate) prev_prev: Option<ReluConvBn>,
    pub(crate) prev: ReluConvBn,
    /// One mixed op per edge in DARTS order; `None` where the input is an absent H^{l-2}.
    pub(crate) edges: Vec<Option<ReferenceMixedOp>>,
}

impl ReferenceCell {
    /// Builds the reference form of `config` under `p`.
    pub fn new(config: &SearchCellConfig, p: &nn::Path) -> ReferenceCell {
        let prev_prev =
            config.prev_prev_channels.map(|c| ReluConvBn::new(&(p / "preprocess0"), c, config.channels, 1, 1, false));
        let prev = ReluConvBn::new(&(p / "preprocess1"), config.prev_channels, config.channels, 1, 1, false);
        let mut edges = Vec::new();
        for block in 0..config.blocks {
            for input in 0..block_inputs(block) {
                let present = input != 0 || prev_prev.is_some();
                let edge = edge_index(block, input);
                edges.push(present.then(|| {
                    ReferenceMixedOp::new(&(p / format!("edge{edge}")), config.channels, config.partial_channels)
                }));
            }
        }
        ReferenceCell { config: *config, prev_prev, prev, edges }
    }

    /// Gives `cell`, the production form of the same configuration, this reference's weights,
    /// so that both compute the same function (for the equivalence tests).
    pub fn copy_into(&self, cell: &SearchCell) {
        assert_eq!(cell.config(), &self.config, "copy into the cell of the same configuration");
        let (prev_prev, prev) = cell.preprocess();
        if let (Some(a), Some(b)) = (prev_prev, &self.prev_prev) {
            a.copy_from(b);
        }
        prev.copy_from(&self.prev);
        for input in 0..self.config.blocks + 2 {
            let Some(mixed) = cell.mixed_op(input) else { continue };
            let (count, first) = edges_from(input, self.config.blocks);
            let ops: Vec<&ReferenceMixedOp> =
                (first..first + count).map(|b| self.edges[edge_index(b, input)].as_ref().expect("present")).collect();
            ops_into(&ops, mixed);
        }
    }

    /// What [`crate::SearchCell::forward_transitions`] computes, one transition at a time:
    /// `[T * N, B * C, H, W]`, transition-major.
    pub fn forward_transitions(
        &self,
        prev_prev: Option<&Tensor>,
        prevs: &[Tensor],
        alpha_weights: &Tensor,
        train: bool,
    ) -> Tensor {
        let outputs: Vec<Tensor> = prevs
            .iter()
            .map(|prev| {
                let mut states: Vec<Option<Tensor>> = vec![
                    self.prev_prev.as_ref().zip(prev_prev).map(|(pre, x)| pre.forward_grouped(x, train, 1)),
                    Some(self.prev.forward_grouped(prev, train, 1)),
                ];
                for block in 0..self.config.blocks {
                    let sum = (0..block_inputs(block))
                        .filter_map(|input| {
                            let edge = edge_index(block, input);
                            let op = self.edges[edge].as_ref()?;
                            let x = states[input].as_ref().expect("present inputs have states");
                            Some(op.forward_t(x, &alpha_weights.get(edge as i64), train))
                        })
                        .reduce(|a, b| a + b)
                        .expect("every block has H^(l-1) as an input");
                    states.push(Some(sum));
                }
                let blocks: Vec<Tensor> = states.drain(2..).flatten().collect();
                Tensor::cat(&blocks, 1)
            })
            .collect();
        Tensor::cat(&outputs, 0)
    }
}
