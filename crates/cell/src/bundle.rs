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
//! (tested against them with copied weights). At small sizes the depthwise convolutions whose
//! kernels fit 5x5 also run as one ([`MERGED_DEPTHWISE_MAX_PIXELS`]), and with partial channel
//! connections the ops see `C / K` channels ([`crate::partial`]).
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
    dilation: i64,
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
            dilation,
        }
    }

    /// `xs`: ReLU'd input, `[G*N, C, H, W]` (shared) or `[G*N, E*C, H, W]`; returns
    /// `[G*N, E*C, H, W]`, edge-major.
    fn forward(&self, xs: &Tensor, c: i64, e: i64, train: bool, groups: i64) -> Tensor {
        self.finish(&tch::nn::Module::forward(&self.depthwise, xs), c, e, train, groups)
    }

    /// Everything after the depthwise convolution: `y`, its output (`[G*N, C*E, H, W]`,
    /// channel-major when the input is shared, or a view of it as `[G*N, C, E, H, W]`), to
    /// `[G*N, E*C, H, W]`, edge-major.
    fn finish(&self, y: &Tensor, c: i64, e: i64, train: bool, groups: i64) -> Tensor {
        let y = if self.from_shared {
            // Depthwise outputs are channel-major (c * E + e); the pointwise groups want edge-major.
            let y = match y.size4() {
                Ok((n, _, h, w)) => y.view([n, c, e, h, w]),
                Err(_) => y.shallow_clone(),
            };
            let (n, _, _, h, w) = y.size5().expect("[N, C, E, H, W]");
            y.transpose(1, 2).reshape([n, e * c, h, w])
        } else {
            y.shallow_clone()
        };
        grouped_batch_norm(&self.bn, &tch::nn::Module::forward(&self.pointwise, &y), train, groups)
    }

    /// The depthwise kernel as a 5x5 one with the same output (`[C*E, 1, 5, 5]`): a 3x3 kernel
    /// zero-padded around, a 3x3 kernel with dilation 2 spread over the 5x5 grid.
    fn depthwise_as_5x5(&self) -> Tensor {
        let w = self.depthwise.weight();
        let (k, _, kh, _) = w.size4().expect("[C*E, 1, k, k]");
        match (kh, self.dilation) {
            (5, 1) => w,
            (3, 1) => w.constant_pad_nd([1, 1, 1, 1]),
            // Element (i, j) goes to (2i, 2j): interleave zeros, then drop the trailing ones.
            (3, 2) => w
                .view([k, 1, 3, 1, 3, 1])
                .constant_pad_nd([0, 1, 0, 0, 0, 1])
                .view([k, 1, 6, 6])
                .narrow(2, 0, 5)
                .narrow(3, 0, 5),
            other => panic!("no 5x5 form of a {other:?} (kernel, dilation) depthwise convolution"),
        }
    }
}

/// Largest spatial size (H * W) at which the three depthwise convolutions of a bundle that fit
/// a 5x5 window (separable 3x3 and 5x5, atrous 3x3) run as one convolution with zero-padded
/// kernels. Below it a convolution's cost is mostly fixed per call, above it the padded taps'
/// arithmetic outweighs the saved calls (docs/performance.md).
pub const MERGED_DEPTHWISE_MAX_PIXELS: i64 = 32 * 32;

/// Which depthwise convolutions of a bundle run merged (same values either way).
#[derive(Debug, Clone, Copy)]
struct Merge {
    /// The three first-stage ones whose kernels fit 5x5 (separable 3x3, 5x5, atrous 3x3).
    first: bool,
    /// The two second-stage ones of the separable ops.
    second: bool,
}

/// Every edge leaving one cell state, fused. See the module documentation.
#[derive(Debug)]
pub struct EdgeBundle {
    /// Channels the ops see: C, or C / K with partial channel connections.
    channels: i64,
    /// K of partial channel connections ([`crate::partial`]); 1: every channel.
    partial: i64,
    edges: i64,
    sep: [(DwPw, DwPw); 2],
    dil: [DwPw; 2],
    max_bn: nn::BatchNorm,
    avg_bn: nn::BatchNorm,
}

