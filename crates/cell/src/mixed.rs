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
    /// K of partial channel connections ([`crate::partial`]); 1: every channel.
    partial: i64,
}

impl MixedOp {
    /// Builds the search-time ops of one edge at `channels` channels, one sub-path per op name.
    pub fn new(p: &nn::Path, channels: i64) -> MixedOp {
        MixedOp::partial(p, channels, 1)
    }

    /// The same with partial channel connections: the ops see `channels / k` channels
    /// ([`crate::partial`]).
    pub fn partial(p: &nn::Path, channels: i64, k: i64) -> MixedOp {
        let channels = channels / k;
        let ops = Primitive::ALL
            .iter()
            .filter_map(|&primitive| {
                OpConfig { primitive, channels, stride: 1, style: OpStyle::Search }.build(&(p / primitive.name()))
            })
            .collect();
        MixedOp { ops, partial: k }
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
        let (input, relu_input) = match self.partial {
            1 => (xs.shallow_clone(), relu_xs.shallow_clone()),
            k => (crate::partial::processed(xs, k), crate::partial::processed(relu_xs, k)),
        };
        let mut terms = self.ops.iter().map(|op| {
            let y = op.forward_grouped(&input, Some(&relu_input), train, groups);
            (y, weights.get(op.primitive().index() as i64))
        });
        let (first, w) = terms.next().expect("a mixed op has seven non-zero ops");
        let mixed = terms.fold(first * w, |acc, (y, w)| acc.addcmul(&y, &w));
        match self.partial {
            1 => mixed,
            k => crate::partial::join(&mixed, xs, k, 1),
        }
    }
}
