//! Distributed runs on the CPU with two ranks on 127.0.0.1 (docs/distributed.md): the
//! collective engine (libtorch's c10d Gloo), gradient averaging against a single process, two-rank
//! `search train` and `search run` writing one run folder and resuming exactly, and ranks that
//! fail or hang ending the others with an error inside the timeout.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{data, err, ok, search, temp, tensors, tiny_search, tiny_train};
use search::dist::{Group, Launch};
use tch::{Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `body(group, input)` on two ranks (threads of this process, each with its own group),
/// rank r with `inputs[r]`; the results in rank order.
fn two_ranks<D: Send + 'static, T: Send + 'static>(inputs: [D; 2], body: fn(Arc<Group>, D) -> T) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(rank, input)| {
            std::thread::spawn(move || {
                let launch = Launch {
                    rank,
                    world_size: 2,
                    local_rank: rank,
                    master_addr: "127.0.0.1".into(),
                    master_port: port,
                    launcher: "test",
                };
                let group = Group::join(&launch, tch::Device::Cpu, Duration::from_secs(60)).unwrap();
                body(Arc::new(group), input)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn the_engine_reduces_and_broadcasts() {
    let out = two_ranks([(), ()], |g, ()| {
        let t = Tensor::full([3], g.rank as f64 + 1.0, (Kind::Float, tch::Device::Cpu));
        g.all_reduce_sum(&[&t]).unwrap();
        let m = Tensor::full([2], 2.0 * g.rank as f64, (Kind::Float, tch::Device::Cpu));
        g.all_reduce_mean(&[&m]).unwrap();
        let b = if g.rank == 0 {
            Tensor::from_slice(&[7i64, 8])
        } else {
            Tensor::zeros([2], (Kind::Int64, tch::Device::Cpu))
        };
        g.broadcast(&[&b], 0).unwrap();
        let counts = g.sum_counts(&[g.rank as u64, 10]).unwrap();
        g.barrier().unwrap();
        (
            Vec::<f32>::try_from(&t).unwrap(),
            Vec::<f32>::try_from(&m).unwrap(),
            Vec::<i64>::try_from(&b).unwrap(),
            counts,
        )
    });
    for (sum, mean, broadcast, counts) in out {
        assert_eq!(sum, [3.0, 3.0, 3.0]);
        assert_eq!(mean, [1.0, 1.0]);
        assert_eq!(broadcast, [7, 8]);
        assert_eq!(counts, [1, 20]);
    }
}

/// Sets every trainable variable of `vs` to fixed values, without the process-wide generator
/// that the rank threads share.
fn fixed_weights(vs: &tch::nn::VarStore) {
    tch::no_grad(|| {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (_, t)) in named.iter().enumerate() {
            let values = ((Tensor::arange(t.numel() as i64, (Kind::Float, tch::Device::Cpu)) * 0.37 + i as f64).sin()
                * 0.5)
                .view_as(t);
            t.shallow_clone().copy_(&values);
        }
    });
}

/// The gradients of a small network (convolutions, no batch norm) on `images`.
fn gradients(images: &Tensor, targets: &Tensor, group: Option<&Group>) -> (Vec<Tensor>, f64) {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let root = vs.root();
    let c1 = tch::nn::conv2d(&root / "c1", 3, 4, 3, tch::nn::ConvConfig { padding: 1, ..Default::default() });
    let c2 = tch::nn::conv2d(&root / "c2", 4, 2, 1, Default::default());
    fixed_weights(&vs);
    let out = images.apply(&c1).relu().apply(&c2);
    let loss = (out - targets).square().mean(Kind::Float);
    let mut value = f64::try_from(&loss).unwrap();
    loss.backward();
    let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let params: Vec<Tensor> = params.into_iter().map(|(_, t)| t).collect();
    let mut grads: Vec<Option<Tensor>> = params.iter().map(|p| Some(p.grad().copy())).collect();
    if let Some(g) = group {
        value = g.average_gradients(&params, &mut grads, value).unwrap();
    }
    (grads.into_iter().map(Option::unwrap).collect(), value)
}

#[test]
fn two_ranks_on_half_batches_average_to_the_whole_batch() {
    let values = |n: i64, offset: f64| (Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) * 1.3 + offset).sin();
    let images = values(4 * 3 * 6 * 5, 0.0).view([4, 3, 6, 5]);
    let targets = values(4 * 2 * 6 * 5, 1.0).view([4, 2, 6, 5]);
    let (whole, whole_loss) = gradients(&images, &targets, None);
    let half = |r: i64| (images.narrow(0, 2 * r, 2).copy(), targets.narrow(0, 2 * r, 2).copy());
    let halves = two_ranks([half(0), half(1)], |g, (i, t)| {
        let (grads, loss) = gradients(&i, &t, Some(&g));
        (grads.iter().map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect::<Vec<_>>(), loss)
    });
    for (grads, loss) in halves {
        assert!((loss - whole_loss).abs() < 1e-6, "mean loss {loss} vs {whole_loss}");
        for (ours, theirs) in grads.iter().zip(&whole) {
            let theirs = Vec::<f32>::try_from(theirs.flatten(0, -1)).unwrap();
            let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "a gradient differs by {diff}");
        }
    }
}

#[test]
fn ranks_whose_parameters_differ_are_named() {
    let out = two_ranks([(), ()], |g, ()| {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _ = tch::nn::linear(vs.root() / "l", 3, 2, Default::default());
        fixed_weights(&vs);
        g.check_same(&[&vs], 0).unwrap();
        g.broadcast_stores(&[&vs]).unwrap();
        if g.rank == 1 {
            tch::no_grad(|| {
                let _ = vs.variables()["l.weight"].get(0).get(0).fill_(9.0);
            });
        }
        g.check_same(&[&vs], 100).map_err(|e| e.to_string())
    });
    for result in out {
        let message = result.unwrap_err();
        assert!(message.contains("rank(s) [1]") && message.contains("step 100"), "{message}");
    }
}

/// Gradients and running statistics of a network with batch norms (cell's, so the hook applies)
/// on `images`, optionally with the norms synchronised across `group`.
fn bn_gradients(images: &Tensor, targets: &Tensor, group: Option<Arc<Group>>) -> Vec<Vec<f32>> {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let root = vs.root();
    let c1 =
        tch::nn::conv2d(&root / "c1", 3, 4, 3, tch::nn::ConvConfig { padding: 1, bias: false, ..Default::default() });
    let bn1 = cell::ops::batch_norm(&root / "bn1", 4, true);
    let c2 = tch::nn::conv2d(&root / "c2", 4, 2, 1, tch::nn::ConvConfig { bias: false, ..Default::default() });
    let bn2 = cell::ops::batch_norm(&root / "bn2", 2, false);
    fixed_weights(&vs);
    let guard = search::dist::SyncBatchNormGuard::new(&search::dist::Ranks::of(group.clone()), true);
    let h = cell::ops::grouped_batch_norm(&bn1, &images.apply(&c1), true, 1).relu();
    // The grouped path too: the two halves of the batch as two groups.
    let out = cell::ops::grouped_batch_norm(&bn2, &h.apply(&c2), true, 2);
    let loss = (out - targets).square().mean(Kind::Float);
    let value = f64::try_from(&loss).unwrap();
    loss.backward();
    drop(guard);
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let trainable: Vec<Tensor> =
        named.iter().filter(|(_, t)| t.requires_grad()).map(|(_, t)| t.shallow_clone()).collect();
    let mut grads: Vec<Option<Tensor>> = trainable.iter().map(|t| Some(t.grad())).collect();
    if let Some(g) = &group {
        g.average_gradients(&trainable, &mut grads, value).unwrap();
    }
    let mut out: Vec<Vec<f32>> =
        grads.iter().map(|g| Vec::<f32>::try_from(g.as_ref().unwrap().flatten(0, -1)).unwrap()).collect();
    out.extend(
        named.iter().filter(|(_, t)| !t.requires_grad()).map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()),
    );
    out
}

