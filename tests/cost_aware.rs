//! Cost-aware search (docs/cost-aware.md): the cost model against `search summary`, the
//! dynamic programme against brute force, its gradients against finite differences, a search
//! with a huge cost weight, the latency table's file format and commands; PC-DARTS edge
//! normalisation; the stabilisers.

mod common;

use cell::{Genotype, Primitive, SearchCellConfig};
use common::{err, ok, repo, search, search_with, temp, tiny_search};
use rand::SeedableRng;
use tch::{nn, Device, Kind, Tensor};
use trellis::space::max_level;
use trellis::{
    build_table, normalize_beta, ArchParams, Architecture, CostKind, CostModel, CostTable, NetworkPath, RelaxedCell,
    TableSpec, Timing,
};

const SPEC: TableSpec =
    TableSpec { height: 65, width: 97, filter_multiplier: 4, blocks: 5, classes: 5, stem_channels: [64, 64, 128] };

fn model(spec: &TableSpec, kind: CostKind) -> CostModel {
    build_table(spec, None).model(kind, "counted").unwrap()
}

/// Every valid path of `layers` layers (levels of the cells), starting from the stem at level 0.
fn all_paths(layers: usize) -> Vec<Vec<usize>> {
    let mut paths = vec![vec![]];
    for l in 0..layers {
        paths = paths
            .into_iter()
            .flat_map(|p: Vec<usize>| {
                let from = p.last().copied().unwrap_or(0);
                (0..=max_level(l)).filter(move |&j| j.abs_diff(from) <= 1).map(move |j| [p.clone(), vec![j]].concat())
            })
            .collect();
    }
    paths
}

#[test]
fn a_decoded_architectures_cost_is_what_search_summary_counts() {
    // The paper's stem, then another one: the cost table builds its stem from the spec, as the
    // decoded network does from its config.
    for stem_channels in [trellis::PAPER_STEM_CHANNELS, [8, 12, 24]] {
        decoded_costs_are_counted(&TableSpec { stem_channels, ..SPEC });
    }
}

fn decoded_costs_are_counted(spec: &TableSpec) {
    let macs = model(spec, CostKind::Macs);
    let params = model(spec, CostKind::Params);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut architectures = vec![Architecture::paper()];
    for layers in [1, 2, 6] {
        for _ in 0..3 {
            let cell = Genotype::random(5, &mut rng);
            architectures.push(Architecture {
                cell,
                path: NetworkPath::random(layers, &mut rng),
                extra: Default::default(),
            });
        }
    }
    for architecture in &architectures {
        let config = trellis::DecodedNetworkConfig {
            architecture: architecture.clone(),
            filter_multiplier: spec.filter_multiplier,
            classes: spec.classes,
            stem_channels: spec.stem_channels,
        };
        let summary = search::observe::summary::summarize_config(&config, spec.height, spec.width);
        let path = architecture.path.levels();
        assert_eq!(macs.architecture_cost(architecture), summary.multiply_adds as f64, "multiply-adds of {path:?}");
        assert_eq!(params.architecture_cost(architecture), summary.parameters.total as f64, "parameters of {path:?}");
        // A decided relaxation (one-hot β on the path) gives the same through the programme.
        let mut beta = vec![-1e4f64; path.len() * 12];
        let mut from = 0usize;
        for (l, &j) in path.iter().enumerate() {
            beta[l * 12 + from * 3 + (j as usize + 1 - from)] = 1e4;
            from = j as usize;
        }
        let beta = normalize_beta(&Tensor::from_slice(&beta).view([path.len() as i64, 4, 3]));
        let expected = macs.expected(&RelaxedCell::decided(&architecture.cell), &beta);
        let value = f64::try_from(&expected.cost).unwrap();
        assert!((value - summary.multiply_adds as f64).abs() <= 1e-9 * value, "{value} for {path:?}");
    }
}

