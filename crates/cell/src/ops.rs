//! The candidate operations as modules (paper §3.1, §4.1.1).
//!
//! Two definitions exist (see `../shared/docs/autodeeplab-facts.md` §2):
//! - [`OpStyle::Search`], as in DARTS `operations.py` and the public PyTorch port, so that search
//!   costs compare like for like: separable conv = (ReLU, depthwise kxk, pointwise 1x1, BN)
//!   twice; atrous conv = ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN; pooling
//!   followed by BN; every BN without affine parameters.
//! - [`OpStyle::Deployed`], as in the official TF `nas_cell.py`, the only way the paper's
//!   parameter counts come out: BN with scale and offset, atrous conv = ReLU, FULL kxk conv with
//!   dilation 2, BN; pooling without BN. With stride 2 (a cell moving one level coarser) atrous
//!   convs resize bilinearly to half size and use rate 1, and skip becomes ReLU, 1x1 conv with
//!   stride 2, BN, exactly as the TF code does.
//!
//! Convolutions have no bias. `none` builds no module at all: it contributes nothing.

use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::conv::Conv2d;

use crate::primitive::{Pooling, Primitive, SearchOp};

/// Which definition of the ops to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpStyle {
    /// DARTS definitions, BN without affine parameters (the search network).
    Search,
    /// Official TF definitions, BN with scale and offset (the retrained network).
    Deployed,
}

impl OpStyle {
    /// Whether batch norms of this style carry scale and offset.
    pub fn affine(self) -> bool {
        matches!(self, OpStyle::Deployed)
    }
}

/// One step of an op's pipeline.
#[derive(Debug)]
enum Layer {
    Relu,
    Conv(Conv2d),
    BatchNorm(nn::BatchNorm),
    MaxPool {
        stride: i64,
    },
    AvgPool {
        stride: i64,
    },
    /// Bilinear resize to `(n - 1) / 2 + 1` per side, corners aligned (DeepLab's halving).
    HalveBilinear,
}

impl Layer {
    fn forward_t(&self, xs: &Tensor, train: bool, groups: i64) -> Tensor {
        match self {
            Layer::Relu => xs.relu(),
            Layer::Conv(conv) => xs.apply(conv),
            Layer::BatchNorm(bn) => grouped_batch_norm(bn, xs, train, groups),
            Layer::MaxPool { stride } => xs.max_pool2d([3, 3], [*stride, *stride], [1, 1], [1, 1], false),
            Layer::AvgPool { stride } => xs.avg_pool2d([3, 3], [*stride, *stride], [1, 1], false, false, None),
            Layer::HalveBilinear => {
                let (_, _, h, w) = xs.size4().expect("op input is [N, C, H, W]");
                xs.upsample_bilinear2d([(h - 1) / 2 + 1, (w - 1) / 2 + 1], true, None, None)
            }
        }
    }
}

/// Momentum of every batch norm's running statistics (PyTorch's default).
pub const BN_MOMENTUM: f64 = 0.1;
/// Epsilon of every batch norm (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

