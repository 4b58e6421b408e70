//! Fused edges: every edge that reads one cell state, computed together (search network only;
//! see docs/performance.md).
//!
//! A state j feeds E edges (one per later block). Their mixed ops apply the same primitives to
//! the same input with different weights, so each primitive runs once for all E edges:
//! depthwise convolutions with E kernels per channel (`groups = C`, `E * C` outputs),
//! pointwise convolutions grouped by edge (`groups = E`), batch norm over `E * C` channels
//! (per-channel statistics, as E separate norms). Pooling and its non-affine batch norm, and
//! the identity, give the same tensor for every edge and are computed once. The result,
//! `[N, E, C, H, W]`, holds every edge's softmax(α)-weighted sum, equal to E [`MixedOp`]s
//! (tested against them with copied weights).
//!
//! [`MixedOp`]: crate::MixedOp

use tch::{nn, Tensor};

use crate::conv::Conv2d;
use crate::ops::{batch_norm, grouped_batch_norm};
use crate::primitive::Primitive;
use crate::MixedOp;

/// One stage of a separable or atrous op for E edges: depthwise kxk, pointwise 1x1 per edge,
/// batch norm.
#[derive(Debug)]
struct DwPw {
    depthwise: Conv2d,
    pointwise: Conv2d,
    bn: nn::BatchNorm,
    /// Whether the input is the shared state (`[N, C]`, depthwise with E kernels per channel)
    /// or already per edge (`[N, E * C]`, one kernel per channel).
    from_shared: bool,
}

impl DwPw {
    fn new(p: &nn::Path, c: i64, e: i64, kernel: i64, dilation: i64, from_shared: bool) -> DwPw {
        let padding = dilation * (kernel - 1) / 2;
        let groups = if from_shared { c } else { e * c };
        let in_channels = if from_shared { c } else { e * c };
        let dw = nn::ConvConfig { padding, dilation, groups, bias: false, ..Default::default() };
        let pw = nn::ConvConfig { groups: e, bias: false, ..Default::default() };
        DwPw {
            depthwise: Conv2d::new(p / "dw", in_channels, e * c, kernel, dw),
            pointwise: Conv2d::new(p / "pw", e * c, e * c, 1, pw),
            bn: batch_norm(p / "bn", e * c, false),
            from_shared,
        }
    }

    /// `xs`: ReLU'd input, `[G*N, C, H, W]` (shared) or `[G*N, E*C, H, W]`; returns
    /// `[G*N, E*C, H, W]`, edge-major.
    fn forward(&self, xs: &Tensor, c: i64, e: i64, train: bool, groups: i64) -> Tensor {
        let y = tch::nn::Module::forward(&self.depthwise, xs);
        let y = if self.from_shared {
            // Depthwise outputs are channel-major (c * E + e); the pointwise groups want edge-major.
            let (n, _, h, w) = y.size4().expect("[N, C*E, H, W]");
            y.view([n, c, e, h, w]).transpose(1, 2).reshape([n, e * c, h, w])
        } else {
            y
        };
        grouped_batch_norm(&self.bn, &tch::nn::Module::forward(&self.pointwise, &y), train, groups)
    }
}

/// Every edge leaving one cell state, fused. See the module documentation.
#[derive(Debug)]
pub struct EdgeBundle {
    channels: i64,
    edges: i64,
    sep: [(DwPw, DwPw); 2],
    dil: [DwPw; 2],
    max_bn: nn::BatchNorm,
    avg_bn: nn::BatchNorm,
}

impl EdgeBundle {
    /// The ops of `edges` edges reading a state of `channels` channels, under `p`.
    pub fn new(p: &nn::Path, channels: i64, edges: usize) -> EdgeBundle {
        let (c, e) = (channels, edges as i64);
        let sep = |k: i64, name: &str| {
            (DwPw::new(&(p / name / "stage1"), c, e, k, 1, true), DwPw::new(&(p / name / "stage2"), c, e, k, 1, false))
        };
        EdgeBundle {
            channels,
            edges: e,
            sep: [sep(3, "sep_conv_3x3"), sep(5, "sep_conv_5x5")],
            dil: [
                DwPw::new(&(p / "dil_conv_3x3"), c, e, 3, 2, true),
                DwPw::new(&(p / "dil_conv_5x5"), c, e, 5, 2, true),
            ],
            max_bn: batch_norm(p / "max_pool_3x3" / "bn", c, false),
            avg_bn: batch_norm(p / "avg_pool_3x3" / "bn", c, false),
        }
    }