/// Random raw α `[edges, 8]`, β `[L, 4, 3]` and edge logits `[edges]`, in double precision.
fn raw(blocks: usize, layers: usize, seed: i64) -> (Tensor, Tensor, Tensor) {
    tch::manual_seed(seed);
    let opts = (Kind::Double, Device::Cpu);
    let edges = cell::edges::num_edges(blocks) as i64;
    (Tensor::randn([edges, 8], opts), Tensor::randn([layers as i64, 4, 3], opts), Tensor::randn([edges], opts))
}

#[test]
fn the_dynamic_programme_equals_brute_force_over_every_path() {
    let spec = TableSpec { blocks: 3, ..SPEC };
    for kind in [CostKind::Macs, CostKind::Params] {
        let model = model(&spec, kind);
        for layers in [1, 2, 3, 5] {
            let (alpha, beta_logits, edges) = raw(3, layers, layers as i64);
            let cell = RelaxedCell::new(&alpha, Some(&edges), 3);
            let beta = normalize_beta(&beta_logits);
            let expected = model.expected(&cell, &beta);
            let b = Vec::<f64>::try_from(beta.flatten(0, -1)).unwrap();
            let paths = all_paths(layers);
            let mut brute = 0.0;
            let mut total_probability = 0.0;
            for path in &paths {
                let mut from = 0;
                let probability: f64 = path
                    .iter()
                    .enumerate()
                    .map(|(l, &j)| {
                        let p = b[l * 12 + from * 3 + (j + 1 - from)];
                        from = j;
                        p
                    })
                    .product();
                total_probability += probability;
                brute += probability * model.path_cost(path, &cell);
            }
            let dp = f64::try_from(&expected.cost).unwrap();
            assert!((total_probability - 1.0).abs() < 1e-12, "{total_probability}");
            assert!((dp - brute).abs() <= 1e-10 * brute, "L = {layers}, {kind:?}: programme {dp}, brute force {brute}");
            // Node probabilities: each layer's sum to 1, and match the paths through each node.
            let nodes = Vec::<f64>::try_from(expected.nodes.flatten(0, -1)).unwrap();
            for l in 0..layers {
                let row = &nodes[l * 4..l * 4 + 4];
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert!(row[max_level(l) + 1..].iter().all(|&p| p == 0.0));
            }
        }
    }
}

#[test]
fn expected_cost_gradients_match_finite_differences() {
    let blocks = 2;
    let layers = 3;
    let spec = TableSpec { blocks, ..SPEC };
    let model = model(&spec, CostKind::Macs);
    let (alpha, beta, edges) = raw(blocks, layers, 11);
    let f = |alpha: &Tensor, beta: &Tensor, edges: &Tensor| -> Tensor {
        model.expected(&RelaxedCell::new(alpha, Some(edges), blocks), &normalize_beta(beta)).cost
    };
    let (a, b, e) = (alpha.set_requires_grad(true), beta.set_requires_grad(true), edges.set_requires_grad(true));
    let value = f(&a, &b, &e);
    value.backward();
    let scale = f64::try_from(&value).unwrap();
    let h = 1e-5;
    let check = |which: usize, grad: &Tensor| {
        let base = [&alpha, &beta, &edges][which];
        let n = base.numel() as i64;
        let grad = Vec::<f64>::try_from(grad.flatten(0, -1)).unwrap();
        for i in 0..n {
            let bump = |delta: f64| {
                let inputs = [alpha.copy(), beta.copy(), edges.copy()];
                let flat = inputs[which].view([-1]);
                let _ = flat.get(i).g_add_scalar_(delta);
                f64::try_from(f(&inputs[0], &inputs[1], &inputs[2])).unwrap()
            };
            let numeric = (bump(h) - bump(-h)) / (2.0 * h);
            let name = ["alpha", "beta", "edges"][which];
            assert!(
                (numeric - grad[i as usize]).abs() <= 1e-6 * scale,
                "{name}[{i}]: autograd {} against finite differences {numeric}",
                grad[i as usize]
            );
        }
        grad.iter().map(|g| g.abs()).fold(0.0, f64::max)
    };
    assert!(check(0, &a.grad()) > 0.0, "α gets a gradient");
    assert!(check(1, &b.grad()) > 0.0, "β gets a gradient");
    assert!(check(2, &e.grad()) > 0.0, "the edge weights get a gradient");
    // `none` costs nothing and is never decoded: its logit gets no gradient from the cost.
    let none = a.grad().select(1, Primitive::None as i64).abs().max();
    assert_eq!(f64::try_from(none).unwrap(), 0.0);
}

