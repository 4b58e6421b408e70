//! The network-level search space: β normalisation, the search network's shapes at several
//! crops and depths, and gradients into every weight, α and β (trellis issue).

mod common;

use common::has_useful_gradient;
use search::dist::Ranks;
use search::train::loss_scale::LossScaler;
use search::train::optim::{Optimiser, Params, Sgd, SgdConfig};
use search::train::optimised::Optimised;
use search::train::precision::Precision;
use search::train::step::{segmentation_loss, Labelled};
use tch::{nn, Device, Kind, Tensor};
use trellis::arch::beta_mask;
use trellis::space::{node_exists, transition_valid, Transition};
use trellis::{normalize_beta, ArchParams, Execution, Recompute, RecomputePlan, SearchNetwork, SearchNetworkConfig};

/// Every weight's gradient (or, for batch-norm running statistics, its value), and α's and β's
/// gradients, by name.
fn gradients_and_statistics(weights: &nn::VarStore, arch: &ArchParams) -> Vec<(String, Tensor)> {
    let mut values: Vec<(String, Tensor)> = weights
        .variables()
        .into_iter()
        .map(|(name, t)| {
            let grad = t.grad();
            (name, if grad.defined() { grad } else { t.detach().copy() })
        })
        .collect();
    values.push(("alpha.grad".into(), arch.alpha.logits().grad()));
    values.push(("beta.grad".into(), arch.beta.grad()));
    values
}

/// Equal to float tolerance, relative to the largest magnitude of `a`. α's and β's gradients
/// are sums over every pixel of every cell that uses them, taken in another order by each
/// execution path, with cancellation: fp32 leaves them about 2e-4 of their largest entry apart
/// (seen once in CI at 2.0e-4), so they get 1e-3.
fn assert_close(name: &str, a: &Tensor, b: &Tensor) {
    let scale = f64::try_from(a.abs().max()).unwrap().max(1e-6);
    let diff = f64::try_from((a - b).abs().max()).unwrap();
    let relative = if name == "alpha.grad" || name == "beta.grad" { 1e-3 } else { 1e-4 };
    assert!(diff <= relative * scale + 1e-7, "{name}: differs by {diff} (scale {scale})");
}

fn tiny(layers: usize, blocks: usize) -> SearchNetworkConfig {
    SearchNetworkConfig {
        layers,
        blocks,
        filter_multiplier: 2,
        stem_channels: [4, 4, 8],
        classes: 5,
        partial_channels: 1,
        edge_normalization: false,
    }
}

/// `tiny`'s network built in `weights`, run as `execution` says.
fn build(config: &SearchNetworkConfig, weights: &nn::VarStore, execution: Execution) -> SearchNetwork {
    let mut net = config.build(&weights.root());
    net.set_execution(execution);
    net
}

/// A batch and reference weights and α, β for a tiny L = 4 network of `blocks` blocks, which
/// the comparison tests copy into each network they build.
struct Reference {
    images: Tensor,
    labels: Tensor,
    weights: nn::VarStore,
    arch: nn::VarStore,
}

