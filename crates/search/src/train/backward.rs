//! Backward strategies of a search step (docs/performance.md). The step owns the loss; a
//! strategy is given it and the parameters whose gradients it asks for ([`Wrt`]: weights,
//! architecture parameters, or both), runs forward, loss and backward its own way, and returns
//! those gradients ([`Gradients`]) without touching any `.grad` — so that the architecture step
//! can ask for ∇w and ∇α separately (second-order DARTS, `crate::train::architect`). The values
//! and gradients are the same either way (tested), only memory and time differ:
//! - [`plain`]: one forward pass keeping every activation, then `backward`;
//! - [`recomputed`]: some layers' activations are recomputed in the backward pass instead of
//!   kept (a memory-saving mode chosen by the execution's recompute policy).

use tch::{Kind, Tensor};
use trellis::{level_sizes, ArchParams, ArchWeights, Levels, RecomputePlan, SearchNetwork, NUM_LEVELS};

use crate::train::optim::Grads;
use crate::train::precision::Precision;

/// A loss of logits `[N, classes, H, W]`: a scalar tensor.
pub type Loss<'a> = &'a dyn Fn(&Tensor) -> Tensor;

/// The parameters a backward pass is asked for: weights and architecture parameters (either may
/// be empty). Architecture weights are constants (no graph into α and β) when `arch` is empty,
/// and the stem runs without a graph when `weights` is. `constant` are parameters held constant
/// for the pass (`crate::train::step::gradients` turns their `requires_grad` off and back on), so
/// that no graph is recorded into them: the weights during an architecture-only pass, which
/// then costs what a pass with frozen weights costs.
#[derive(Clone, Copy, Default)]
pub struct Wrt<'a> {
    pub weights: &'a [Tensor],
    pub arch: &'a [Tensor],
    pub constant: &'a [Tensor],
}

impl<'a> Wrt<'a> {
    /// The weights' gradients only (α and β constants): the weight step.
    pub fn weights(weights: &'a [Tensor]) -> Wrt<'a> {
        Wrt { weights, ..Wrt::default() }
    }

    /// The architecture's gradients only, `weights` held constant: the first-order
    /// architecture step and the second order's Hessian passes.
    pub fn arch(arch: &'a [Tensor], weights: &'a [Tensor]) -> Wrt<'a> {
        Wrt { arch, constant: weights, ..Wrt::default() }
    }

    /// The architecture weights of one pass: with a graph into α and β when asked for.
    fn arch_weights(&self, arch: &ArchParams) -> ArchWeights {
        if self.arch.is_empty() {
            tch::no_grad(|| arch.weights())
        } else {
            arch.weights()
        }
    }

    /// All the asked-for tensors, weights first.
    fn all(&self) -> Vec<&'a Tensor> {
        self.weights.iter().chain(self.arch).collect()
    }
}

/// What a backward pass returns: the loss value and the gradients asked for, aligned with
/// [`Wrt`]'s lists (`None`: the parameter took no part). With a non-finite loss nothing is
/// back-propagated and every gradient is `None`.
pub struct Gradients {
    pub loss: f64,
    pub weights: Grads,
    pub arch: Grads,
    /// Seconds of the forward pass (0 for a recomputed pass, which interleaves the two).
    pub forward_seconds: f64,
    /// Seconds of the backward pass (set by `crate::train::step::gradients`, which times the
    /// whole pass with the device's queued work).
    pub backward_seconds: f64,
}

impl Gradients {
    fn none(loss: f64, wrt: &Wrt, forward_seconds: f64) -> Gradients {
        Gradients {
            loss,
            weights: wrt.weights.iter().map(|_| None).collect(),
            arch: wrt.arch.iter().map(|_| None).collect(),
            forward_seconds,
            backward_seconds: 0.0,
        }
    }

    /// Adds the gradients of `roots` with respect to `wrt` (and, for the recomputed pass,
    /// `leaves` after them, returned) to these.
    fn accumulate(&mut self, roots: &[Tensor], wrt: &Wrt, leaves: &[&Tensor]) -> Vec<Option<Tensor>> {
        let mut inputs = wrt.all();
        inputs.extend(leaves);
        let mut grads = Tensor::run_backward(roots, &inputs, false, false).into_iter();
        for slot in self.weights.iter_mut().chain(self.arch.iter_mut()) {
            add(slot, grads.next().expect("one gradient per input"));
        }
        grads.map(|g| g.defined().then_some(g)).collect()
    }
}

/// Adds `g` (when defined: an input a graph did not reach has none) to `slot`.
pub fn add(slot: &mut Option<Tensor>, g: Tensor) {
    if g.defined() {
        *slot = Some(match slot.take() {
            Some(acc) => acc + g,
            None => g,
        })
    }
}

/// Forward (under autocast with a mixed `precision`), `loss` and backward in training mode;
/// returns the loss value and the gradients `wrt` asks for.
pub fn plain(
    net: &SearchNetwork,
    images: &Tensor,
    arch: &ArchParams,
    loss: Loss,
    precision: Precision,
    wrt: Wrt,
) -> Gradients {
    let start = std::time::Instant::now();
    let weights = wrt.arch_weights(arch);
    let logits = precision.run(|| net.forward_t(images, &weights, true));
    let loss = loss(&logits);
    let value = f64::try_from(&loss).expect("scalar loss");
    let mut out = Gradients::none(value, &wrt, start.elapsed().as_secs_f64());
    if value.is_finite() {
        out.accumulate(&[loss], &wrt, &[]);
    }
    out
}