/// A config over configs/tiny-search.toml with `extra` appended, in `dir`.
fn tiny_config(dir: &std::path::Path, extra: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("search.toml");
    let text = format!("base = {:?}\n{extra}", repo("configs/tiny-search.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn metrics(run: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn with_a_huge_cost_weight_the_decoded_network_is_the_cheapest() {
    let root = common::data("cost-huge", 8, (48, 40));
    let dir = temp("cost-huge-run");
    let config = tiny_config(
        &dir,
        "epochs = 3\narch_start_epoch = 0\n[arch]\nlr = 0.1\n[arch.cost]\nkind = \"macs\"\ntarget = 1e6\nweight = 1e6\nheight = 64\nwidth = 64\nfilter_multiplier = 2\n",
    );
    let run = dir.join("run");
    ok(&search_with(&config, &root, &run, &[]));
    let decoded = Architecture::load(&run.join("arch/final.json")).unwrap();
    // The tiny search's shape: L = 3, B = 2, and the synthetic street scenes' 19 classes.
    let spec = TableSpec { height: 64, width: 64, filter_multiplier: 2, blocks: 2, classes: 19, ..SPEC };
    let model = model(&spec, CostKind::Macs);
    // The cheapest network: ops that cost nothing (pooling, skip at stride 1) on the cheapest path.
    let free = Genotype::new(vec![
        [
            cell::CellEdge { input: 0, op: Primitive::MaxPool3x3 },
            cell::CellEdge { input: 1, op: Primitive::MaxPool3x3 }
        ];
        2
    ])
    .unwrap();
    let cheapest =
        all_paths(3).iter().map(|p| model.path_cost(p, &RelaxedCell::decided(&free))).fold(f64::INFINITY, f64::min);
    let cost = model.architecture_cost(&decoded);
    assert_eq!(cost, cheapest, "decoded {decoded:?}");
    let rows = metrics(&run);
    let epochs: Vec<&serde_json::Value> = rows.iter().filter(|r| r.get("cost_decoded").is_some()).collect();
    assert_eq!(epochs.len(), 3);
    assert_eq!(epochs[2]["cost_decoded"].as_f64(), Some(cost));
    assert!(epochs.iter().all(|r| r["cost_expected"].as_f64().unwrap() > 0.0 && r["cost_kind"] == "macs"));
    // The expected cost falls as α and β learn the budget.
    let expected: Vec<f64> = epochs.iter().map(|r| r["cost_expected"].as_f64().unwrap()).collect();
    assert!(expected[2] < expected[0], "{expected:?}");
    let steps: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r.get("cost_expected").is_some() && r.get("cost_decoded").is_none()).collect();
    assert!(!steps.is_empty(), "step rows log E[cost]");
}

#[test]
fn a_latency_table_round_trips_and_the_commands_use_it() {
    let spec = TableSpec { height: 33, width: 33, filter_multiplier: 2, blocks: 2, classes: 3, ..SPEC };
    let measurement = trellis::cost::Measurement {
        device: "cpu".into(),
        device_name: "test".into(),
        versions: Default::default(),
        warmup: 1,
        repeats: 2,
        threads: 1,
        measured: "2026-11-30T00:00:00Z".into(),
    };
    let timing = Timing { device: Device::Cpu, warmup: 1, repeats: 2 };
    let table = build_table(&spec, Some((&timing, measurement)));
    let dir = temp("cost-table");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("table.json");
    table.save(&path).unwrap();
    let back = CostTable::load(&path).unwrap();
    assert_eq!(back, table);
    assert!(back.entries.iter().all(|e| e.cost.latency_ms.is_some_and(|ms| ms >= 0.0)));
    let latency = back.model(CostKind::Latency, "table").unwrap();
    let paper_like = Architecture {
        cell: Genotype::random(2, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1)),
        path: NetworkPath::new(vec![0, 1, 2]).unwrap(),
        extra: Default::default(),
    };
    assert!(latency.architecture_cost(&paper_like) > 0.0);
    // A table of counts only has no latency; another size is refused by name.
    let counts = build_table(&spec, None);
    assert!(counts.model(CostKind::Latency, "counts").unwrap_err().to_string().contains("no latency"));
    let mismatch = back.check("table.json", &TableSpec { height: 64, ..spec }).unwrap_err().to_string();
    assert!(mismatch.contains("size (WIDTHxHEIGHT) = 33x33") && mismatch.contains("33x64"), "{mismatch}");

    // The commands: a table measured by `search cost-table`, used by `search cost`.
    let cli_table = dir.join("cli-table.json");
    let t = cli_table.to_str().unwrap();
    let size = ["--size", "33x33", "--filter-multiplier", "2"];
    let mut args = vec!["--threads", "1", "cost-table", "--device", "cpu", "--blocks", "2", "--classes", "3"];
    args.extend(size);
    args.extend(["--warmup", "1", "--repeats", "3", "--out", t]);
    ok(&search(&args));
    let written = CostTable::load(&cli_table).unwrap();
    let m = written.measurement.as_ref().expect("the measurement is recorded");
    assert_eq!((m.device.as_str(), m.warmup, m.repeats), ("cpu", 1, 3));
    assert!(m.versions.contains_key("libtorch"));
    let (alpha, beta, _) = raw(2, 3, 5);
    let params = dir.join("params.json");
    let rows = |t: &Tensor, n: usize| -> Vec<Vec<f64>> {
        Vec::<f64>::try_from(t.flatten(0, -1)).unwrap().chunks(n).map(|c| c.to_vec()).collect()
    };
    let beta_rows: Vec<Vec<Vec<f64>>> =
        rows(&beta, 12).into_iter().map(|l| l.chunks(3).map(|c| c.to_vec()).collect()).collect();
    std::fs::write(&params, serde_json::json!({"alpha": rows(&alpha, 8), "beta": beta_rows}).to_string()).unwrap();
    let p = params.to_str().unwrap();
    let out = ok(&search(
        &[
            &[
                "cost",
                "--params",
                p,
                "--kind",
                "latency",
                "--table",
                t,
                "--classes",
                "3",
                "--json",
                "--measure",
                "--warmup",
                "1",
                "--repeats",
                "2",
            ][..],
            &size[..],
        ]
        .concat(),
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["expected"].as_f64().unwrap() > 0.0 && report["decoded"].as_f64().unwrap() > 0.0);
    assert_eq!(report["node_probabilities"].as_array().unwrap().len(), 3);
    assert!(report["decoded_measured_ms"].as_f64().unwrap() > 0.0, "--measure times the decoded network");
    // Multiply-adds need no table, and equal `search summary` for the decoded architecture.
    let out =
        ok(&search(&[&["cost", "--params", p, "--kind", "macs", "--classes", "3", "--json"][..], &size[..]].concat()));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let architecture: Architecture = serde_json::from_value(report["architecture"].clone()).unwrap();
    let summary = search::observe::summary::summarize(&architecture, 2, 3, 33, 33);
    assert_eq!(report["decoded"].as_f64(), Some(summary.multiply_adds as f64));
    // Latency without a table, and a table of another size, are refused plainly.
    let e = err(&search(&[&["cost", "--params", p, "--kind", "latency", "--classes", "3"][..], &size[..]].concat()));
    assert!(e.contains("--kind latency needs --table"), "{e}");
    let e =
        err(&search(&["cost", "--params", p, "--kind", "latency", "--table", t, "--classes", "3", "--size", "33x65"]));
    assert!(e.contains("cli-table.json") && e.contains("WIDTHxHEIGHT"), "{e}");
}

#[test]
fn edge_normalisation_weights_the_forward_pass_and_the_decoding() {
    // Forward: a one-block cell is linear in its edge weights, so scaling the rows of the two
    // edges by the normalised edge weights gives the weighted sum of each edge alone.
    let vs = nn::VarStore::new(Device::Cpu);
    let config =
        SearchCellConfig { blocks: 1, channels: 4, prev_prev_channels: Some(4), prev_channels: 4, partial_channels: 1 };
    let cell = config.build(&vs.root());
    let arch_store = nn::VarStore::new(Device::Cpu);
    let arch = ArchParams::for_search(&arch_store.root(), 1, 2, true);
    let mut edges = arch.edges.as_ref().expect("edge weights are searched").shallow_clone();
    tch::no_grad(|| {
        edges.copy_(&Tensor::from_slice(&[0.3f32, -0.8]));
    });
    let w = arch.weights();
    let gamma = Vec::<f64>::try_from(w.edges.as_ref().unwrap()).unwrap();
    assert!((gamma[0] + gamma[1] - 1.0).abs() < 1e-6 && gamma[0] > gamma[1]);
    tch::manual_seed(0);
    let (x0, x1) = (
        Tensor::randn([2, 4, 6, 6], (Kind::Float, Device::Cpu)),
        Tensor::randn([2, 4, 6, 6], (Kind::Float, Device::Cpu)),
    );
    let run = |weights: &Tensor| tch::no_grad(|| cell.forward_t(Some(&x0), &x1, weights, false));
    let only =
        |edge: i64| w.alpha.shallow_clone() * Tensor::from_slice(&[1.0f32 - edge as f32, edge as f32]).unsqueeze(1);
    let combined = run(&only(0)) * gamma[0] + run(&only(1)) * gamma[1];
    assert!(common::max_abs_diff(&run(&w.cell), &combined) < 1e-5);
    // Gradients reach the edge weights through a search network.
    let net_store = nn::VarStore::new(Device::Cpu);
    let net_config = trellis::SearchNetworkConfig {
        layers: 2,
        blocks: 2,
        filter_multiplier: 2,
        stem_channels: [4, 4, 8],
        classes: 3,
        edge_normalization: true,
        ..Default::default()
    };
    let net = net_config.build(&net_store.root());
    let arch_store = nn::VarStore::new(Device::Cpu);
    let arch = ArchParams::for_search(&arch_store.root(), 2, 2, true);
    let images = Tensor::randn([2, 3, 33, 33], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(3, [2, 33, 33], (Kind::Int64, Device::Cpu));
    search::train::step::segmentation_loss(&net.forward_t(&images, &arch.weights(), true), &labels).backward();
    assert!(common::has_useful_gradient(arch.edges.as_ref().unwrap()));
    // Decoding: equal op weights on every edge, so the edge weights alone choose block 1's
    // inputs (0 and 2 here; without them the lowest inputs win the tie).
    let alpha = Tensor::zeros([5, 8], (Kind::Double, Device::Cpu));
    let beta = Tensor::zeros([2, 4, 3], (Kind::Double, Device::Cpu));
    let edges = Tensor::from_slice(&[0.0f64, 0.0, 2.0, -1.0, 1.0]);
    let origin = std::path::Path::new("hand-made");
    let with = trellis::decode_with_edges(&alpha, &beta, Some(&edges), origin).unwrap();
    let without = trellis::decode(&alpha, &beta, origin).unwrap();
    let inputs = |a: &Architecture| a.cell.blocks()[1].map(|e| e.input);
    assert_eq!((inputs(&with), inputs(&without)), ([0, 2], [0, 1]));
}

#[test]
fn a_search_with_edge_weights_and_stabilisers_logs_them_and_decodes_with_them() {
    let root = common::data("cost-stab", 8, (48, 40));
    let dir = temp("cost-stab-run");
    let config = tiny_config(
        &dir,
        "[model]\nedge_normalization = true\n[arch.beta_decay]\nweight = 0.5\n[arch.aux_skip]\nstart = 1.0\nschedule = \"linear\"\n",
    );
    let run = dir.join("run");
    ok(&search_with(&config, &root, &run, &[]));
    // The checkpoint holds the edge weights, and decoding the run uses them.
    let checkpoint = std::fs::read_dir(run.join("checkpoints")).unwrap().count();
    assert!(checkpoint > 0);
    let decoded = ok(&search(&["decode", "--params", run.to_str().unwrap()]));
    let final_arch = Architecture::load(&run.join("arch/final.json")).unwrap();
    assert_eq!(Architecture::from_json(&decoded, "decode").unwrap().cell, final_arch.cell);
    let rows = metrics(&run);
    let steps: Vec<&serde_json::Value> = rows.iter().filter(|r| r["kind"] == "step").collect();
    assert!(steps.len() >= 4, "one row per step");
    // Linear from 1 at the first step towards 0 after the last.
    let n = steps.len() as f64;
    for (i, row) in steps.iter().enumerate() {
        let aux = row["aux_skip"].as_f64().expect("every step logs the coefficient");
        assert!((aux - (1.0 - i as f64 / n)).abs() < 1e-9, "step {i}: {aux}");
    }
    let decay: Vec<f64> = steps.iter().filter_map(|r| r.get("beta_decay").and_then(|v| v.as_f64())).collect();
    assert_eq!(decay.len(), steps.len() / 2, "the regulariser acts in the architecture steps (epoch 1)");
    assert!(steps.iter().all(|r| r.get("cost_expected").is_none()), "no cost term, no cost field");
    assert!(decay.iter().all(|v| *v > 2.0f64.ln()), "logsumexp over 8 ops is above ln 8 > ln 2: {decay:?}");
    // A bad stabiliser value is refused before anything is written.
    let bad = dir.join("bad");
    let e = err(&tiny_search(&root, &bad, &["--set", "arch.aux_skip.start=-1"]));
    assert!(e.contains("arch.aux_skip.start"), "{e}");
    assert!(!bad.exists());
}

#[test]
fn a_cost_aware_search_with_every_option_resumes_exactly() {
    let root = common::data("cost-resume", 8, (48, 40));
    let dir = temp("cost-resume-run");
    let config = tiny_config(
        &dir,
        "epochs = 3\narch_start_epoch = 0\n[model]\nedge_normalization = true\n[arch.cost]\nkind = \"params\"\ntarget = 1e5\nweight = 0.5\nadapt = true\nheight = 64\nwidth = 64\nfilter_multiplier = 2\n[arch.beta_decay]\nweight = 0.5\n[arch.aux_skip]\nschedule = \"cosine\"\n",
    );
    let run = |out: &std::path::Path, extra: &[&str]| search_with(&config, &root, out, extra);
    let (straight, split) = (dir.join("straight"), dir.join("split"));
    ok(&run(&straight, &[]));
    let stopped = ok(&run(&split, &["--stop-after-steps", "3"]));
    assert!(stopped.contains("stopped at checkpoint"), "{stopped}");
    ok(&search(&["--threads", "1", "run", "--resume", split.to_str().unwrap(), "--device", "cpu"]));
    let a = common::tensors(&straight.join("checkpoints/step_00000006/arch.safetensors"));
    let b = common::tensors(&split.join("checkpoints/step_00000006/arch.safetensors"));
    assert_eq!(a.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["alpha", "beta", "edges"]);
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x.equal(y), "{name} differs after the resume");
    }
    // The adaptive weight is part of the state: the same at every epoch of both runs.
    let weights = |run: &std::path::Path| -> Vec<f64> {
        metrics(run).iter().filter_map(|r| r.get("cost_weight").and_then(|w| w.as_f64())).collect()
    };
    let (w1, w2) = (weights(&straight), weights(&split));
    assert_eq!(w1.len(), 3);
    assert_eq!(w1, w2);
    // Far over the budget (the network has millions of parameters), the weight rises each epoch.
    assert_eq!(w1, [0.5, 0.75, 1.125]);
}