#[test]
fn synchronised_batch_norm_on_half_batches_equals_the_whole_batch() {
    tch::manual_seed(21);
    let images = Tensor::randn([4, 3, 5, 6], (Kind::Float, tch::Device::Cpu));
    let targets = Tensor::randn([4, 2, 5, 6], (Kind::Float, tch::Device::Cpu));
    // The whole batch in one process; the grouped norm sees groups of 2 images.
    let whole = bn_gradients(&images, &targets, None);
    // Rank r takes images r and r + 2: one of each group of the grouped norm.
    let pick = |r: i64| {
        let pick = |t: &Tensor| Tensor::cat(&[t.narrow(0, r, 1), t.narrow(0, r + 2, 1)], 0);
        (pick(&images), pick(&targets))
    };
    let halves = two_ranks([pick(0), pick(1)], |g, (images, targets)| bn_gradients(&images, &targets, Some(g)));
    for ranks in halves {
        for (i, (ours, theirs)) in ranks.iter().zip(&whole).enumerate() {
            let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "tensor {i} (gradients, then running statistics) differs by {diff}");
        }
    }
}

/// A tiny search network (L = 3, B = 2, F = 2, 5 classes) with its α and β, every value fixed:
/// (weights' store, architecture store, network, α and β).
fn tiny_search_network() -> (tch::nn::VarStore, tch::nn::VarStore, trellis::SearchNetwork, trellis::ArchParams) {
    let config = trellis::SearchNetworkConfig {
        layers: 3,
        blocks: 2,
        filter_multiplier: 2,
        stem_channels: [4, 4, 8],
        classes: 5,
        ..Default::default()
    };
    let weights = tch::nn::VarStore::new(tch::Device::Cpu);
    let arch_store = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = config.build(&weights.root());
    let arch = trellis::ArchParams::new(&arch_store.root(), config.blocks, config.layers);
    fixed_weights(&weights);
    fixed_weights(&arch_store);
    (weights, arch_store, net, arch)
}

