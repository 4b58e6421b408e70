//! The mixed op: the continuous relaxation of cell edges (paper §3.1, Eq. 1; DARTS Eq. 2),
//! `MixedOp(x) = sum_k softmax(α_edge)_k * O_k(x)`, for every edge that leaves one cell state.
//!
//! This is the one search-time implementation; [`crate::reference`] keeps the plain per-edge
//! form (one module per op and edge) only as the reference the equivalence tests compare with.
//!
//! A state feeds E edges (one per later block). Their mixed ops apply the same primitives to
//! the same input with different weights, so each primitive runs once for all E edges, built
//! from the op registry ([`Primitive::search_op`]):
//! - a convolution op's first depthwise stage reads the shared state with E kernels per channel
//!   (`groups = C`, `E * C` outputs), later stages are per edge (`groups = E * C`); pointwise
//!   convolutions are grouped by edge (`groups = E`); batch norm runs over `E * C` channels
//!   (per-channel statistics, as E separate norms);
//! - pooling with its non-affine batch norm, and the identity, give the same tensor for every
//!   edge and are computed once;
//! - `none` contributes zero and is neither built nor computed; its weight only matters through
//!   the softmax denominator.
//!
//! Execution details that never change the values (tested against the reference): at small
//! sizes the first-stage depthwise kernels that fit a 5x5 window run as one convolution
//! ([`MERGED_DEPTHWISE_MAX_PIXELS`]); without weight gradients (the architecture step) the
//! later-stage ones that fit 5x5 run as one too. With partial channel connections the ops see
//! `C / K` channels ([`crate::partial`]). Variable names depend only on the primitive and the
//! stage (`<primitive>/stage<i>/{dw,pw,bn}`, `<primitive>/bn` for pooling), never on how the op
//! is executed.

use tch::{nn, nn::Module, Tensor};

use crate::conv::Conv2d;
use crate::ops::{batch_norm, grouped_batch_norm};
use crate::primitive::{DepthwiseStage, Pooling, Primitive, SearchOp};

/// Largest spatial size (H * W) at which the first-stage depthwise convolutions whose kernels
/// fit a 5x5 window run as one convolution with zero-padded kernels. Below it a convolution's
/// cost is mostly fixed per call, above it the padded taps' arithmetic outweighs the saved
/// calls (docs/performance.md).
pub const MERGED_DEPTHWISE_MAX_PIXELS: i64 = 32 * 32;

/// The window every merged depthwise kernel is padded to.
const MERGED_SPAN: i64 = 5;

/// One depthwise stage of a convolution op for E edges: depthwise kxk, pointwise 1x1 per edge,
/// batch norm.
#[derive(Debug)]
struct Stage {
    shape: DepthwiseStage,
    depthwise: Conv2d,
    pointwise: Conv2d,
    bn: nn::BatchNorm,
    /// Whether the input is the shared state (`[N, C]`, E kernels per channel, channel-major
    /// outputs) or already per edge (`[N, E * C]`, one kernel per channel).
    from_shared: bool,
}

impl Stage {
    fn new(p: &nn::Path, c: i64, e: i64, shape: DepthwiseStage, from_shared: bool) -> Stage {
        let (groups, in_channels) = if from_shared { (c, c) } else { (e * c, e * c) };
        let dw = nn::ConvConfig {
            padding: shape.dilation * (shape.kernel - 1) / 2,
            dilation: shape.dilation,
            groups,
            bias: false,
            ..Default::default()
        };
        let pw = nn::ConvConfig { groups: e, bias: false, ..Default::default() };
        Stage {
            shape,
            depthwise: Conv2d::new(p / "dw", in_channels, e * c, shape.kernel, dw),
            pointwise: Conv2d::new(p / "pw", e * c, e * c, 1, pw),
            bn: batch_norm(p / "bn", e * c, false),
            from_shared,
        }
    }

    fn mergeable(&self) -> bool {
        self.shape.span() <= MERGED_SPAN
    }

    /// `xs`: ReLU'd input, `[G*N, C, H, W]` (shared) or `[G*N, E*C, H, W]`; returns
    /// `[G*N, E*C, H, W]`, edge-major.
    fn forward(&self, xs: &Tensor, c: i64, e: i64, train: bool, groups: i64) -> Tensor {
        self.finish(&self.depthwise.forward(xs), c, e, train, groups)
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
        grouped_batch_norm(&self.bn, &self.pointwise.forward(&y), train, groups)
    }

