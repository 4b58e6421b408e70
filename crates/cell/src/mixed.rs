//! The mixed op: the continuous relaxation of one cell edge (paper §3.1, Eq. 1; DARTS Eq. 2).
//!
//! `MixedOp(x) = sum_k softmax(α_edge)_k * O_k(x)`. `none` contributes zero to the sum, so it is
//! neither built nor computed: its weight only matters through the softmax denominator.

use tch::{nn, Tensor};

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

    /// The op of `primitive` (panics for `none`, which has none).
    pub fn op(&self, primitive: Primitive) -> &Op {
        self.ops.iter().find(|op| op.primitive() == primitive).expect("a mixed op has every primitive but none")
    }

    /// `xs`: `[N, C, H, W]`; `weights`: `[8]`, this edge's row of softmax(α) in
    /// [`Primitive`] order. Returns `[N, C, H, W]`.
    pub fn forward_t(&self, xs: &Tensor, weights: &Tensor, train: bool) -> Tensor {
        self.forward_grouped(xs, None, weights, train, 1)
    }

    /// The weighted sum over `groups` stacked sub-batches (`[groups * N, C, H, W]`, see
    /// [`crate::ops::grouped_batch_norm`]); `relu_xs`, when given, is `xs.relu()`, shared by the
    /// convolution ops (and by every edge that reads the same state). Each term is added with
    /// one fused multiply-add.
    pub fn forward_grouped(
        &self,
        xs: &Tensor,
        relu_xs: Option<&Tensor>,
        weights: &Tensor,
        train: bool,
        groups: i64,
    ) -> Tensor {
        let own_relu;
        let relu_xs = match relu_xs {
            Some(r) => r,
            None => {
                own_relu = xs.relu();
                &own_relu
            }
        };
        let mut terms = self.ops.iter().map(|op| {
            let y = op.forward_grouped(xs, Some(relu_xs), train, groups);
            (y, weights.get(op.primitive().index() as i64))
        });
        let (first, w) = terms.next().expect("a mixed op has seven non-zero ops");
        terms.fold(first * w, |acc, (y, w)| acc.addcmul(&y, &w))
    }
}
