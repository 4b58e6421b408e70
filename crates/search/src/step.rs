//! One bilevel search step (paper §4.2, first-order DARTS), shared by `search run` and
//! `search bench`: the weight step (SGD on trainA, α and β held constant) and the architecture
//! step (Adam on trainB, the weights frozen so that no weight gradient is computed). The step
//! owns the loss (pixel-wise cross entropy, 255 ignored) and hands it to the backward strategy
//! the execution settings choose ([`crate::backward`]); the network only computes logits.

use std::time::Instant;

use tch::{nn, Device, Tensor};
use trellis::{ArchParams, ArchWeights, RecomputePlan, SearchNetwork};

use crate::loss_scale::LossScaler;
use crate::optim::{Adam, Sgd};
use crate::precision::Precision;

/// Loss and the time spent in each phase of a step, in seconds (device work included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    pub loss: f64,
    pub forward: f64,
    pub backward: f64,
    pub update: f64,
    /// Averaging the gradients across the ranks (0 in one process).
    pub communication: f64,
    /// The value of the architecture loss's extra terms (`crate::arch_loss`), when any.
    pub penalty: Option<f64>,
}

impl StepTiming {
    /// Forward + backward + communication + update.
    pub fn total(&self) -> f64 {
        self.forward + self.backward + self.communication + self.update
    }
}

/// Waits for the device to finish queued work, so that wall-clock phases are honest on CUDA.
pub fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// Whether a batch of labels has any pixel that is not ignored (255).
pub fn has_labels(labels: &Tensor) -> bool {
    bool::try_from(labels.ne(255).any()).expect("scalar bool")
}

/// Cross entropy over the train ids, 255 ignored.
pub fn segmentation_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, 255, 0.0)
}

/// The network's recompute plan for this batch (`None`: the plain backward pass).
fn recompute_plan(net: &SearchNetwork, images: &Tensor) -> Option<RecomputePlan> {
    let (n, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
    net.recompute_plan(n, h, w)
}

/// Forward, loss and backward of one search step by the network's backward strategy; `arch`
/// gives the architecture weights (constants for the weight step). The loss is multiplied by
/// `scale` before the backward pass (fp16 loss scaling, [`crate::loss_scale`]; 1 otherwise).
/// Returns the (unscaled) loss value and the seconds of (forward, backward); a recomputed
/// step interleaves the two and reports all as backward.
fn loss_and_backward(
    net: &SearchNetwork,
    images: &Tensor,
    labels: &Tensor,
    arch: &dyn Fn() -> ArchWeights,
    precision: Precision,
    scale: f64,
) -> (f64, f64, f64) {
    let device = images.device();
    let start = Instant::now();
    let loss = |logits: &Tensor| {
        let loss = segmentation_loss(&logits.to_kind(tch::Kind::Float), labels);
        if scale == 1.0 {
            loss
        } else {
            loss * scale
        }
    };
    let (value, forward) = match recompute_plan(net, images) {
        Some(plan) => (precision.run(|| crate::backward::recomputed(net, images, arch, &loss, &plan)), 0.0),
        None => crate::backward::plain(net, images, &arch(), &loss, precision),
    };
    synchronize(device);
    (value / scale, forward, start.elapsed().as_secs_f64() - forward)
}

/// The weight step on one trainA batch (α and β held constant, so no gradient is computed for
/// them). With a non-finite loss nothing is updated (the caller decides what to do);
/// `grad_clip` 0 disables clipping. In a distributed run the gradients (and the loss) are
/// averaged across the ranks before the update. With a `scaler` (float16 autocast) the
/// loss is scaled, the averaged gradients unscaled before clipping, and a step whose
/// gradients overflowed is skipped ([`scaled_update`]).
#[allow(clippy::too_many_arguments)]
pub fn weight_step(
    net: &SearchNetwork,
    arch: &ArchParams,
    sgd: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    lr: f64,
    grad_clip: f64,
    precision: Precision,
    scaler: Option<&mut LossScaler>,
    dist: Option<&crate::dist::Group>,
) -> anyhow::Result<StepTiming> {
    sgd.params().zero_grad();
    let scale = LossScaler::factor(scaler.as_deref());
    let (mut loss, forward, backward) =
        loss_and_backward(net, images, labels, &|| tch::no_grad(|| arch.weights()), precision, scale);
    let start = Instant::now();
    if let Some(group) = dist {
        loss = group.average_gradients(sgd.params().tensors(), loss)?;
    }
    let communication = start.elapsed().as_secs_f64();
    let mut timing = StepTiming { loss, forward, backward, update: 0.0, communication, penalty: None };
    if loss.is_finite() {
        let start = Instant::now();
        scaled_update(sgd, scaler, lr, grad_clip)?;
        synchronize(images.device());
        timing.update = start.elapsed().as_secs_f64();
    }
    Ok(timing)
}

/// The SGD update of gradients computed from a loss scaled by `scaler` (none: the plain
/// update): unscale them, skip the step if any overflowed, then clip and step; the scaler
/// learns from the outcome. Returns whether the weights were updated. In a distributed run
/// call it after averaging: every rank then sees the same overflow and skips alike.
pub fn scaled_update(sgd: &mut Sgd, scaler: Option<&mut LossScaler>, lr: f64, grad_clip: f64) -> anyhow::Result<bool> {
    let Some(scaler) = scaler else {
        sgd.update(lr, grad_clip);
        return Ok(true);
    };
    let finite = scaler.unscale(sgd.params());
    scaler.update(finite)?;
    if finite {
        sgd.update(lr, grad_clip);
    } else {
        tracing::warn!(scale = scaler.scale, "fp16 gradients overflowed: step skipped, loss scale halved");
    }
    Ok(finite)
}

/// The architecture step on one trainB batch: the weight store is frozen for its duration, so
/// no weight gradient is computed. `penalty`, when given, computes the architecture loss's
/// extra terms (a function of α and β alone, `crate::arch_loss`), whose gradient is added to
/// the segmentation loss's before the update.
#[allow(clippy::too_many_arguments)]
pub fn arch_step(
    net: &SearchNetwork,
    arch: &ArchParams,
    weights: &mut nn::VarStore,
    adam: &mut Adam,
    images: &Tensor,
    labels: &Tensor,
    penalty: Option<&dyn Fn() -> Tensor>,
    dist: Option<&crate::dist::Group>,
) -> anyhow::Result<StepTiming> {
    weights.freeze();
    adam.params().zero_grad();
    let (mut loss, forward, mut backward) =
        loss_and_backward(net, images, labels, &|| arch.weights(), Precision::Full, 1.0);
    let penalty = penalty.map(|f| {
        let start = Instant::now();
        let p = f();
        let value = f64::try_from(&p).expect("a scalar penalty");
        p.backward();
        backward += start.elapsed().as_secs_f64();
        value
    });
    let start = Instant::now();
    if let Some(group) = dist {
        loss = group.average_gradients(adam.params().tensors(), loss)?;
    }
    let communication = start.elapsed().as_secs_f64();
    let mut timing = StepTiming { loss, forward, backward, update: 0.0, communication, penalty };
    if loss.is_finite() && penalty.is_none_or(f64::is_finite) {
        let start = Instant::now();
        adam.step();
        synchronize(images.device());
        timing.update = start.elapsed().as_secs_f64();
    }
    weights.unfreeze();
    Ok(timing)
}