/// One weight step of a tiny search network (cells, heads, batched transitions) on `images`,
/// optionally on the ranks of `group` with synchronised batch norm: the weights after the step.
fn search_weight_step(images: &Tensor, labels: &Tensor, group: Option<Arc<Group>>) -> Vec<Vec<f32>> {
    let (weights, _arch_store, net, arch) = tiny_search_network();
    let sgd_config = search::train::optim::SgdConfig { momentum: 0.9, weight_decay: 3e-4 };
    let sgd = search::train::optim::Sgd::new(search::train::optim::Params::of(&weights), sgd_config);
    let ranks = search::dist::Ranks::of(group);
    let mut sgd = search::train::optimised::Optimised::new(sgd, ranks.clone(), 5.0);
    let guard = search::dist::SyncBatchNormGuard::new(&ranks, true);
    let batch = search::train::step::Labelled { images, labels };
    let precision = search::train::precision::Precision::Full;
    search::train::step::weight_step(&net, &arch, &mut sgd, batch, 0.05, precision).unwrap();
    drop(guard);
    let mut named: Vec<(String, Tensor)> = weights.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    // The weights first, then the running statistics (marked by an empty vector between).
    let (stats, params): (Vec<_>, Vec<_>) = named.iter().partition(|(n, _)| n.contains("running_"));
    let mut out: Vec<Vec<f32>> = params.iter().map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect();
    out.push(Vec::new());
    out.extend(stats.iter().map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()));
    out
}

#[test]
fn a_two_rank_search_step_on_half_batches_equals_one_step_on_the_whole_batch() {
    let values = |n: i64, offset: f64| (Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) * 0.7 + offset).sin();
    let images = values(4 * 3 * 33 * 33, 0.5).view([4, 3, 33, 33]);
    let labels = ((values(4 * 33 * 33, 2.0) + 1.0) * 2.49).to_kind(Kind::Int64).view([4, 33, 33]);
    let whole = search_weight_step(&images, &labels, None);
    let half = |r: i64| (images.narrow(0, 2 * r, 2).copy(), labels.narrow(0, 2 * r, 2).copy());
    let ranks = two_ranks([half(0), half(1)], |g, (images, labels)| search_weight_step(&images, &labels, Some(g)));
    for rank in ranks {
        let mut largest = 0.0f32;
        // The weights to 1e-5. The running statistics to 1e-4 relative: the deepest norms see a
        // handful of values per channel (the coarsest level is 2x2 here), where the reference's
        // own single-precision reductions differ from the all-reduced double sums by up to 3e-5.
        let split = rank.iter().position(|t| t.is_empty()).expect("a marker");
        let mut largest_stat = 0.0f32;
        for (i, (ours, theirs)) in rank.iter().zip(&whole).enumerate() {
            let diff = |a: &f32, b: &f32| if i < split { (a - b).abs() } else { (a - b).abs() / (1.0 + b.abs()) };
            let d = ours.iter().zip(theirs).map(|(a, b)| diff(a, b)).fold(0.0f32, f32::max);
            if i < split {
                largest = largest.max(d);
            } else {
                largest_stat = largest_stat.max(d);
            }
        }
        assert!(largest < 1e-5, "the weights after the step differ by {largest}");
        assert!(largest_stat < 1e-4, "the running statistics differ by {largest_stat} (relative)");
    }
}

