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
    /// Partial channel connections (PC-DARTS, [`crate::partial`]): only `channels / K` of
    /// every edge's input channels go through its mixed op; 1 (the default): all of them.
    #[serde(default = "every_channel")]
    pub partial_channels: i64,
}

fn every_channel() -> i64 {
    1
}

impl Default for SearchCellConfig {
    fn default() -> Self {
        SearchCellConfig {
            blocks: 5,
            channels: 8,
            prev_prev_channels: Some(40),
            prev_channels: 40,
            partial_channels: 1,
        }
    }
}

/// Number of edges leaving input `input` (DARTS numbering) of a cell of `blocks` blocks, and
/// the first block they feed.
pub fn edges_from(input: usize, blocks: usize) -> (usize, usize) {
    let first = input.saturating_sub(1);
    (blocks - first, first)
}

impl SearchCellConfig {
    /// Output channels, `B * C`.
    pub fn out_channels(&self) -> i64 {
        self.blocks as i64 * self.channels
    }

    /// Builds the cell's weights under `p` (a path of the weight VarStore): the two
    /// preprocessing blocks and one [`MixedOp`] per state that feeds a block (H^{l-2},
    /// H^{l-1}, blocks 0..B-1), under `state<j>`. Panics on a shape a validated config cannot
    /// have (no block, or K not dividing C).
    pub fn build(&self, p: &nn::Path) -> SearchCell {
        assert!(self.blocks >= 1, "a cell needs at least one block");
        let k = self.partial_channels;
        assert!(
            k >= 1 && self.channels % k == 0,
            "partial_channels = {k} must be at least 1 and divide the cell's {} channels",
            self.channels
        );
        let prev_prev =
            self.prev_prev_channels.map(|c| ReluConvBn::new(&(p / "preprocess0"), c, self.channels, 1, 1, false));
        let prev = ReluConvBn::new(&(p / "preprocess1"), self.prev_channels, self.channels, 1, 1, false);
        let mixed = (0..=self.blocks)
            .map(|input| {
                let present = input != 0 || prev_prev.is_some();
                let (count, _) = edges_from(input, self.blocks);
                present.then(|| MixedOp::new(&(p / format!("state{input}")), self.channels, count, k))
            })
            .collect();
        SearchCell { config: *self, prev_prev, prev, mixed }
    }
}

/// A search cell's weights. See the module documentation.
#[derive(Debug)]
pub struct SearchCell {
    config: SearchCellConfig,
    prev_prev: Option<ReluConvBn>,
    prev: ReluConvBn,
    /// One mixed op per input state (H^{l-2}, H^{l-1}, blocks) for all the edges leaving it,
    /// `None` for an absent H^{l-2}.
    mixed: Vec<Option<MixedOp>>,
}

impl SearchCell {
    /// The configuration the cell was built from.
    pub fn config(&self) -> &SearchCellConfig {
        &self.config
    }

    /// The preprocessing of H^{l-2} (absent without it) and of H^{l-1}.
    pub fn preprocess(&self) -> (Option<&ReluConvBn>, &ReluConvBn) {
        (self.prev_prev.as_ref(), &self.prev)
    }

    /// The mixed op of the edges leaving input state `input` (0: H^{l-2}, 1: H^{l-1}, 2 + b:
    /// block b), `None` for an absent H^{l-2}.
    pub fn mixed_op(&self, input: usize) -> Option<&MixedOp> {
        self.mixed.get(input).and_then(Option::as_ref)
    }

    /// `prev_prev`: H^{l-2} `[N, C_pp, H, W]` (required exactly when the cell was built with
    /// `prev_prev_channels`); `prev`: H^{l-1} `[N, C_p, H, W]`; `alpha_weights`: softmax(α),
    /// `[edges, 8]`. Returns `[N, B * C, H, W]`.
    pub fn forward_t(&self, prev_prev: Option<&Tensor>, prev: &Tensor, alpha_weights: &Tensor, train: bool) -> Tensor {
        self.forward_transitions(prev_prev, std::slice::from_ref(prev), alpha_weights, train)
    }