fn reference(seed: i64, blocks: usize) -> Reference {
    tch::manual_seed(seed);
    let images = Tensor::randn([2, 3, 33, 33], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(5, [2, 33, 33], (Kind::Int64, Device::Cpu));
    let (weights, arch) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
    tiny(4, blocks).build(&weights.root());
    ArchParams::new(&arch.root(), blocks, 4);
    Reference { images, labels, weights, arch }
}

/// `config`'s network and architecture parameters with the reference's values, and their stores.
fn copy_of(
    reference: &Reference,
    config: &SearchNetworkConfig,
) -> (nn::VarStore, nn::VarStore, SearchNetwork, ArchParams) {
    let mut weights = nn::VarStore::new(Device::Cpu);
    let mut arch_store = nn::VarStore::new(Device::Cpu);
    let net = config.build(&weights.root());
    let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
    weights.copy(&reference.weights).unwrap();
    arch_store.copy(&reference.arch).unwrap();
    (weights, arch_store, net, arch)
}

#[test]
fn beta_is_normalised_over_each_source_nodes_valid_moves() {
    tch::manual_seed(0);
    let logits = Tensor::randn([12, 4, 3], (Kind::Float, Device::Cpu)) * 3.0;
    let beta = normalize_beta(&logits);
    let mask = beta_mask(12, Device::Cpu);
    for l in 0..12 {
        for i in 0..4 {
            let row = Vec::<f32>::try_from(beta.get(l).get(i)).unwrap();
            let valid: Vec<bool> =
                Transition::ALL.iter().map(|&t| transition_valid(l as usize, i as usize, t)).collect();
            let sum: f32 = row.iter().sum();
            if node_exists((l as usize).checked_sub(1), i as usize) {
                assert!((sum - 1.0).abs() < 1e-6, "layer {l} level {i}: sums to {sum}");
                let count = valid.iter().filter(|v| **v).count();
                assert_eq!(count, if i == 0 || i == 3 { 2 } else { 3 }, "layer {l} level {i}");
            } else {
                assert_eq!(sum, 0.0, "layer {l} level {i} has no node");
            }
            for (k, v) in valid.iter().enumerate() {
                assert_eq!(row[k] > 0.0, *v, "layer {l} level {i} move {k}");
                assert_eq!(f32::try_from(mask.get(l).get(i).get(k as i64)).unwrap() == 1.0, *v);
            }
        }
    }
    // The three β feeding one target do not sum to 1 (they come from three softmaxes).
    let into_level1: f32 =
        [(0, 2), (1, 1), (2, 0)].iter().map(|&(i, d)| f32::try_from(beta.get(5).get(i).get(d)).unwrap()).sum();
    assert!((into_level1 - 1.0).abs() > 1e-3);
}

#[test]
fn search_network_shapes_at_several_crops_and_depths() {
    // Odd (33, 65x97), even (64) and sizes that do not halve evenly down to rate 32 (96, 50).
    for (layers, (h, w)) in [(1, (33, 33)), (2, (64, 64)), (4, (96, 96)), (4, (65, 97)), (12, (50, 38))] {
        tch::manual_seed(1);
        let weights = nn::VarStore::new(Device::Cpu);
        let arch_store = nn::VarStore::new(Device::Cpu);
        let config = tiny(layers, 2);
        let net = config.build(&weights.root());
        let arch = ArchParams::new(&arch_store.root(), config.blocks, layers);
        let images = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
        let features = net.backbone(&images, &arch.weights(), true);
        assert_eq!(features.len(), layers.min(3) + 1, "L = {layers}: levels of the last layer");
        for (j, f) in features.iter().enumerate() {
            assert_eq!(f.size()[1], config.widths().cell(j), "channels at level {j}");
        }
        let logits = net.forward_t(&images, &arch.weights(), true);
        assert_eq!(logits.size(), [2, 5, h, w], "L = {layers} at {h}x{w}");
        assert!(bool::try_from(logits.isfinite().all()).unwrap());
    }
}

#[test]
fn every_weight_alpha_and_beta_receive_a_gradient() {
    for partial_channels in [1, 2] {
        gradients_everywhere(SearchNetworkConfig { partial_channels, ..tiny(4, 5) });
    }
}

/// Every weight, α and every valid β entry of `config`'s network gets a gradient.
fn gradients_everywhere(config: SearchNetworkConfig) {
    tch::manual_seed(2);
    let weights = nn::VarStore::new(Device::Cpu);
    let arch_store = nn::VarStore::new(Device::Cpu);
    let net = config.build(&weights.root());
    let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
    let images = Tensor::randn([2, 3, 33, 33], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(5, [2, 33, 33], (Kind::Int64, Device::Cpu));
    segmentation_loss(&net.forward_t(&images, &arch.weights(), true), &labels).backward();
    for (name, t) in weights.variables() {
        if t.requires_grad() {
            assert!(has_useful_gradient(&t), "weight {name} got no finite non-zero gradient");
        }
    }
    assert!(has_useful_gradient(arch.alpha.logits()));
    // Every valid move from layer 1 on gets a gradient. The stem's two moves into layer 0 get
    // only batch norm's ε's trace (`the_first_move_is_invisible_to_the_loss`).
    let grad = arch.beta.grad();
    for l in 0..4 {
        for i in 0..4 {
            for t in Transition::ALL {
                let g = f64::try_from(grad.get(l).get(i).get(t.index() as i64)).unwrap();
                assert!(g.is_finite());
                let valid = transition_valid(l as usize, i as usize, t);
                assert!(valid || g == 0.0, "invalid β[{l}][{i}][{t:?}] gradient {g}");
                assert!(l == 0 || valid == (g != 0.0), "β[{l}][{i}][{t:?}] gradient {g}");
            }
        }
    }
    // The weights' store holds no architecture parameter and vice versa.
    assert!(weights.variables().keys().all(|k| !k.contains("alpha") && !k.contains("beta")));
    assert_eq!(arch_store.trainable_variables().len(), 2);
}

/// The batched transitions (one cell computation per node, H^(l-2) edges once, shared ReLUs)
/// compute what one cell call per transition computes: logits, every gradient and every batch
/// norm's running statistics, to float tolerance. The one intended difference: the batch norms
/// of the H^(l-2) edges see their batch once per step, where the plain path feeds them the
/// same batch once per transition (a repeated running-statistics update).
#[test]
fn batched_transitions_equal_the_plain_path() {
    let reference = reference(4, 5);
    let run = |batched: bool| {
        let (weights, _arch_store, mut net, arch) = copy_of(&reference, &tiny(4, 5));
        net.set_execution(Execution { batched_transitions: batched, ..Execution::default() });
        let logits = net.forward_t(&reference.images, &arch.weights(), true);
        segmentation_loss(&logits, &reference.labels).backward();
        let mut values = gradients_and_statistics(&weights, &arch);
        values.push(("logits".into(), logits.detach()));
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values
    };
    let (plain, batched) = (run(false), run(true));
    assert_eq!(plain.len(), batched.len());
    let from_prev_prev = |name: &str| name.contains("preprocess0") || name.contains(".state0.");
    let mut repeated_updates = 0;
    for ((name, a), (other, b)) in plain.iter().zip(&batched) {
        assert_eq!(name, other);
        if name.contains("running_") && from_prev_prev(name) && !a.equal(b) {
            repeated_updates += 1;
            continue;
        }
        assert_close(name, a, b);
    }
    assert!(repeated_updates > 0, "the H^(l-2) statistics are updated once per step in the batched path");
}

/// The memory-saving mode (activations recomputed layer by layer in the backward pass) gives
/// the loss, every gradient (weights, α, β) and every running statistic of the normal path,
/// with every layer recomputed and with some layers' activations kept, asked for every
/// gradient or for the architecture's alone (the first-order architecture step).
#[test]
fn recomputed_backward_equals_the_normal_one() {
    use search::train::backward::{plain, recomputed, Wrt};
    let reference = reference(5, 3);
    let (images, labels) = (&reference.images, &reference.labels);
    let run = |plan: Option<RecomputePlan>, arch_only: bool| {
        let (weights, arch_store, net, arch) = copy_of(&reference, &tiny(4, 3));
        let (weight_params, arch_params) = (Params::of(&weights), Params::of(&arch_store));
        let wrt = match arch_only {
            true => Wrt::arch(arch_params.tensors(), weight_params.tensors()),
            false => Wrt { weights: weight_params.tensors(), arch: arch_params.tensors(), constant: &[] },
        };
        let loss_of = |logits: &Tensor| segmentation_loss(logits, labels);
        let grads = match &plan {
            Some(plan) => recomputed(&net, images, &arch, &loss_of, plan, wrt),
            None => plain(&net, images, &arch, &loss_of, Precision::Full, wrt),
        };
        let mut values: Vec<(String, Tensor)> = Vec::new();
        for (name, g) in weight_params.names().iter().zip(&grads.weights) {
            values.push((name.clone(), g.as_ref().expect("every weight is reached").shallow_clone()));
        }
        for (name, g) in arch_params.names().iter().zip(&grads.arch) {
            values.push((format!("{name}.grad"), g.as_ref().expect("α and β are reached").shallow_clone()));
        }
        for (name, t) in weights.variables() {
            if name.contains("running_") {
                values.push((name, t.detach().copy()));
            }
        }
        values.sort_by(|a, b| a.0.cmp(&b.0));
        (grads.loss, values)
    };
    let plans = [RecomputePlan::all(4), RecomputePlan { keep: vec![true, false, true, false] }];
    for (arch_only, plan) in [false, true].into_iter().flat_map(|f| plans.iter().map(move |p| (f, p))) {
        let ((loss_a, normal), (loss_b, recomputed)) = (run(None, arch_only), run(Some(plan.clone()), arch_only));
        assert!((loss_a - loss_b).abs() < 1e-6, "loss {loss_a} vs {loss_b}");
        assert_eq!(normal.len(), recomputed.len());
        assert!(normal.iter().any(|(n, _)| n == "alpha.grad") && normal.iter().any(|(n, _)| n == "beta.grad"));
        for ((name, a), (other, b)) in normal.iter().zip(&recomputed) {
            assert_eq!(name, other);
            let scale = f64::try_from(a.abs().max()).unwrap().max(1e-6);
            let diff = f64::try_from((a - b).abs().max()).unwrap();
            assert!(
                diff <= 1e-4 * scale + 1e-7,
                "{name}: recomputed differs by {diff} (scale {scale}), architecture only {arch_only}, {plan:?}"
            );
        }
    }
}

/// The `auto` policy recomputes nothing while the estimated activations fit the budget, the
/// later layers once they do not, and everything with a budget of zero; the estimate grows
/// with the batch and the crop.
#[test]
fn auto_recompute_follows_the_activation_budget() {
    let auto = |budget_mib: u64| Execution {
        recompute: Recompute::Auto,
        activation_budget_mib: Some(budget_mib),
        ..Execution::default()
    };
    let with = |execution: Execution| build(&tiny(4, 3), &nn::VarStore::new(Device::Cpu), execution);
    let net = with(auto(0));
    let bytes = net.activation_bytes(2, 64, 64);
    assert_eq!(bytes.len(), 4);
    assert!(bytes.iter().all(|&b| b > 0.0));
    let total: f64 = bytes.iter().sum();
    let doubled: f64 = net.activation_bytes(4, 64, 64).iter().sum();
    assert!((doubled - 2.0 * total).abs() < 1e-6 * total);
    assert!(net.activation_bytes(2, 128, 128).iter().sum::<f64>() > 3.0 * total);
    let total_mib = (total / (1u64 << 20) as f64).ceil() as u64;
    let with_budget = |mib: u64| with(auto(mib));
    // Everything fits: the plain backward pass.
    assert_eq!(with_budget(total_mib + 1).recompute_plan(2, 64, 64), None);
    // A quarter of the batch's activations fits: the first layers are kept, the later ones
    // recomputed.
    let partial = with_budget(total_mib / 4).recompute_plan(2, 64, 64).expect("over budget");
    assert!(partial.recomputed() > 0 && partial.recomputed() < 4, "{partial:?}");
    assert!(partial.keep[0] && !partial.keep[3], "{partial:?}");
    assert_eq!(with_budget(total_mib + 1).recompute_plan(8, 64, 64).map(|p| p.recomputed() > 0), Some(true));
    // Nothing fits a budget of zero: every layer is recomputed.
    assert_eq!(with_budget(0).recompute_plan(2, 64, 64).unwrap().recomputed(), 4);
    let always = with(Execution { recompute: Recompute::Always, ..Execution::default() });
    assert_eq!(always.recompute_plan(1, 33, 33).unwrap().recomputed(), 4);
    let never = with(Execution { recompute: Recompute::Never, ..Execution::default() });
    assert_eq!(never.recompute_plan(64, 512, 512), None);
}

/// The weights after one weight step of `reference`'s network (built with 2 blocks), the loss
/// scaled by `scaler` (none: plain), run as `execution` says; the step's loss and the scaler
/// after it.
fn scaled_weight_step(
    reference: &Reference,
    execution: Execution,
    scaler: Option<LossScaler>,
) -> (f64, Vec<Tensor>, Option<LossScaler>) {
    let (weights, _arch_store, mut net, arch) = copy_of(reference, &tiny(4, 2));
    net.set_execution(execution);
    let sgd = Sgd::new(Params::of(&weights), SgdConfig::default());
    let mut sgd = Optimised::new(sgd, Ranks::Single, 5.0).with_scaler(scaler);
    let batch = Labelled { images: &reference.images, labels: &reference.labels };
    let timing = search::train::step::weight_step(&net, &arch, &mut sgd, batch, 0.05, Precision::Full).unwrap();
    (timing.loss, sgd.params().snapshot(), sgd.scaler().cloned())
}

/// fp16 loss scaling (search::train::loss_scale) is exact when nothing overflows: a power-of-two scale
/// multiplies every gradient exactly and dividing undoes it, so the step equals the unscaled
/// one bit for bit, by the plain and the recomputed backward alike. Gradients that overflow
/// skip the step: the weights stay, the scale halves.
#[test]
fn a_loss_scaled_weight_step_equals_the_plain_one_and_skips_on_overflow() {
    // One reference for every run: tests in other threads draw from torch's global generator.
    let reference = reference(3, 2);
    let recompute_all = Execution { recompute: Recompute::Always, ..Execution::default() };
    for execution in [Execution::default(), recompute_all] {
        let (plain_loss, plain, _) = scaled_weight_step(&reference, execution.clone(), None);
        let scaler = LossScaler { scale: 1024.0, ..LossScaler::default() };
        let (scaled_loss, scaled, scaler) = scaled_weight_step(&reference, execution.clone(), Some(scaler));
        assert_eq!(plain_loss, scaled_loss, "the reported loss is unscaled");
        for (a, b) in plain.iter().zip(&scaled) {
            assert!(a.equal(b), "a scaled step moved a weight differently ({execution:?})");
        }
        let scaler = scaler.unwrap();
        assert_eq!((scaler.scale, scaler.good_steps, scaler.skipped_steps), (1024.0, 1, 0));
    }
    // A step whose gradients overflowed (an inf planted in one of them) is skipped: the
    // weights and the momentum stay, the scale halves.
    let (weights, _arch_store, _net, _arch) = copy_of(&reference, &tiny(4, 2));
    let params = Params::of(&weights);
    let before = params.snapshot();
    let scaled = |scale: f64, clip: f64| {
        let sgd = Sgd::new(Params::of(&weights), SgdConfig::default());
        Optimised::new(sgd, Ranks::Single, clip).with_scaler(Some(LossScaler { scale, ..LossScaler::default() }))
    };
    let mut sgd = scaled(1024.0, 5.0);
    let doubled: Vec<Tensor> = params.tensors().iter().map(|t| (t * 2.0).sum(Kind::Float)).collect();
    let roots = [Tensor::stack(&doubled, 0).sum(Kind::Float)];
    let grads: Vec<Option<Tensor>> =
        Tensor::run_backward(&roots, params.tensors(), false, false).into_iter().map(Some).collect();
    let _ = grads[3].as_ref().unwrap().get(0).fill_(f64::INFINITY);
    assert!(!sgd.apply(grads, 1.0, 0.05).unwrap().updated);
    let scaler = sgd.scaler().unwrap();
    assert_eq!((scaler.scale, scaler.skipped_steps), (512.0, 1));
    for (a, b) in before.iter().zip(params.tensors()) {
        assert!(a.equal(b), "an overflowing step must not move the weights");
    }
    assert!(sgd.optimiser().state().is_empty(), "nor start the momentum");
    // The same gradients without the inf, at the halved scale: unscaled (2/512), then the
    // step is taken.
    let mut sgd = scaled(512.0, 0.0);
    let grads = params.tensors().iter().map(|t| Some(t.detach().full_like(2.0))).collect();
    assert!(sgd.apply(grads, 1.0, 0.05).unwrap().updated);
    let moved = &before[0] - params.tensors()[0].detach();
    let expected = 0.05 * (2.0 / 512.0) + 0.05 * 3e-4 * f64::try_from(before[0].flatten(0, -1).get(0)).unwrap();
    let got = f64::try_from(moved.flatten(0, -1).get(0)).unwrap();
    assert!((got - expected).abs() < 1e-7, "moved by {got}, expected {expected}");
}

/// The stem's move into layer 0 (level 0 or level 1) is not a decision β can learn: each of the
/// two nodes of layer 0 has that one incoming transition, so β scales the node as a whole, and
/// every use of a node begins with a convolution and a batch norm (a cell's preprocessing, a
/// resampling, a head), which in training mode cancel any positive scale. The loss is the same
/// whatever β[0] is, to float rounding and batch norm's ε, and its gradient is a thousandth of
/// any later layer's. Viterbi chooses that move through the moves after it
/// (`trellis::margins::FIRST_DECIDED_LAYER`).
#[test]
fn the_first_move_is_invisible_to_the_loss() {
    let config = tiny(4, 5);
    for seed in 0..3 {
        tch::manual_seed(seed);
        let weights = nn::VarStore::new(Device::Cpu);
        let arch_store = nn::VarStore::new(Device::Cpu);
        let net = config.build(&weights.root());
        let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
        let images = Tensor::randn([4, 3, 64, 64], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(5, [4, 64, 64], (Kind::Int64, Device::Cpu));
        let loss = |arch: &ArchParams| segmentation_loss(&net.forward_t(&images, &arch.weights(), true), &labels);
        let plain = loss(&arch);
        plain.backward();
        let grad = arch.beta.grad().abs();
        let first = f64::try_from(grad.get(0).max()).unwrap();
        let later = (1..4).map(|l| f64::try_from(grad.get(l).max()).unwrap()).fold(f64::INFINITY, f64::min);
        assert!(first < 0.01 * later, "seed {seed}: layer 0's β gradient {first}, the smallest later layer's {later}");
        // Pushing the stem's move far towards level 1 (weights 0.047 and 0.953) moves nothing.
        tch::no_grad(|| {
            let _ = arch.beta.get(0).get(0).get(Transition::Coarser.index() as i64).fill_(3.0);
        });
        let pushed = loss(&arch);
        let (a, b) = (f64::try_from(&plain).unwrap(), f64::try_from(&pushed).unwrap());
        assert!((a - b).abs() < 1e-3 * a, "seed {seed}: loss {a} against {b} with the first move pushed");
        // A later move pushed as far changes it.
        tch::no_grad(|| {
            let _ = arch.beta.get(2).get(1).get(Transition::Coarser.index() as i64).fill_(3.0);
        });
        let later_pushed = f64::try_from(loss(&arch)).unwrap();
        // The figures docs/pipeline.md quotes (`-- --nocapture` prints them).
        eprintln!(
            "seed {seed}: layer 0's β gradient {first:.2e}, the smallest later layer's {later:.2e}; loss {a:.4}, \
             first move pushed {b:.4}, a later move pushed {later_pushed:.4}"
        );
        assert!((later_pushed - b).abs() > 10.0 * (a - b).abs(), "seed {seed}: {b} against {later_pushed}");
    }
}

/// A search network whose whole path is decided (`trellis::progressive::project_path`), at the
/// end of an annealing to τ = 0.2, still gets finite gradients everywhere: the nodes decided
/// against are scaled by `trellis::arch::BETA_FLOOR`, not into denormals.
#[test]
fn a_decided_path_under_annealing_gives_finite_gradients() {
    use trellis::progressive::{project_path, PathDecision};
    let config = tiny(4, 5);
    tch::manual_seed(3);
    let weights = nn::VarStore::new(Device::Cpu);
    let arch_store = nn::VarStore::new(Device::Cpu);
    let net = config.build(&weights.root());
    let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
    let decided: Vec<PathDecision> = [0u8, 0, 0, 1]
        .iter()
        .enumerate()
        .map(|(layer, &level)| PathDecision { layer, level, margin: 0.5, epoch: 0 })
        .collect();
    project_path(&arch, &decided);
    arch.temperature.set(0.2);
    let images = Tensor::randn([4, 3, 64, 64], (Kind::Float, Device::Cpu)) * 1e3;
    let labels = Tensor::randint(5, [4, 64, 64], (Kind::Int64, Device::Cpu));
    segmentation_loss(&net.forward_t(&images, &arch.weights(), true), &labels).backward();
    for (name, t) in weights.variables() {
        if t.requires_grad() {
            let g = t.grad();
            assert!(!g.defined() || bool::try_from(g.isfinite().all()).unwrap(), "{name}: non-finite gradient");
        }
    }
    assert!(bool::try_from(arch.beta.grad().isfinite().all()).unwrap());
}
