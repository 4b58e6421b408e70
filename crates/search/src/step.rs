//! One bilevel search step (paper §4.2, first-order DARTS), shared by `search run` and
//! `search bench`: the weight step (SGD on trainA, α and β held constant) and the architecture
//! step (Adam on trainB, the weights frozen so that no weight gradient is computed).

use std::time::Instant;

use tch::{nn, Device, Tensor};
use trellis::{ArchParams, RecomputePlan, SearchNetwork};

use crate::optim::{Adam, Sgd};

/// Loss and the time spent in each phase of a step, in seconds (device work included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    pub loss: f64,
    pub forward: f64,
    pub backward: f64,
    pub update: f64,
}

impl StepTiming {
    /// Forward + backward + update.
    pub fn total(&self) -> f64 {
        self.forward + self.backward + self.update
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

/// The weight step on one trainA batch. With a non-finite loss nothing is updated (the caller
/// decides what to do); `grad_clip` 0 disables clipping.
#[allow(clippy::too_many_arguments)]
pub fn weight_step(
    net: &SearchNetwork,
    arch: &ArchParams,
    store: &nn::VarStore,
    sgd: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
    lr: f64,
    grad_clip: f64,
    autocast: bool,
) -> StepTiming {
    let device = images.device();
    let start = Instant::now();
    sgd.params().zero_grad();
    if let Some(plan) = recompute_plan(net, images) {
        let value = net.loss_backward_recomputed(images, labels, &|| tch::no_grad(|| arch.weights()), store, &plan);
        synchronize(device);
        let forward_backward = start.elapsed().as_secs_f64();
        if !value.is_finite() {
            return StepTiming { loss: value, forward: forward_backward, backward: 0.0, update: 0.0 };
        }
        let start = Instant::now();
        if grad_clip > 0.0 {
            sgd.params().clip_grad_norm(grad_clip);
        }
        sgd.step(lr);
        synchronize(device);
        // Forward and backward interleave here; the time is reported as backward.
        return StepTiming {
            loss: value,
            forward: 0.0,
            backward: forward_backward,
            update: start.elapsed().as_secs_f64(),
        };
    }
    let constants = tch::no_grad(|| arch.weights());
    let logits = tch::autocast(autocast && device.is_cuda(), || net.forward_t(images, &constants, true));
    let loss = segmentation_loss(&logits, labels);
    let value = f64::try_from(&loss).expect("scalar loss");
    let forward = start.elapsed().as_secs_f64();
    if !value.is_finite() {
        return StepTiming { loss: value, forward, backward: 0.0, update: 0.0 };
    }
    let start = Instant::now();
    loss.backward();
    synchronize(device);
    let backward = start.elapsed().as_secs_f64();
    let start = Instant::now();
    if grad_clip > 0.0 {
        sgd.params().clip_grad_norm(grad_clip);
    }
    sgd.step(lr);
    synchronize(device);
    StepTiming { loss: value, forward, backward, update: start.elapsed().as_secs_f64() }
}

/// The architecture step on one trainB batch: the weight store is frozen for its duration.
pub fn arch_step(
    net: &SearchNetwork,
    arch: &ArchParams,
    weights: &mut nn::VarStore,
    adam: &mut Adam,
    images: &Tensor,
    labels: &Tensor,
) -> StepTiming {
    let device = images.device();
    weights.freeze();
    let start = Instant::now();
    adam.params().zero_grad();
    if let Some(plan) = recompute_plan(net, images) {
        let value = net.loss_backward_recomputed(images, labels, &|| arch.weights(), weights, &plan);
        synchronize(device);
        let mut timing = StepTiming { loss: value, forward: 0.0, backward: start.elapsed().as_secs_f64(), update: 0.0 };
        if value.is_finite() {
            let start = Instant::now();
            adam.step();
            synchronize(device);
            timing.update = start.elapsed().as_secs_f64();
        }
        weights.unfreeze();
        return timing;
    }
    let logits = net.forward_t(images, &arch.weights(), true);
    let loss = segmentation_loss(&logits, labels);
    let value = f64::try_from(&loss).expect("scalar loss");
    let forward = start.elapsed().as_secs_f64();
    let mut timing = StepTiming { loss: value, forward, backward: 0.0, update: 0.0 };
    if value.is_finite() {
        let start = Instant::now();
        loss.backward();
        synchronize(device);
        timing.backward = start.elapsed().as_secs_f64();
        let start = Instant::now();
        adam.step();
        synchronize(device);
        timing.update = start.elapsed().as_secs_f64();
    }
    weights.unfreeze();
    timing
}