impl EdgeBundle {
    /// The ops of `edges` edges reading a state of `channels` channels, under `p`.
    pub fn new(p: &nn::Path, channels: i64, edges: usize) -> EdgeBundle {
        EdgeBundle::partial(p, channels, edges, 1)
    }

    /// The same with partial channel connections: the ops see `channels / k` channels
    /// ([`crate::partial`]).
    pub fn partial(p: &nn::Path, channels: i64, edges: usize, k: i64) -> EdgeBundle {
        let (c, e) = (channels / k, edges as i64);
        let sep = |k: i64, name: &str| {
            (DwPw::new(&(p / name / "stage1"), c, e, k, 1, true), DwPw::new(&(p / name / "stage2"), c, e, k, 1, false))
        };
        EdgeBundle {
            channels: c,
            partial: k,
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
        if self.partial > 1 {
            let k = self.partial;
            let (part, relu_part) = (crate::partial::processed(xs, k), crate::partial::processed(relu_xs, k));
            let mixed = self.forward_full(&part, &relu_part, weights, train, groups);
            return crate::partial::join(&mixed, xs, k, 2);
        }
        self.forward_full(xs, relu_xs, weights, train, groups)
    }

    /// [`EdgeBundle::forward`] over every channel of `xs` (the processed ones with partial
    /// channel connections).
    fn forward_full(&self, xs: &Tensor, relu_xs: &Tensor, weights: &Tensor, train: bool, groups: i64) -> Tensor {
        let (_, _, h, w) = xs.size4().expect("state is [N, C, H, W]");
        let merge = Merge {
            first: h * w <= MERGED_DEPTHWISE_MAX_PIXELS,
            // Without weight gradients (the architecture step) the merged second stage is faster
            // at every size measured; with them its 5x5 weight gradient costs more than it saves.
            second: !self.sep[0].1.depthwise.weight().requires_grad(),
        };
        self.forward_with(xs, relu_xs, weights, train, groups, merge)
    }

    /// [`EdgeBundle::forward`], with depthwise convolutions merged as `merge` says.
    fn forward_with(
        &self,
        xs: &Tensor,
        relu_xs: &Tensor,
        weights: &Tensor,
        train: bool,
        groups: i64,
        merge: Merge,
    ) -> Tensor {
        let (c, e) = (self.channels, self.edges);
        let (n, _, h, w) = xs.size4().expect("state is [N, C, H, W]");
        // [8, 1, E, 1, 1, 1]: one select per term.
        let by_primitive = weights.transpose(0, 1).reshape([8, 1, e, 1, 1, 1]);
        let weight = |p: Primitive| by_primitive.get(p.index() as i64);
        let per_edge = |y: Tensor| y.view([n, e, c, h, w]);
        let shared = |y: Tensor| y.unsqueeze(1);
        // The first depthwise convolutions of the separable ops and the atrous 3x3 read the
        // same input with kernels that fit 5x5: at small sizes one convolution computes all three.
        let first_depthwise: [Option<Tensor>; 3] = if merge.first {
            let stages = [&self.sep[0].0, &self.sep[1].0, &self.dil[0]];
            // [C, 3, E, 5, 5]: per channel, the three ops' E kernels (outputs c * 3E + op * E + e).
            let kernels: Vec<Tensor> = stages.iter().map(|s| s.depthwise_as_5x5().view([c, 1, e, 5, 5])).collect();
            let kernel = Tensor::cat(&kernels, 1).view([c * 3 * e, 1, 5, 5]);
            let y = relu_xs.conv2d(&kernel, None::<&Tensor>, [1, 1], [2, 2], [1, 1], c).view([n, c, 3, e, h, w]);
            std::array::from_fn(|op| Some(y.select(2, op as i64)))
        } else {
            [None, None, None]
        };
        let [sep3_dw, sep5_dw, dil3_dw] = first_depthwise;
        let first_stage = |stage: &DwPw, depthwise: Option<Tensor>| match depthwise {
            Some(y) => stage.finish(&y, c, e, train, groups),
            None => stage.forward(relu_xs, c, e, train, groups),
        };
        // In place: batch norm's backward needs its input, not its output.
        let mut sep3 = first_stage(&self.sep[0].0, sep3_dw);
        let mut sep5 = first_stage(&self.sep[1].0, sep5_dw);
        let _ = sep3.relu_();
        let _ = sep5.relu_();
        let (second3, second5) = (&self.sep[0].1, &self.sep[1].1);
        let (sep3, sep5) = if merge.second {
            // Both second-stage depthwise convolutions (one kernel per channel) as one 5x5.
            let kernel = Tensor::cat(&[second3.depthwise_as_5x5(), second5.depthwise_as_5x5()], 0);
            let y = Tensor::cat(&[&sep3, &sep5], 1).conv2d(&kernel, None::<&Tensor>, [1, 1], [2, 2], [1, 1], 2 * e * c);
            let (a, b) = (y.narrow(1, 0, e * c), y.narrow(1, e * c, e * c));
            (second3.finish(&a, c, e, train, groups), second5.finish(&b, c, e, train, groups))
        } else {
            (second3.forward(&sep3, c, e, train, groups), second5.forward(&sep5, c, e, train, groups))
        };
        let max =
            grouped_batch_norm(&self.max_bn, &xs.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false), train, groups);
        let avg =
            grouped_batch_norm(&self.avg_bn, &xs.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None), train, groups);
        let terms = [
            (per_edge(first_stage(&self.dil[0], dil3_dw)), Primitive::DilConv3x3),
            (per_edge(sep3), Primitive::SepConv3x3),
            (per_edge(sep5), Primitive::SepConv5x5),
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The merged depthwise convolutions give the separate ones' outputs and every weight's
    /// gradient (through the zero-padded and dilated 5x5 kernels), in every combination.
    #[test]
    fn merged_depthwise_equals_separate() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let bundle = EdgeBundle::new(&vs.root(), 3, 2);
        let xs = Tensor::randn([4, 3, 7, 6], (Kind::Float, Device::Cpu));
        let weights = Tensor::randn([2, 8], (Kind::Float, Device::Cpu)).softmax(1, Kind::Float);
        let probe = Tensor::randn([4, 2, 3, 7, 6], (Kind::Float, Device::Cpu));
        let run = |merge: Merge| {
            vs.variables().values().for_each(|t| {
                let mut g = t.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            });
            let out = bundle.forward_with(&xs, &xs.relu(), &weights, true, 2, merge);
            (&out * &probe).sum(Kind::Float).backward();
            let mut grads: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .map(|(k, t)| (k, t.grad().copy()))
                .collect();
            grads.sort_by(|a, b| a.0.cmp(&b.0));
            (out.detach(), grads)
        };
        let (separate, separate_grads) = run(Merge { first: false, second: false });
        for merge in [
            Merge { first: true, second: false },
            Merge { first: false, second: true },
            Merge { first: true, second: true },
        ] {
            let (merged, merged_grads) = run(merge);
            assert!(f64::try_from((&merged - &separate).abs().max()).unwrap() < 1e-5, "{merge:?}");
            assert_eq!(merged_grads.len(), 12, "dw and pw of sep (two stages) x2 and dil x2");
            for ((name, a), (_, b)) in merged_grads.iter().zip(&separate_grads) {
                let diff = f64::try_from((a - b).abs().max()).unwrap();
                assert!(diff < 1e-4, "{name}: {diff}, {merge:?}");
                assert!(f64::try_from(a.abs().max()).unwrap() > 0.0, "{name} has no gradient");
            }
        }
    }
}