    /// `xs`: the state `[G*N, C, H, W]` and `relu_xs` its ReLU; `weights`: softmax(α) rows of
    /// the E edges, `[E, 8]`. Returns `[G*N, E, C, H, W]`: edge e's mixed op in slot e.
    pub fn forward(&self, xs: &Tensor, relu_xs: &Tensor, weights: &Tensor, train: bool, groups: i64) -> Tensor {
        let (c, e) = (self.channels, self.edges);
        let (n, _, h, w) = xs.size4().expect("state is [N, C, H, W]");
        // [8, 1, E, 1, 1, 1]: one select per term.
        let by_primitive = weights.transpose(0, 1).reshape([8, 1, e, 1, 1, 1]);
        let weight = |p: Primitive| by_primitive.get(p.index() as i64);
        let per_edge = |y: Tensor| y.view([n, e, c, h, w]);
        let shared = |y: Tensor| y.unsqueeze(1);
        let sep = |(first, second): &(DwPw, DwPw)| {
            // In place: batch norm's backward needs its input, not its output.
            let mut y = first.forward(relu_xs, c, e, train, groups);
            let _ = y.relu_();
            per_edge(second.forward(&y, c, e, train, groups))
        };
        let max =
            grouped_batch_norm(&self.max_bn, &xs.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false), train, groups);
        let avg =
            grouped_batch_norm(&self.avg_bn, &xs.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None), train, groups);
        let terms = [
            (per_edge(self.dil[0].forward(relu_xs, c, e, train, groups)), Primitive::DilConv3x3),
            (sep(&self.sep[0]), Primitive::SepConv3x3),
            (sep(&self.sep[1]), Primitive::SepConv5x5),
            (per_edge(self.dil[1].forward(relu_xs, c, e, train, groups)), Primitive::DilConv5x5),
            (shared(max), Primitive::MaxPool3x3),
            (shared(avg), Primitive::AvgPool3x3),
            (shared(xs.shallow_clone()), Primitive::SkipConnect),
        ];
        let mut terms = terms.into_iter();
        let (first, p) = terms.next().expect("seven terms");
        let init = first * weight(p);
        terms.fold(init, |acc, (y, p)| acc.addcmul(&y, &weight(p)))
    }

    /// Copies the weights of `ops` (the E plain mixed ops of these edges, in edge order) into
    /// this bundle, so that both compute the same function: how the tests compare them.
    pub fn copy_from_mixed(&self, ops: &[&MixedOp]) {
        assert_eq!(ops.len() as i64, self.edges, "one mixed op per edge");
        let (c, e) = (self.channels, self.edges);
        tch::no_grad(|| {
            for (slot, op) in ops.iter().enumerate() {
                let slot = slot as i64;
                let copy_stage = |stage: &DwPw, dw: &Tensor, pw: &Tensor| {
                    let target = stage.depthwise.weight();
                    if stage.from_shared {
                        // Channel-major outputs: channel ch of edge `slot` is ch * E + slot.
                        for ch in 0..c {
                            target.narrow(0, ch * e + slot, 1).copy_(&dw.narrow(0, ch, 1));
                        }
                    } else {
                        target.narrow(0, slot * c, c).copy_(dw);
                    }
                    stage.pointwise.weight().narrow(0, slot * c, c).copy_(pw);
                };
                for (k, primitive) in [Primitive::SepConv3x3, Primitive::SepConv5x5].into_iter().enumerate() {
                    let w = op.op(primitive).conv_weights();
                    copy_stage(&self.sep[k].0, &w[0], &w[1]);
                    copy_stage(&self.sep[k].1, &w[2], &w[3]);
                }
                for (k, primitive) in [Primitive::DilConv3x3, Primitive::DilConv5x5].into_iter().enumerate() {
                    let w = op.op(primitive).conv_weights();
                    copy_stage(&self.dil[k], &w[0], &w[1]);
                }
            }
        });
    }
}