    /// The depthwise kernel as a 5x5 one with the same output (`[C*E, 1, 5, 5]`): tap (i, j)
    /// of a kxk kernel with dilation d goes to (d*i + o, d*j + o), o = (5 - span) / 2.
    fn depthwise_as_5x5(&self) -> Tensor {
        let w = self.depthwise.weight();
        let DepthwiseStage { kernel: k, dilation: d } = self.shape;
        let (span, rows) = (self.shape.span(), w.size()[0]);
        let offset = (MERGED_SPAN - span) / 2;
        let spread = if d == 1 {
            w
        } else {
            // Interleave d - 1 zeros after every tap, then drop the trailing ones.
            w.view([rows, 1, k, 1, k, 1])
                .constant_pad_nd([0, d - 1, 0, 0, 0, d - 1])
                .view([rows, 1, k * d, k * d])
                .narrow(2, 0, span)
                .narrow(3, 0, span)
        };
        match offset {
            0 => spread,
            o => spread.constant_pad_nd([o, o, o, o]),
        }
    }
}

/// What one primitive computes for the E edges.
#[derive(Debug)]
enum Term {
    Identity,
    Pool(Pooling, nn::BatchNorm),
    Convolution(Vec<Stage>),
}

/// Which depthwise convolutions run merged (the same values either way).
#[derive(Debug, Clone, Copy)]
struct Merge {
    /// The first-stage ones whose kernels fit 5x5.
    first: bool,
    /// The later-stage ones whose kernels fit 5x5.
    later: bool,
}

/// The mixed ops of every edge leaving one cell state. See the module documentation.
#[derive(Debug)]
pub struct MixedOp {
    /// Channels the ops see: C, or C / K with partial channel connections.
    channels: i64,
    /// K of partial channel connections ([`crate::partial`]); 1: every channel.
    partial: i64,
    edges: i64,
    /// One per non-zero primitive, in α's column order.
    terms: Vec<(Primitive, Term)>,
}

impl MixedOp {
    /// The ops of `edges` edges reading a state of `channels` channels, under `p`, with
    /// partial channel connections of `k` (1: every channel; `k` divides `channels`).
    pub fn new(p: &nn::Path, channels: i64, edges: usize, k: i64) -> MixedOp {
        let (c, e) = (channels / k, edges as i64);
        let terms = Primitive::ALL
            .iter()
            .filter_map(|&primitive| {
                let pp = p / primitive.name();
                let term = match primitive.search_op() {
                    SearchOp::Zero => return None,
                    SearchOp::Identity => Term::Identity,
                    SearchOp::Pool(pooling) => Term::Pool(pooling, batch_norm(&pp / "bn", c, false)),
                    SearchOp::Convolution(stages) => Term::Convolution(
                        stages
                            .iter()
                            .enumerate()
                            .map(|(i, &shape)| Stage::new(&(&pp / format!("stage{}", i + 1)), c, e, shape, i == 0))
                            .collect(),
                    ),
                };
                Some((primitive, term))
            })
            .collect();
        MixedOp { channels: c, partial: k, edges: e, terms }
    }

    /// Number of edges E.
    pub fn edges(&self) -> usize {
        self.edges as usize
    }

    /// `xs`: the state `[G*N, C, H, W]` (G stacked sub-batches, see
    /// [`crate::ops::grouped_batch_norm`]) and `relu_xs` its ReLU; `weights`: softmax(α) rows
    /// of the E edges, `[E, 8]`. Returns `[G*N, E, C, H, W]`: edge e's mixed op in slot e.
    pub fn forward(&self, xs: &Tensor, relu_xs: &Tensor, weights: &Tensor, train: bool, groups: i64) -> Tensor {
        if self.partial > 1 {
            let k = self.partial;
            let (part, relu_part) = (crate::partial::processed(xs, k), crate::partial::processed(relu_xs, k));
            let mixed = self.forward_full(&part, &relu_part, weights, train, groups);
            return crate::partial::join(&mixed, xs, k, 2);
        }
        self.forward_full(xs, relu_xs, weights, train, groups)
    }

    /// One edge's mixed op on `xs` (`[N, C, H, W]`) with its softmax(α) row `weights` (`[8]`):
    /// `[N, C, H, W]`. For an op of one edge.
    pub fn forward_t(&self, xs: &Tensor, weights: &Tensor, train: bool) -> Tensor {
        self.forward(xs, &xs.relu(), &weights.view([1, -1]), train, 1).select(1, 0)
    }