/// The second-order architecture gradient of a tiny search network on `images`, after one
/// weight step (so that the virtual step has momentum), optionally on the ranks of `group` with
/// synchronised batch norm: the gradient averaged across the ranks, flattened.
fn arch_gradient(
    order: search::train::architect::Order,
    sync_bn: bool,
    images: &Tensor,
    labels: &Tensor,
    group: Option<Arc<Group>>,
) -> Vec<f32> {
    use search::train::architect::{Architect, Unrolled};
    use search::train::optim::{Adam, Params};
    let (weights, arch_store, net, arch) = tiny_search_network();
    let ranks = search::dist::Ranks::of(group);
    let sgd = search::train::optim::Sgd::new(Params::of(&weights), Default::default());
    let mut sgd = search::train::optimised::Optimised::new(sgd, ranks.clone(), 5.0);
    let guard = search::dist::SyncBatchNormGuard::new(&ranks, sync_bn);
    let batch = search::train::step::Labelled { images, labels };
    search::train::step::weight_step(&net, &arch, &mut sgd, batch, 0.05, search::train::precision::Precision::Full)
        .unwrap();
    let architect = Architect::new(Adam::new(Params::of(&arch_store), Default::default()), ranks.clone(), order);
    // trainA and trainB: the batch and its mirror image.
    let (flipped, flipped_labels) = (images.flip([3]), labels.flip([2]));
    let train_b = search::train::step::Labelled { images: &flipped, labels: &flipped_labels };
    let unrolled = Unrolled { weights: &sgd, train_a: batch, weight_lr: 0.05 };
    let gradient = architect.gradient(&net, &arch, train_b, unrolled).unwrap();
    drop(guard);
    let mut grads = gradient.grads;
    ranks.average(Params::of(&arch_store).tensors(), &mut grads, gradient.loss).unwrap();
    grads.iter().flat_map(|g| Vec::<f32>::try_from(g.as_ref().unwrap().flatten(0, -1)).unwrap()).collect()
}

/// The architecture gradient on two ranks. First order, on half batches each with synchronised
/// batch norm, it is the one of one process on the whole batch (to 5e-3 of its largest entry:
/// after a weight step some channels of this tiny network are nearly constant over the batch,
/// where the synchronised norm's double-precision sums and libtorch's single-precision ones
/// normalise rounding noise differently). The second order divides such differences by 2ε in its
/// finite-difference Hessian term, so its rank logic is checked where the ranks' arithmetic is
/// the single process's: two ranks given the same batch, each normalising its own, give one
/// process's gradient bit for bit (the virtual step, ε and w± agree on every rank because their
/// gradients are averaged first).
#[test]
fn two_rank_architecture_gradients_equal_one_process() {
    use search::train::architect::Order;
    let values = |n: i64, offset: f64| (Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) * 0.7 + offset).sin();
    let images = values(4 * 3 * 33 * 33, 0.5).view([4, 3, 33, 33]);
    let labels = ((values(4 * 33 * 33, 2.0) + 1.0) * 2.49).to_kind(Kind::Int64).view([4, 33, 33]);
    let half = |r: i64| (images.narrow(0, 2 * r, 2).copy(), labels.narrow(0, 2 * r, 2).copy());
    let whole = arch_gradient(Order::First, true, &images, &labels, None);
    let first: fn(Arc<Group>, (Tensor, Tensor)) -> Vec<f32> =
        |g, (images, labels)| arch_gradient(Order::First, true, &images, &labels, Some(g));
    let scale = whole.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for rank in two_ranks([half(0), half(1)], first) {
        let diff = rank.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 5e-3 * scale, "first order: the two-rank gradient differs by {diff} (scale {scale})");
    }
    let whole = arch_gradient(Order::Second, false, &images, &labels, None);
    let second: fn(Arc<Group>, (Tensor, Tensor)) -> Vec<f32> =
        |g, (images, labels)| arch_gradient(Order::Second, false, &images, &labels, Some(g));
    let same = || (images.copy(), labels.copy());
    for rank in two_ranks([same(), same()], second) {
        assert_eq!(rank, whole, "second order: two ranks on the same batch differ from one process");
    }
}

