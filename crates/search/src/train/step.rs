//! The weight step of the bilevel search (paper §4.2), shared by `search run` and `search
//! bench`: SGD on a trainA batch with α and β held constant. The step owns the loss (pixel-wise
//! cross entropy, 255 ignored) and hands it to the backward strategy the execution settings
//! choose ([`crate::train::backward`]), asking for the gradients it needs; the network only
//! computes logits. The architecture step is the Architect's (`crate::train::architect`).

use std::time::Instant;

use tch::Tensor;
use trellis::{ArchParams, RecomputePlan, SearchNetwork};

use crate::train::backward::{self, Gradients, Wrt};
use crate::train::optim::Sgd;
use crate::train::optimised::{Applied, Optimised};
use crate::train::precision::Precision;

/// Loss and the time spent in each phase of a step, in seconds (device work included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    pub loss: f64,
    pub forward: f64,
    pub backward: f64,
    pub update: f64,
    /// Averaging the gradients across the ranks (0 in one process).
    pub communication: f64,
    /// The value of the architecture loss's extra terms (`crate::train::arch_loss`), when any.
    pub penalty: Option<f64>,
    /// Whether the batch had a labelled pixel (without one, a single process skips the step
    /// and a rank of a distributed run joins the averaging with zero gradients).
    pub labelled: bool,
}

impl StepTiming {
    /// The timing of a batch without a labelled pixel (`applied`: a distributed rank's update).
    pub fn empty(applied: Option<Applied>) -> StepTiming {
        let applied = applied.unwrap_or(Applied { loss: f64::NAN, updated: false, communication: 0.0, update: 0.0 });
        StepTiming {
            loss: applied.loss,
            forward: 0.0,
            backward: 0.0,
            update: applied.update,
            communication: applied.communication,
            penalty: None,
            labelled: false,
        }
    }

    /// Forward + backward + communication + update.
    pub fn total(&self) -> f64 {
        self.forward + self.backward + self.communication + self.update
    }
}

/// Whether a batch of labels has any pixel that is not ignored (255).
pub fn has_labels(labels: &Tensor) -> bool {
    bool::try_from(labels.ne(255).any()).expect("scalar bool")
}

/// Cross entropy over the train ids, 255 ignored, computed in fp32 (in double for logits in
/// double).
pub fn segmentation_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    let logits = logits.to_kind(cell::alpha::float_or_double(logits.kind()));
    logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, 255, 0.0)
}

/// The network's recompute plan for this batch (`None`: the plain backward pass).
fn recompute_plan(net: &SearchNetwork, images: &Tensor) -> Option<RecomputePlan> {
    let (n, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
    net.recompute_plan(n, h, w)
}

/// A batch of images `[N, 3, H, W]` and their train-id labels `[N, H, W]` (255 ignored).
#[derive(Clone, Copy)]
pub struct Labelled<'a> {
    pub images: &'a Tensor,
    pub labels: &'a Tensor,
}

/// Forward, loss and backward of one search step by the network's backward strategy (the
/// recompute plan of its execution settings), with the gradients `wrt` asks for. The loss is
/// multiplied by `scale` before the backward pass (fp16 loss scaling,
/// [`crate::train::loss_scale`]; 1 otherwise); the returned loss value is unscaled. Timed,
/// device work included: a recomputed pass interleaves forward and backward and reports all as
/// backward.
pub fn gradients(
    net: &SearchNetwork,
    arch: &ArchParams,
    batch: Labelled,
    precision: Precision,
    scale: f64,
    wrt: Wrt,
) -> Gradients {
    let start = Instant::now();
    let labels = batch.labels;
    let loss = |logits: &Tensor| {
        let loss = segmentation_loss(logits, labels);
        if scale == 1.0 {
            loss
        } else {
            loss * scale
        }
    };
    let held: Vec<Tensor> = wrt.constant.iter().filter(|t| t.requires_grad()).map(Tensor::shallow_clone).collect();
    for t in &held {
        let _ = t.set_requires_grad(false);
    }
    let mut out = match recompute_plan(net, batch.images) {
        Some(plan) => precision.run(|| backward::recomputed(net, batch.images, arch, &loss, &plan, wrt)),
        None => backward::plain(net, batch.images, arch, &loss, precision, wrt),
    };
    for t in &held {
        let _ = t.set_requires_grad(true);
    }
    out.loss /= scale;
    crate::device::synchronize(batch.images.device());
    out.backward_seconds = start.elapsed().as_secs_f64() - out.forward_seconds;
    out
}

/// The weight step on one trainA batch (α and β held constant, so no gradient is computed for
/// them): the weights' gradients go through [`Optimised::apply`] (averaged across the ranks,
/// unscaled and checked for overflow under float16 loss scaling, clipped, SGD at `lr`). With a
/// non-finite loss nothing is updated (the caller decides what to do). A batch without a
/// labelled pixel takes [`Optimised::apply_empty`] (`labelled` false in the timing).
pub fn weight_step(
    net: &SearchNetwork,
    arch: &ArchParams,
    weights: &mut Optimised<Sgd>,
    batch: Labelled,
    lr: f64,
    precision: Precision,
) -> anyhow::Result<StepTiming> {
    if !has_labels(batch.labels) {
        let applied = weights.apply_empty(lr)?;
        return Ok(StepTiming::empty(applied));
    }
    let scale = weights.loss_factor();
    let wrt = Wrt::weights(weights.params().tensors());
    let grads = gradients(net, arch, batch, precision, scale, wrt);
    let (forward, backward) = (grads.forward_seconds, grads.backward_seconds);
    let applied = weights.apply(grads.weights, grads.loss, lr)?;
    Ok(StepTiming {
        loss: applied.loss,
        forward,
        backward,
        update: applied.update,
        communication: applied.communication,
        penalty: None,
        labelled: true,
    })
}