    /// [`MixedOp::forward`] over every channel of `xs` (the processed ones with partial
    /// channel connections).
    fn forward_full(&self, xs: &Tensor, relu_xs: &Tensor, weights: &Tensor, train: bool, groups: i64) -> Tensor {
        let (_, _, h, w) = xs.size4().expect("state is [N, C, H, W]");
        let merge = Merge {
            first: h * w <= MERGED_DEPTHWISE_MAX_PIXELS,
            // Without weight gradients (the architecture step) the merged later stages are
            // faster at every size measured; with them the 5x5 weight gradient costs more.
            later: !self.any_stage().is_some_and(|s| s.depthwise.weight().requires_grad()),
        };
        self.forward_with(xs, relu_xs, weights, train, groups, merge)
    }

    fn any_stage(&self) -> Option<&Stage> {
        self.terms.iter().find_map(|(_, t)| match t {
            Term::Convolution(stages) => stages.first(),
            _ => None,
        })
    }

    /// [`MixedOp::forward`], with depthwise convolutions merged as `merge` says.
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
        let convolutions: Vec<&[Stage]> = self
            .terms
            .iter()
            .filter_map(|(_, t)| match t {
                Term::Convolution(stages) => Some(stages.as_slice()),
                _ => None,
            })
            .collect();
        // The running output of every convolution op, stage by stage ([G*N, E*C, H, W]).
        let mut outputs: Vec<Tensor> = Self::first_stages(&convolutions, relu_xs, c, e, train, groups, merge.first);
        let deepest = convolutions.iter().map(|s| s.len()).max().unwrap_or(0);
        for stage in 1..deepest {
            // In place: batch norm's backward needs its input, not its output.
            let active: Vec<usize> = (0..convolutions.len()).filter(|&i| convolutions[i].len() > stage).collect();
            for &i in &active {
                let _ = outputs[i].relu_();
            }
            let (merged, separate): (Vec<usize>, Vec<usize>) =
                active.iter().partition(|&&i| merge.later && convolutions[i][stage].mergeable());
            for &i in &separate {
                outputs[i] = convolutions[i][stage].forward(&outputs[i], c, e, train, groups);
            }
            if merged.len() > 1 {
                // One kernel per channel each: their 5x5 forms side by side, one grouped call.
                let kernel = Tensor::cat(
                    &merged.iter().map(|&i| convolutions[i][stage].depthwise_as_5x5()).collect::<Vec<_>>(),
                    0,
                );
                let input = Tensor::cat(&merged.iter().map(|&i| &outputs[i]).collect::<Vec<_>>(), 1);
                let pad = MERGED_SPAN / 2;
                let y = input.conv2d(&kernel, None::<&Tensor>, [1, 1], [pad, pad], [1, 1], merged.len() as i64 * e * c);
                for (slot, &i) in merged.iter().enumerate() {
                    let part = y.narrow(1, slot as i64 * e * c, e * c);
                    outputs[i] = convolutions[i][stage].finish(&part, c, e, train, groups);
                }
            } else if let Some(&i) = merged.first() {
                outputs[i] = convolutions[i][stage].forward(&outputs[i], c, e, train, groups);
            }
        }
        // [8, 1, E, 1, 1, 1]: one select per term.
        let by_primitive = weights.transpose(0, 1).reshape([8, 1, e, 1, 1, 1]);
        let mut convolution_outputs = outputs.into_iter();
        let terms = self.terms.iter().map(|(primitive, term)| {
            let y = match term {
                Term::Identity => xs.unsqueeze(1),
                Term::Pool(pooling, bn) => {
                    let pooled = match pooling {
                        Pooling::Max => xs.max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false),
                        Pooling::Average => xs.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None),
                    };
                    grouped_batch_norm(bn, &pooled, train, groups).unsqueeze(1)
                }
                Term::Convolution(_) => {
                    convolution_outputs.next().expect("one output per convolution op").view([n, e, c, h, w])
                }
            };
            (y, by_primitive.get(primitive.index() as i64))
        });
        let mut terms = terms.collect::<Vec<_>>().into_iter();
        let (first, weight) = terms.next().expect("a mixed op has at least one non-zero op");
        terms.fold(first * weight, |acc, (y, weight)| acc.addcmul(&y, &weight))
    }

    /// The first stage of every convolution op on the shared `relu_xs`; with `merge`, the
    /// depthwise convolutions whose kernels fit 5x5 run as one.
    fn first_stages(
        convolutions: &[&[Stage]],
        relu_xs: &Tensor,
        c: i64,
        e: i64,
        train: bool,
        groups: i64,
        merge: bool,
    ) -> Vec<Tensor> {
        let (n, _, h, w) = relu_xs.size4().expect("state is [N, C, H, W]");
        let merged: Vec<usize> = (0..convolutions.len()).filter(|&i| merge && convolutions[i][0].mergeable()).collect();
        let mut depthwise: Vec<Option<Tensor>> = (0..convolutions.len()).map(|_| None).collect();
        if merged.len() > 1 {
            let m = merged.len() as i64;
            // [C, M, E, 5, 5]: per channel, the M ops' E kernels (outputs c * M*E + op * E + e).
            let kernels: Vec<Tensor> =
                merged.iter().map(|&i| convolutions[i][0].depthwise_as_5x5().view([c, 1, e, 5, 5])).collect();
            let kernel = Tensor::cat(&kernels, 1).view([c * m * e, 1, 5, 5]);
            let pad = MERGED_SPAN / 2;
            let y = relu_xs.conv2d(&kernel, None::<&Tensor>, [1, 1], [pad, pad], [1, 1], c).view([n, c, m, e, h, w]);
            for (slot, &i) in merged.iter().enumerate() {
                depthwise[i] = Some(y.select(2, slot as i64));
            }
        }
        convolutions
            .iter()
            .zip(depthwise)
            .map(|(stages, dw)| match dw {
                Some(y) => stages[0].finish(&y, c, e, train, groups),
                None => stages[0].forward(relu_xs, c, e, train, groups),
            })
            .collect()
    }

    /// Sets the convolution weights of `primitive` on edge `slot` (0-based among this op's
    /// edges) from `weights`, the convolutions of a separate op of that primitive in order
    /// (depthwise 1, pointwise 1, depthwise 2, pointwise 2, …), so that the edge computes what
    /// the separate op computes: how the equivalence tests give this op the weights of the
    /// per-edge reference (`crate::reference::ReferenceCell::copy_into`). Other primitives
    /// have no weights.
    pub fn set_edge_weights(&self, slot: i64, primitive: Primitive, weights: &[Tensor]) {
        assert!((0..self.edges).contains(&slot), "edge {slot} of {}", self.edges);
        let (c, e) = (self.channels, self.edges);
        let Some((_, Term::Convolution(stages))) = self.terms.iter().find(|(p, _)| *p == primitive) else { return };
        tch::no_grad(|| {
            for (stage, pair) in stages.iter().zip(weights.chunks(2)) {
                let (dw, pw) = (&pair[0], &pair[1]);
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
        let op = MixedOp::new(&vs.root(), 3, 2, 1);
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
            let out = op.forward_with(&xs, &xs.relu(), &weights, true, 2, merge);
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
        let (separate, separate_grads) = run(Merge { first: false, later: false });
        for merge in [
            Merge { first: true, later: false },
            Merge { first: false, later: true },
            Merge { first: true, later: true },
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

    /// Variable names follow the registry: primitive, stage, part.
    #[test]
    fn names_follow_the_registry() {
        let vs = nn::VarStore::new(Device::Cpu);
        MixedOp::new(&vs.root(), 4, 3, 1);
        let mut names: Vec<String> = vs.variables().into_keys().filter(|k| k.ends_with("weight")).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "dil_conv_3x3.stage1.dw.weight",
                "dil_conv_3x3.stage1.pw.weight",
                "dil_conv_5x5.stage1.dw.weight",
                "dil_conv_5x5.stage1.pw.weight",
                "sep_conv_3x3.stage1.dw.weight",
                "sep_conv_3x3.stage1.pw.weight",
                "sep_conv_3x3.stage2.dw.weight",
                "sep_conv_3x3.stage2.pw.weight",
                "sep_conv_5x5.stage1.dw.weight",
                "sep_conv_5x5.stage1.pw.weight",
                "sep_conv_5x5.stage2.dw.weight",
                "sep_conv_5x5.stage2.pw.weight",
            ]
        );
    }
}