thread_local! {
    static RUNNING_STATS_FROZEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the running statistics of every batch norm in [`grouped_batch_norm`] left as
/// they are: training-mode norms still normalise by their batch's statistics, but do not
/// update the running ones. A recomputed forward pass (a backward strategy that runs layers
/// twice) uses this so that each step updates the statistics once, without knowing where the
/// norms are.
pub fn with_running_stats_frozen<R>(f: impl FnOnce() -> R) -> R {
    let before = RUNNING_STATS_FROZEN.with(|c| c.replace(true));
    let result = f();
    RUNNING_STATS_FROZEN.with(|c| c.set(before));
    result
}

fn running_stats_frozen() -> bool {
    RUNNING_STATS_FROZEN.with(|c| c.get())
}

/// A training-mode batch norm computed elsewhere: `(x, weight, bias, running_mean, running_var,
/// momentum, eps) -> y`, with the batch statistics of more than this process's batch
/// (synchronised batch norm across the ranks of a distributed run).
pub type BatchNormHook = dyn Fn(&Tensor, Option<&Tensor>, Option<&Tensor>, &Tensor, &Tensor, f64, f64) -> Tensor;

thread_local! {
    static BATCH_NORM_HOOK: std::cell::RefCell<Option<std::rc::Rc<BatchNormHook>>> = const { std::cell::RefCell::new(None) };
}

/// Makes every training-mode batch norm of this thread ([`grouped_batch_norm`], so every norm of
/// the cells, heads and decoded networks) go through `hook` (None: libtorch's own again).
pub fn set_batch_norm_hook(hook: Option<std::rc::Rc<BatchNormHook>>) {
    BATCH_NORM_HOOK.with(|h| *h.borrow_mut() = hook);
}

/// Training-mode batch norm with batch statistics, through the hook when one is set.
#[allow(clippy::too_many_arguments)]
fn train_batch_norm(
    xs: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f64,
) -> Tensor {
    match BATCH_NORM_HOOK.with(|h| h.borrow().clone()) {
        Some(hook) => hook(xs, weight, bias, running_mean, running_var, momentum, BN_EPS),
        None => xs.batch_norm(weight, bias, Some(running_mean), Some(running_var), true, momentum, BN_EPS, true),
    }
}

/// Batch norm over `channels`, with scale and offset only when `affine`.
pub fn batch_norm(p: nn::Path, channels: i64, affine: bool) -> nn::BatchNorm {
    let config = nn::BatchNormConfig { affine, momentum: BN_MOMENTUM, eps: BN_EPS, ..Default::default() };
    nn::batch_norm2d(p, channels, config)
}

/// Batch norm of `[groups * N, C, H, W]`, the concatenation of `groups` sub-batches of `N`
/// (transition-major), each normalised with its own batch statistics, exactly as `groups`
/// separate calls would: the sub-batches are folded into channels (`[N, groups * C, H, W]`)
/// for one fused call. The running statistics come out as `groups` updates in order would
/// leave them: the fused call updates one slot per sub-batch (slot 0 starting from the running
/// value, the others from zero), and with momentum m the result is
/// `sum_g (1 - m)^(groups - 1 - g) * slot_g`, so the data is read once, by the norm itself.
/// In evaluation mode (running statistics) and for one group this is plain batch norm.
pub fn grouped_batch_norm(bn: &nn::BatchNorm, xs: &Tensor, train: bool, groups: i64) -> Tensor {
    let frozen = running_stats_frozen();
    if !train {
        return xs.apply_t(bn, train);
    }
    if groups == 1 {
        // Momentum 0 when frozen: the running statistics stay exactly as they are.
        let momentum = if frozen { 0.0 } else { BN_MOMENTUM };
        return train_batch_norm(xs, bn.ws.as_ref(), bn.bs.as_ref(), &bn.running_mean, &bn.running_var, momentum);
    }
    let (total, c, h, w) = xs.size4().expect("batch norm input is [N, C, H, W]");
    let n = total / groups;
    // Row 0 the running mean, row 1 the running variance, one slot of C per sub-batch.
    let slots = tch::no_grad(|| {
        let running = Tensor::stack(&[&bn.running_mean, &bn.running_var], 0);
        Tensor::cat(&[running, Tensor::zeros([2, (groups - 1) * c], (bn.running_mean.kind(), xs.device()))], 1)
    });
    let folded = xs.view([groups, n, c, h, w]).transpose(0, 1).reshape([n, groups * c, h, w]);
    let weight = bn.ws.as_ref().map(|t| t.repeat([groups]));
    let bias = bn.bs.as_ref().map(|t| t.repeat([groups]));
    let ys = train_batch_norm(&folded, weight.as_ref(), bias.as_ref(), &slots.get(0), &slots.get(1), BN_MOMENTUM);
    if frozen {
        return ys.view([n, groups, c, h, w]).transpose(0, 1).reshape([total, c, h, w]);
    }
    tch::no_grad(|| {
        let combined =
            (slots.view([2, groups, c]) * decay(groups, xs.device())).sum_dim_intlist(1, false, slots.kind());
        bn.running_mean.shallow_clone().copy_(&combined.get(0));
        bn.running_var.shallow_clone().copy_(&combined.get(1));
    });
    ys.view([n, groups, c, h, w]).transpose(0, 1).reshape([total, c, h, w])
}

/// Copies the parameters and running statistics of `source` into `target` (same channels).
pub fn copy_batch_norm(target: &nn::BatchNorm, source: &nn::BatchNorm) {
    tch::no_grad(|| {
        target.running_mean.shallow_clone().copy_(&source.running_mean);
        target.running_var.shallow_clone().copy_(&source.running_var);
        if let (Some(t), Some(s)) = (&target.ws, &source.ws) {
            t.shallow_clone().copy_(s);
        }
        if let (Some(t), Some(s)) = (&target.bs, &source.bs) {
            t.shallow_clone().copy_(s);
        }
    });
}

/// `[1, groups, 1]`: `(1 - m)^(groups - 1 - g)` for sub-batch g, built once per thread, group
/// count and device.
fn decay(groups: i64, device: tch::Device) -> Tensor {
    thread_local! {
        static DECAY: std::cell::RefCell<std::collections::HashMap<(i64, tch::Device), Tensor>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    DECAY.with(|cache| {
        cache
            .borrow_mut()
            .entry((groups, device))
            .or_insert_with(|| {
                let decay: Vec<f32> =
                    (0..groups).map(|g| (1.0 - BN_MOMENTUM).powi((groups - 1 - g) as i32) as f32).collect();
                Tensor::from_slice(&decay).to_device(device).view([1, groups, 1])
            })
            .shallow_clone()
    })
}

/// A bias-free 2-D convolution with "same" padding for odd kernels.
fn conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, dilation: i64, groups: i64) -> Conv2d {
    let config = nn::ConvConfig {
        stride,
        padding: dilation * (kernel - 1) / 2,
        dilation,
        groups,
        bias: false,
        ..Default::default()
    };
    Conv2d::new(p, c_in, c_out, kernel, config)
}

/// ReLU, kxk convolution, BN: `[N, c_in, H, W] -> [N, c_out, H/stride, W/stride]`.
/// Used for cell input preprocessing (1x1) and resampling between levels.
#[derive(Debug)]
pub struct ReluConvBn {
    conv: Conv2d,
    bn: nn::BatchNorm,
}

impl ReluConvBn {
    /// Builds the block under `p` (`p / "conv"`, `p / "bn"`).
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, affine: bool) -> ReluConvBn {
        ReluConvBn {
            conv: conv(p / "conv", c_in, c_out, kernel, stride, 1, 1),
            bn: batch_norm(p / "bn", c_out, affine),
        }
    }
}