/// Forward, `loss` and backward in training mode with the layers `plan` does not keep
/// recomputed in the backward pass. The recomputed layers run once without gradients,
/// keeping only their outputs; the kept ones run with gradients from their inputs as leaves (a
/// graph per layer); the heads and the loss run with gradients; then, from the last layer
/// down, each recomputed layer runs again from its kept inputs with gradients (its batch
/// norms' running statistics frozen, so that the step updates them once), and each layer is
/// back-propagated with the gradient of its outputs. Returns the loss value and the gradients
/// `wrt` asks for.
pub fn recomputed(
    net: &SearchNetwork,
    images: &Tensor,
    arch: &ArchParams,
    loss: Loss,
    plan: &RecomputePlan,
    wrt: Wrt,
) -> Gradients {
    let layers = net.num_layers();
    assert_eq!(plan.keep.len(), layers, "a recompute plan has one entry per layer");
    let (_, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
    let sizes = level_sizes(h, w);
    // Nothing below the cells needs a graph unless the weights' gradients are asked for.
    let stem = if wrt.weights.is_empty() { tch::no_grad(|| net.stem(images, true)) } else { net.stem(images, true) };
    let none = || -> Levels { [None, None, None, None] };
    let leaf = |t: &Option<Tensor>| t.as_ref().map(|t| t.detach().set_requires_grad(true));
    let leaves = |levels: &Levels| -> Levels { std::array::from_fn(|j| leaf(&levels[j])) };
    // Outputs of every layer (index 0 = the stem), kept without graphs; for kept layers also
    // their outputs with graphs and the leaves they were computed from.
    let mut outputs: Vec<Levels> = vec![[Some(stem.detach()), None, None, None]];
    let mut kept: Vec<Option<(Levels, Levels, Levels)>> = (0..layers).map(|_| None).collect();
    let constants = tch::no_grad(|| arch.weights());
    let empty = none();
    for l in 0..layers {
        let current = if plan.keep[l] {
            let prev = leaves(&outputs[l]);
            let prev_prev = if l == 0 { none() } else { leaves(&outputs[l - 1]) };
            let current = net.layer(l, &prev, &prev_prev, &wrt.arch_weights(arch), &sizes, true);
            let detached = std::array::from_fn(|j| current[j].as_ref().map(Tensor::detach));
            kept[l] = Some((current, prev, prev_prev));
            detached
        } else {
            let prev_prev = if l == 0 { &empty } else { &outputs[l - 1] };
            tch::no_grad(|| net.layer(l, &outputs[l], prev_prev, &constants, &sizes, true))
        };
        outputs.push(current);
    }
    let features: Levels = leaves(&outputs[layers]);
    let logits =
        net.heads_logits(&features.iter().flatten().map(Tensor::shallow_clone).collect::<Vec<_>>(), h, w, true);
    let loss = loss(&logits);
    let value = f64::try_from(&loss).expect("scalar loss");
    let mut out = Gradients::none(value, &wrt, 0.0);
    if !value.is_finite() {
        return out;
    }
    // Gradients of every layer's outputs, filled from the top down.
    let mut grads: Vec<Levels> = (0..=layers).map(|_| none()).collect();
    let feature_leaves: Vec<&Tensor> = features.iter().flatten().collect();
    let mut feature_grads = out.accumulate(&[loss], &wrt, &feature_leaves).into_iter();
    for (j, f) in features.iter().enumerate() {
        if f.is_some() {
            if let Some(g) = feature_grads.next().expect("one gradient per feature") {
                add(&mut grads[layers][j], g);
            }
        }
    }
    for l in (0..layers).rev() {
        let (current, prev, prev_prev) = kept[l].take().unwrap_or_else(|| {
            let prev = leaves(&outputs[l]);
            let prev_prev = if l == 0 { none() } else { leaves(&outputs[l - 1]) };
            let current = cell::ops::with_running_stats_frozen(|| {
                net.layer(l, &prev, &prev_prev, &wrt.arch_weights(arch), &sizes, true)
            });
            (current, prev, prev_prev)
        });
        let surrogate = current
            .iter()
            .zip(grads[l + 1].iter())
            .filter_map(|(y, g)| Some((y.as_ref()?, g.as_ref()?)))
            .map(|(y, g)| (y * g).sum(cell::alpha::float_or_double(y.kind())))
            .reduce(|a, b| a + b);
        let Some(surrogate) = surrogate else { continue };
        // The layer's inputs: H^{l-1} at each level, then H^{l-2} (layer 0 has none).
        let inputs: Vec<(usize, bool, &Tensor)> = (0..NUM_LEVELS)
            .filter_map(|j| prev[j].as_ref().map(|x| (j, true, x)))
            .chain((0..NUM_LEVELS).filter(|_| l > 0).filter_map(|j| prev_prev[j].as_ref().map(|x| (j, false, x))))
            .collect();
        let leaves: Vec<&Tensor> = inputs.iter().map(|(_, _, x)| *x).collect();
        let input_grads = out.accumulate(&[surrogate], &wrt, &leaves);
        for ((j, is_prev, _), g) in inputs.into_iter().zip(input_grads) {
            if let Some(g) = g {
                add(if is_prev { &mut grads[l][j] } else { &mut grads[l - 1][j] }, g);
            }
        }
    }
    if let (false, Some(stem_grad)) = (wrt.weights.is_empty(), grads[0][0].take()) {
        out.accumulate(&[(stem * stem_grad).sum(Kind::Float)], &wrt, &[]);
    }
    out
}