#[test]
fn beta_decay_pulls_the_largest_logits_down_and_aux_skip_adds_the_input() {
    // The Beta-Decay term's gradient in α_e is softmax(α_e) / edges times its weight.
    let arch_store = nn::VarStore::new(Device::Cpu);
    let arch = ArchParams::new(&arch_store.root(), 2, 2);
    let config = search::run_config::ArchConfig {
        beta_decay: Some(search::run_config::BetaDecayConfig {
            weight: 3.0,
            schedule: search::run_config::Schedule::Constant,
        }),
        ..Default::default()
    };
    let model = trellis::SearchNetworkConfig { layers: 2, blocks: 2, filter_multiplier: 2, ..Default::default() };
    let loss = search::train::arch_loss::ArchLoss::new(&config, &model).unwrap();
    let (penalty, terms) = loss.penalty(&arch, 0.0, 0.5).unwrap();
    penalty.backward();
    let expected = arch.alpha.weights() * (3.0 / 5.0);
    assert!(common::max_abs_diff(&arch.alpha.logits().grad(), &expected) < 1e-6);
    assert!(terms.beta_decay.is_some() && terms.expected_cost.is_none());
    // The auxiliary skip adds its coefficient to every edge's skip_connect weight, outside α.
    let plain = arch.weights_with(0.0, 1.0);
    let aux = arch.weights_with(0.4, 1.0);
    let mut skip = [0.0f32; 8];
    skip[Primitive::SkipConnect as usize] = 0.4;
    assert!(common::max_abs_diff(&(aux.cell - plain.cell), &Tensor::from_slice(&skip).expand([5, 8], false)) < 1e-7);
    assert!(common::max_abs_diff(&aux.alpha, &plain.alpha) == 0.0, "softmax(α) is untouched");
}