/// A second-order search on two ranks runs, writes one folder and resumes exactly.
#[test]
fn a_two_rank_second_order_search_resumes_exactly() {
    let root = data("dist-order2", 8, (64, 48));
    let order = ["--set", "arch.order=2"];
    let straight = temp("dist-order2-straight");
    ok(&two_rank("run", &root, &straight, &order));
    let split = temp("dist-order2-split");
    let _ = two_rank("run", &root, &split, &[&order[..], &["--stop-after-steps", "3"]].concat());
    ok(&two_rank_resume("run", &split));
    assert_eq!(
        std::fs::read_to_string(straight.join("arch/final.json")).unwrap(),
        std::fs::read_to_string(split.join("arch/final.json")).unwrap()
    );
    let last = |run: &Path| {
        let dir =
            search::store::checkpoint::Checkpoints::new(run.join("checkpoints"), 1).unwrap().latest().unwrap().unwrap();
        tensors(&dir.join("arch.safetensors"))
    };
    for ((na, a), (nb, b)) in last(&straight).iter().zip(&last(&split)) {
        assert_eq!(na, nb);
        assert!(a.equal(b), "{na} differs after resuming");
    }
    let _ = std::fs::remove_dir_all(straight);
    let _ = std::fs::remove_dir_all(split);
}

/// The tiny search (`run`) or retraining (`train`, of the paper's architecture) on two local
/// ranks.
fn two_rank(command: &str, root: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let args = [&["--nproc-per-node", "2"][..], extra].concat();
    match command {
        "train" => tiny_train(root, out, &args),
        _ => tiny_search(root, out, &args),
    }
}

/// `search <command> --resume RUN` on two local ranks.
fn two_rank_resume(command: &str, run: &Path) -> std::process::Output {
    let run = run.to_str().unwrap();
    search(&["--threads", "1", command, "--resume", run, "--device", "cpu", "--nproc-per-node", "2"])
}

