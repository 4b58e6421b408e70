//! Backward strategies of a search step (docs/performance.md). The step owns the loss; a
//! strategy is given it and runs forward, loss and backward its own way. The values and
//! gradients are the same either way (tested), only memory and time differ:
//! - [`plain`]: one forward pass keeping every activation, then `backward`;
//! - [`recomputed`]: some layers' activations are recomputed in the backward pass instead of
//!   kept (a memory-saving mode chosen by the execution's recompute policy).

use tch::{Kind, Tensor};
use trellis::{level_sizes, ArchWeights, Levels, RecomputePlan, SearchNetwork, NUM_LEVELS};

/// A loss of logits `[N, classes, H, W]`: a scalar tensor.
pub type Loss<'a> = &'a dyn Fn(&Tensor) -> Tensor;

/// Forward (under autocast with a mixed `precision`), `loss` and backward in training mode;
/// returns the loss value and the seconds the forward pass took. With a non-finite loss
/// nothing is back-propagated.
pub fn plain(
    net: &SearchNetwork,
    images: &Tensor,
    arch: &ArchWeights,
    loss: Loss,
    precision: crate::precision::Precision,
) -> (f64, f64) {
    let start = std::time::Instant::now();
    let logits = precision.run(|| net.forward_t(images, arch, true));
    let loss = loss(&logits);
    let value = f64::try_from(&loss).expect("scalar loss");
    let forward = start.elapsed().as_secs_f64();
    if value.is_finite() {
        loss.backward();
    }
    (value, forward)
}

/// Forward, `loss` and backward in training mode with the layers `plan` does not keep
/// recomputed in the backward pass. The recomputed layers run once without gradients,
/// keeping only their outputs; the kept ones run with gradients from their inputs as leaves (a
/// graph per layer); the heads and the loss run with gradients; then, from the last layer
/// down, each recomputed layer runs again from its kept inputs with gradients (its batch
/// norms' running statistics frozen, so that the step updates them once), and each layer is
/// back-propagated with the gradient of its outputs. `arch` is called for each pass that needs
/// the architecture weights (fresh graphs into α and β, or constants). Returns the loss value.
pub fn recomputed(
    net: &SearchNetwork,
    images: &Tensor,
    arch: &dyn Fn() -> ArchWeights,
    loss: Loss,
    plan: &RecomputePlan,
) -> f64 {
    let layers = net.num_layers();
    assert_eq!(plan.keep.len(), layers, "a recompute plan has one entry per layer");
    let (_, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
    let sizes = level_sizes(h, w);
    let stem = net.stem(images, true);
    let none = || -> Levels { [None, None, None, None] };
    let leaf = |t: &Option<Tensor>| t.as_ref().map(|t| t.detach().set_requires_grad(true));
    let leaves = |levels: &Levels| -> Levels { std::array::from_fn(|j| leaf(&levels[j])) };
    // Outputs of every layer (index 0 = the stem), kept without graphs; for kept layers also
    // their outputs with graphs and the leaves they were computed from.
    let mut outputs: Vec<Levels> = vec![[Some(stem.detach()), None, None, None]];
    let mut kept: Vec<Option<(Levels, Levels, Levels)>> = (0..layers).map(|_| None).collect();
    let constants = tch::no_grad(arch);
    let empty = none();
    for l in 0..layers {
        let current = if plan.keep[l] {
            let prev = leaves(&outputs[l]);
            let prev_prev = if l == 0 { none() } else { leaves(&outputs[l - 1]) };
            let current = net.layer(l, &prev, &prev_prev, &arch(), &sizes, true);
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
    if !value.is_finite() {
        return value;
    }
    loss.backward();
    // Gradients of every layer's outputs, filled from the top down.
    let mut grads: Vec<Levels> = (0..=layers).map(|_| none()).collect();
    let add = |slot: &mut Option<Tensor>, g: Tensor| {
        if g.defined() {
            *slot = Some(match slot.take() {
                Some(acc) => acc + g,
                None => g,
            })
        }
    };
    for (j, f) in features.iter().enumerate() {
        if let Some(f) = f {
            add(&mut grads[layers][j], f.grad());
        }
    }
    for l in (0..layers).rev() {
        let (current, prev, prev_prev) = kept[l].take().unwrap_or_else(|| {
            let prev = leaves(&outputs[l]);
            let prev_prev = if l == 0 { none() } else { leaves(&outputs[l - 1]) };
            let current =
                cell::ops::with_running_stats_frozen(|| net.layer(l, &prev, &prev_prev, &arch(), &sizes, true));
            (current, prev, prev_prev)
        });
        let surrogate = current
            .iter()
            .zip(grads[l + 1].iter())
            .filter_map(|(y, g)| Some((y.as_ref()?, g.as_ref()?)))
            .map(|(y, g)| (y * g).sum(Kind::Float))
            .reduce(|a, b| a + b);
        if let Some(surrogate) = surrogate {
            surrogate.backward();
        }
        for j in 0..NUM_LEVELS {
            if let Some(x) = &prev[j] {
                add(&mut grads[l][j], x.grad());
            }
            if let (Some(x), true) = (&prev_prev[j], l > 0) {
                add(&mut grads[l - 1][j], x.grad());
            }
        }
    }
    // With the weights frozen (the architecture step) nothing below the cells needs a
    // gradient.
    if let (true, Some(stem_grad)) = (stem.requires_grad(), grads[0][0].take()) {
        (stem * stem_grad).sum(Kind::Float).backward();
    }
    value
}