    /// The cell applied to T inputs H^{l-1} (`prevs`, each `[N, C_p, H, W]`: the resampled
    /// transitions into one node) with the same H^{l-2}, in one batched computation. Returns
    /// `[T * N, B * C, H, W]`, transition-major, equal to T calls of [`SearchCell::forward_t`]:
    /// every batch norm keeps each transition's own statistics, and the edges from H^{l-2},
    /// identical for every transition, are computed once.
    pub fn forward_transitions(
        &self,
        prev_prev: Option<&Tensor>,
        prevs: &[Tensor],
        alpha_weights: &Tensor,
        train: bool,
    ) -> Tensor {
        let expected_rows = num_edges(self.config.blocks) as i64;
        assert_eq!(
            alpha_weights.size(),
            [expected_rows, Primitive::COUNT as i64],
            "softmax(α) must be [edges, 8] for a cell of {} blocks",
            self.config.blocks
        );
        let groups = prevs.len() as i64;
        assert!(groups >= 1, "a cell needs at least one H^(l-1)");
        let shared = match (&self.prev_prev, prev_prev) {
            (Some(pre), Some(x)) => Some(State::new(pre.forward_t(x, train), 1)),
            (None, None) => None,
            (Some(_), None) => panic!("cell built with an H^(l-2) input was called without one"),
            (None, Some(_)) => panic!("cell built without an H^(l-2) input was called with one"),
        };
        let stacked = if groups == 1 { prevs[0].shallow_clone() } else { Tensor::cat(prevs, 0) };
        let mut states: Vec<State> = vec![State::new(self.prev.forward_grouped(&stacked, train, groups), groups)];
        let device = alpha_weights.device();
        // Each state's mixed-op output [G*N, E, C, H, W], computed on first use.
        let mut mixed_out: Vec<Option<Tensor>> = (0..=self.config.blocks).map(|_| None).collect();
        for block in 0..self.config.blocks {
            let edge_out = |input: usize, state: &State, mixed_out: &mut Vec<Option<Tensor>>| -> Tensor {
                let (count, first) = edges_from(input, self.config.blocks);
                let out = mixed_out[input].get_or_insert_with(|| {
                    let rows: Vec<i64> = (first..first + count).map(|b| edge_index(b, input) as i64).collect();
                    let weights = alpha_weights.index_select(0, &Tensor::from_slice(&rows).to_device(device));
                    let mixed = self.mixed[input].as_ref().expect("mixed ops of present inputs exist");
                    mixed.forward(&state.x, state.relu(), &weights, train, state.groups)
                });
                out.select(1, (block - first) as i64)
            };
            // Edges from H^{l-1} and earlier blocks (one per transition), then the one from
            // H^{l-2} (shared), broadcast over the transitions.
            let own = (1..block_inputs(block))
                .map(|input| edge_out(input, &states[input - 1], &mut mixed_out))
                .reduce(|a, b| a + b)
                .expect("every block has H^(l-1) as an input");
            let output = match &shared {
                None => own,
                Some(state) => {
                    let common = edge_out(0, state, &mut mixed_out);
                    let (total, c, h, w) = own.size4().expect("[T * N, C, H, W]");
                    (own.view([groups, total / groups, c, h, w]) + common.unsqueeze(0)).view([total, c, h, w])
                }
            };
            states.push(State::new(output, groups));
        }
        let blocks: Vec<Tensor> = states.drain(1..).map(|s| s.x).collect();
        Tensor::cat(&blocks, 1)
    }
}

/// A cell state and, computed on first use, its ReLU (shared by every edge that reads it).
struct State {
    x: Tensor,
    groups: i64,
    relu: std::cell::OnceCell<Tensor>,
}

impl State {
    fn new(x: Tensor, groups: i64) -> State {
        State { x, groups, relu: std::cell::OnceCell::new() }
    }

    fn relu(&self) -> &Tensor {
        self.relu.get_or_init(|| self.x.relu())
    }
}