#[test]
fn latency_cost_needs_a_table_and_bad_cost_keys_are_named() {
    let root = common::data("cost-bad", 4, (48, 40));
    let dir = temp("cost-bad-run");
    for (set, key) in [
        (vec!["arch.cost.kind=latency", "arch.cost.target=5"], "arch.cost.table"),
        (vec!["arch.cost.kind=macs", "arch.cost.target=-1"], "arch.cost.target"),
        (vec!["arch.cost.kind=macs", "arch.cost.target=1", "arch.cost.factor=1"], "arch.cost.factor"),
    ] {
        let out = dir.join(key);
        let mut extra = vec![];
        for s in &set {
            extra.extend(["--set", s]);
        }
        let e = err(&tiny_search(&root, &out, &extra));
        assert!(e.contains(key), "{key}: {e}");
        assert!(!out.exists());
    }
    // A table that does not exist is named, and nothing is written.
    let out = dir.join("missing");
    let e = err(&tiny_search(
        &root,
        &out,
        &[
            "--set",
            "arch.cost.kind=latency",
            "--set",
            "arch.cost.target=5",
            "--set",
            "arch.cost.table=/nonexistent/table.json",
        ],
    ));
    assert!(e.contains("/nonexistent/table.json"), "{e}");
    assert!(!out.exists());
}