impl ReluConvBn {
    /// Copies `other`'s weights and batch-norm statistics into this block (same shape): how
    /// the equivalence tests give two implementations the same function.
    pub fn copy_from(&self, other: &ReluConvBn) {
        copy_batch_norm(&self.bn, &other.bn);
        tch::no_grad(|| self.conv.weight().copy_(&other.conv.weight()));
    }

    /// Forward pass over `groups` stacked sub-batches (see [`grouped_batch_norm`]).
    pub fn forward_grouped(&self, xs: &Tensor, train: bool, groups: i64) -> Tensor {
        grouped_batch_norm(&self.bn, &xs.relu().apply(&self.conv), train, groups)
    }
}

impl ModuleT for ReluConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_grouped(xs, train, 1)
    }
}

/// What to build for one edge: a primitive at a channel count, stride and style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpConfig {
    /// The candidate operation.
    pub primitive: Primitive,
    /// Input and output channels C.
    pub channels: i64,
    /// 1, or 2 where a deployed cell moves one level coarser.
    pub stride: i64,
    /// Search-time or deployed definitions.
    pub style: OpStyle,
}

impl OpConfig {
    /// Builds the op under `p`; `None` for [`Primitive::None`], which computes nothing.
    pub fn build(&self, p: &nn::Path) -> Option<Op> {
        assert!(self.stride == 1 || self.stride == 2, "op stride must be 1 or 2, got {}", self.stride);
        let layers = match self.style {
            OpStyle::Search => self.search_layers(p)?,
            OpStyle::Deployed => self.deployed_layers(p)?,
        };
        Some(Op { primitive: self.primitive, layers })
    }

    /// The search-time definition, from the op registry ([`Primitive::search_op`]); the
    /// stages' variables are `dw{i}`, `pw{i}`, `bn{i}` from 1.
    fn search_layers(&self, p: &nn::Path) -> Option<Vec<Layer>> {
        let (c, s) = (self.channels, self.stride);
        let bn = |name: String| Layer::BatchNorm(batch_norm(p / name, c, false));
        Some(match self.primitive.search_op() {
            SearchOp::Zero => return None,
            SearchOp::Identity => Vec::new(),
            SearchOp::Pool(Pooling::Max) => vec![Layer::MaxPool { stride: s }, bn("bn".into())],
            SearchOp::Pool(Pooling::Average) => vec![Layer::AvgPool { stride: s }, bn("bn".into())],
            SearchOp::Convolution(stages) => stages
                .iter()
                .enumerate()
                .flat_map(|(i, stage)| {
                    let (i, stride) = (i + 1, if i == 0 { s } else { 1 });
                    [
                        Layer::Relu,
                        Layer::Conv(conv(p / format!("dw{i}"), c, c, stage.kernel, stride, stage.dilation, c)),
                        Layer::Conv(conv(p / format!("pw{i}"), c, c, 1, 1, 1, 1)),
                        bn(format!("bn{i}")),
                    ]
                })
                .collect(),
        })
    }

