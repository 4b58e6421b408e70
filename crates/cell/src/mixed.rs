//! The mixed op: the continuous relaxation of one cell edge (paper §3.1, Eq. 1; DARTS Eq. 2).
//!
//! `MixedOp(x) = sum_k softmax(α_edge)_k * O_k(x)`. `none` contributes zero to the sum, so it is
//! neither built nor computed: its weight only matters through the softmax denominator.

use tch::{nn, nn::ModuleT, Tensor};

use crate::ops::{Op, OpConfig, OpStyle};
use crate::primitive::Primitive;

/// The seven non-zero search-time ops of one edge, mixed by that edge's row of softmax(α).
#[derive(Debug)]
pub struct MixedOp {
    ops: Vec<Op>,
}

impl MixedOp {
    /// Builds the search-time ops of one edge at `channels` channels, one sub-path per op name.
    pub fn new(p: &nn::Path, channels: i64) -> MixedOp {
        let ops = Primitive::ALL
            .iter()
            .filter_map(|&primitive| {
                OpConfig { primitive, channels, stride: 1, style: OpStyle::Search }.build(&(p / primitive.name()))
            })
            .collect();
        MixedOp { ops }
    }

    /// `xs`: `[N, C, H, W]`; `weights`: `[8]`, this edge's row of softmax(α) in
    /// [`Primitive`] order. Returns `[N, C, H, W]`.
    pub fn forward_t(&self, xs: &Tensor, weights: &Tensor, train: bool) -> Tensor {
        self.ops
            .iter()
            .map(|op| op.forward_t(xs, train) * weights.get(op.primitive().index() as i64))
            .reduce(|acc, term| acc + term)
            .expect("a mixed op has seven non-zero ops")
    }
}
