//! The search cell (paper §3.1, Fig. 1 left; DARTS `model_search.py`).
//!
//! A cell of B blocks takes H^{l-2} and H^{l-1} (already resampled to the cell's resolution),
//! brings each to C channels with ReLU, 1x1 conv, BN, and computes block `i` as the sum of
//! mixed ops over its `2 + i` inputs (H^{l-2}, H^{l-1}, blocks 0..i). The output is the
//! concatenation of the B blocks, `B * C` channels. When H^{l-2} does not exist (the first
//! layers of the network), its edges drop out. The cell never owns α: its forward takes the
//! softmaxed α, computed once per network forward.

use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::edges::{block_inputs, edge_index, num_edges};
use crate::mixed::MixedOp;
use crate::ops::ReluConvBn;
use crate::primitive::Primitive;

/// Shape of one search cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchCellConfig {
    /// Blocks per cell, B >= 1.
    pub blocks: usize,
    /// Channels of every block, C (`F * s / 4` at downsample rate s).
    pub channels: i64,
    /// Channels of H^{l-2}; `None` when the cell has no H^{l-2} input.
    pub prev_prev_channels: Option<i64>,
    /// Channels of H^{l-1}.
    pub prev_channels: i64,
}

impl Default for SearchCellConfig {
    fn default() -> Self {
        SearchCellConfig { blocks: 5, channels: 8, prev_prev_channels: Some(40), prev_channels: 40 }
    }
}

impl SearchCellConfig {
    /// Output channels, `B * C`.
    pub fn out_channels(&self) -> i64 {
        self.blocks as i64 * self.channels
    }

    /// Builds the cell's weights under `p` (a path of the weight VarStore).
    pub fn build(&self, p: &nn::Path) -> SearchCell {
        assert!(self.blocks >= 1, "a cell needs at least one block");
        let prev_prev =
            self.prev_prev_channels.map(|c| ReluConvBn::new(&(p / "preprocess0"), c, self.channels, 1, 1, false));
        let prev = ReluConvBn::new(&(p / "preprocess1"), self.prev_channels, self.channels, 1, 1, false);
        let mut edges: Vec<Option<MixedOp>> = Vec::with_capacity(num_edges(self.blocks));
        for block in 0..self.blocks {
            for input in 0..block_inputs(block) {
                let present = input != 0 || prev_prev.is_some();
                let edge = edge_index(block, input);
                edges.push(present.then(|| MixedOp::new(&(p / format!("edge{edge}")), self.channels)));
            }
        }
        SearchCell { config: *self, prev_prev, prev, edges }
    }
}

/// A search cell's weights. See the module documentation.
#[derive(Debug)]
pub struct SearchCell {
    config: SearchCellConfig,
    prev_prev: Option<ReluConvBn>,
    prev: ReluConvBn,
    /// One mixed op per edge in DARTS order; `None` where the input is an absent H^{l-2}.
    edges: Vec<Option<MixedOp>>,
}

impl SearchCell {
    /// The configuration the cell was built from.
    pub fn config(&self) -> &SearchCellConfig {
        &self.config
    }

    /// `prev_prev`: H^{l-2} `[N, C_pp, H, W]` (required exactly when the cell was built with
    /// `prev_prev_channels`); `prev`: H^{l-1} `[N, C_p, H, W]`; `alpha_weights`: softmax(α),
    /// `[edges, 8]`. Returns `[N, B * C, H, W]`.
    pub fn forward_t(&self, prev_prev: Option<&Tensor>, prev: &Tensor, alpha_weights: &Tensor, train: bool) -> Tensor {
        let expected_rows = num_edges(self.config.blocks) as i64;
        assert_eq!(
            alpha_weights.size(),
            [expected_rows, Primitive::COUNT as i64],
            "softmax(α) must be [edges, 8] for a cell of {} blocks",
            self.config.blocks
        );
        let mut states: Vec<Option<Tensor>> = Vec::with_capacity(2 + self.config.blocks);
        states.push(match (&self.prev_prev, prev_prev) {
            (Some(pre), Some(x)) => Some(pre.forward_t(x, train)),
            (None, None) => None,
            (Some(_), None) => panic!("cell built with an H^(l-2) input was called without one"),
            (None, Some(_)) => panic!("cell built without an H^(l-2) input was called with one"),
        });
        states.push(Some(self.prev.forward_t(prev, train)));
        for block in 0..self.config.blocks {
            let output = (0..block_inputs(block))
                .filter_map(|input| {
                    let edge = edge_index(block, input);
                    let op = self.edges[edge].as_ref()?;
                    let x = states[input].as_ref()?;
                    Some(op.forward_t(x, &alpha_weights.get(edge as i64), train))
                })
                .reduce(|acc, term| acc + term)
                .expect("every block has H^(l-1) as an input");
            states.push(Some(output));
        }
        let blocks: Vec<Tensor> = states.drain(2..).map(|s| s.expect("blocks are computed")).collect();
        Tensor::cat(&blocks, 1)
    }
}