    /// The deployed definition (TF `nas_cell.py`; see the module documentation).
    fn deployed_layers(&self, p: &nn::Path) -> Option<Vec<Layer>> {
        let (c, s) = (self.channels, self.stride);
        let bn = || Layer::BatchNorm(batch_norm(p / "bn", c, true));
        let sep = |k: i64| -> Vec<Layer> {
            let mut layers = Vec::with_capacity(8);
            for (i, stride) in [(1, s), (2, 1)] {
                layers.push(Layer::Relu);
                layers.push(Layer::Conv(conv(p / format!("dw{i}"), c, c, k, stride, 1, c)));
                layers.push(Layer::Conv(conv(p / format!("pw{i}"), c, c, 1, 1, 1, 1)));
                layers.push(Layer::BatchNorm(batch_norm(p / format!("bn{i}"), c, true)));
            }
            layers
        };
        let atrous = |k: i64| -> Vec<Layer> {
            if s == 1 {
                vec![Layer::Relu, Layer::Conv(conv(p / "conv", c, c, k, 1, 2, 1)), bn()]
            } else {
                vec![Layer::Relu, Layer::HalveBilinear, Layer::Conv(conv(p / "conv", c, c, k, 1, 1, 1)), bn()]
            }
        };
        Some(match self.primitive {
            Primitive::None => return None,
            Primitive::MaxPool3x3 => vec![Layer::MaxPool { stride: s }],
            Primitive::AvgPool3x3 => vec![Layer::AvgPool { stride: s }],
            Primitive::SkipConnect if s == 1 => Vec::new(),
            Primitive::SkipConnect => vec![Layer::Relu, Layer::Conv(conv(p / "conv", c, c, 1, s, 1, 1)), bn()],
            Primitive::SepConv3x3 => sep(3),
            Primitive::SepConv5x5 => sep(5),
            Primitive::DilConv3x3 => atrous(3),
            Primitive::DilConv5x5 => atrous(5),
        })
    }
}

/// One built operation: `[N, C, H, W] -> [N, C, H', W']` with `H' = H` at stride 1 and
/// `H' = (H - 1) / 2 + 1` at stride 2.
#[derive(Debug)]
pub struct Op {
    primitive: Primitive,
    layers: Vec<Layer>,
}

impl Op {
    /// The primitive this op computes.
    pub fn primitive(&self) -> Primitive {
        self.primitive
    }

    /// The weights of its convolutions, in order (e.g. dw1, pw1, dw2, pw2 for a separable op).
    pub fn conv_weights(&self) -> Vec<Tensor> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Conv(conv) => Some(conv.weight()),
                _ => None,
            })
            .collect()
    }

    /// Whether the op begins with a ReLU of its input (every convolution op does).
    pub fn starts_with_relu(&self) -> bool {
        matches!(self.layers.first(), Some(Layer::Relu))
    }

    /// Forward pass over `groups` stacked sub-batches (see [`grouped_batch_norm`]). When
    /// `relu_xs` is given it must be `xs.relu()`: ops that start with a ReLU use it instead
    /// of computing their own (a mixed op computes it once for its four convolutions).
    pub fn forward_grouped(&self, xs: &Tensor, relu_xs: Option<&Tensor>, train: bool, groups: i64) -> Tensor {
        let (input, layers) = match (relu_xs, self.layers.split_first()) {
            (Some(relu), Some((Layer::Relu, rest))) => (relu, rest),
            _ => (xs, self.layers.as_slice()),
        };
        match layers.split_first() {
            None => input.shallow_clone(),
            Some((first, rest)) => rest
                .iter()
                .fold(first.forward_t(input, train, groups), |acc, layer| layer.forward_t(&acc, train, groups)),
        }
    }
}

impl ModuleT for Op {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_grouped(xs, None, train, 1)
    }
}