#[test]
fn two_rank_runs_write_one_folder_and_resume_exactly() {
    let root = data("dist", 8, (64, 48));
    for (command, file) in [("train", "weights.safetensors"), ("run", "arch/final.json")] {
        let straight = temp(&format!("dist-{command}-straight"));
        let out = two_rank(command, &root, &straight, &[]);
        ok(&out);
        // Rank 0 prints; the other rank keeps its full log in the run folder and prints only
        // warnings and errors, prefixed with its rank.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let done = if command == "train" { "evaluated" } else { "epoch 1/2 done" };
        assert_eq!(stderr.lines().filter(|l| l.contains(done)).count(), 1, "{command}: one line per event:\n{stderr}");
        assert!(stderr.lines().filter(|l| l.contains("[rank 1]")).all(|l| l.contains("WARN") || l.contains("ERROR")));
        let rank1 = std::fs::read_to_string(straight.join("log.rank1.txt")).unwrap();
        assert!(rank1.contains(done), "{command}: rank 1's log:\n{rank1}");
        let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
        let layout: Vec<&str> = metrics.lines().filter(|l| l.contains("\"distributed\"")).collect();
        assert_eq!(layout.len(), 1, "{command}: one layout row from rank 0");
        assert!(layout[0].contains("\"world_size\":2") && layout[0].contains("\"global_batch\":4"), "{}", layout[0]);
        assert_eq!(std::fs::read_dir(straight.join("env")).unwrap().count(), 1, "{command}: rank 0 alone writes");

        // Stopped after 3 steps, then resumed on the same two ranks: the same result.
        let split = temp(&format!("dist-{command}-split"));
        let _ = two_rank(command, &root, &split, &["--stop-after-steps", "3"]);
        assert!(split.join("checkpoints").read_dir().unwrap().count() > 0, "{command}: a checkpoint");
        ok(&two_rank_resume(command, &split));
        if file.ends_with(".json") {
            assert_eq!(
                std::fs::read_to_string(straight.join(file)).unwrap(),
                std::fs::read_to_string(split.join(file)).unwrap(),
                "{command}: the resumed search decodes the same architecture"
            );
            for name in ["weights.safetensors", "arch.safetensors"] {
                let last = |run: &Path| {
                    let dir = search::store::checkpoint::Checkpoints::new(run.join("checkpoints"), 1)
                        .unwrap()
                        .latest()
                        .unwrap()
                        .unwrap();
                    tensors(&dir.join(name))
                };
                for ((na, a), (nb, b)) in last(&straight).iter().zip(&last(&split)) {
                    assert_eq!(na, nb);
                    assert!(a.equal(b), "{command}: {name} {na} differs after resuming");
                }
            }
        } else {
            for ((na, a), (nb, b)) in tensors(&straight.join(file)).iter().zip(&tensors(&split.join(file))) {
                assert_eq!(na, nb);
                assert!(a.equal(b), "{command}: {na} differs after resuming");
            }
        }
        let _ = std::fs::remove_dir_all(straight);
        let _ = std::fs::remove_dir_all(split);
    }
    // Synchronised batch norm through a whole two-rank retraining, resumed exactly too.
    let straight = temp("dist-syncbn-straight");
    ok(&two_rank("train", &root, &straight, &["--set", "sync_bn=true"]));
    let split = temp("dist-syncbn-split");
    let _ = two_rank("train", &root, &split, &["--set", "sync_bn=true", "--stop-after-steps", "3"]);
    ok(&two_rank_resume("train", &split));
    let file = "weights.safetensors";
    for ((na, a), (nb, b)) in tensors(&straight.join(file)).iter().zip(&tensors(&split.join(file))) {
        assert!(a.equal(b), "sync_bn: {na} / {nb} differs after resuming");
    }
    for dir in [straight, split] {
        let _ = std::fs::remove_dir_all(dir);
    }

    // A two-rank run resumed in one process goes on, and says that the data order changes.
    let other = temp("dist-other-world");
    let _ = two_rank("train", &root, &other, &["--stop-after-steps", "3"]);
    let out = search(&["--threads", "1", "train", "--resume", other.to_str().unwrap(), "--device", "cpu"]);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("another number of ranks"), "{log}");
    assert!(other.join("weights.safetensors").is_file());
    let _ = std::fs::remove_dir_all(other);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_failed_or_hung_rank_ends_the_others_inside_the_timeout() {
    let message = err(&search(&["dist-check", "--nproc-per-node", "2", "--mib", "1", "--fail-rank", "1"]));
    assert!(message.contains("rank 1 of 2 failed"), "{message}");
    let start = Instant::now();
    let message = err(&search(&[
        "dist-check",
        "--nproc-per-node",
        "2",
        "--mib",
        "1",
        "--hang-rank",
        "1",
        "--dist-timeout-s",
        "4",
    ]));
    let seconds = start.elapsed().as_secs_f64();
    assert!(message.contains("rank 0") && message.contains("timed out"), "{message}");
    assert!(message.contains("dead or hung: rank 1 (no progress recorded)"), "the hung rank is named: {message}");
    assert!(seconds < 30.0, "the hung rank was noticed after {seconds} s");
    // A rank whose peers never come stops at the rendezvous.
    let port = free_port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["dist-check", "--dist-timeout-s", "3"])
        .env("RANK", "0")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", &port)
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && message.contains("could not join"), "{message}");
    // Two ranks check the engine.
    let printed = ok(&search(&["dist-check", "--nproc-per-node", "2", "--mib", "1"]));
    assert_eq!(printed.matches("\"all_reduce\":\"ok\"").count(), 2, "{printed}");
}
