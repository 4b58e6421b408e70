//! The decoded network, `search summary` and `search decode` (trellis issue).

mod common;

use std::process::Command;

use cell::{CellEdge, Genotype, Primitive};
use common::has_useful_gradient;
use rand::{Rng, SeedableRng};
use search::observe::summary::summarize;
use tch::{nn, Device, Kind, Reduction, Tensor};
use trellis::{
    decode, decode_file, ArchParams, Architecture, DecodeError, DecodedNetworkConfig, NetworkPath, RawParams,
};

#[test]
fn paper_parameter_counts_match_table_2() {
    // Paper Table 2 (total) and §5.2 (encoder), in millions to 0.01M.
    for (f, total, backbone) in [(20, 10.15, 7.03), (32, 21.62, 17.61), (48, 44.42, 39.22)] {
        let s = summarize(&Architecture::paper(), f, 19, 1024, 2048);
        let m = |n: i64| (n as f64 / 1e4).round() / 100.0;
        assert_eq!(m(s.parameters.total), total, "F = {f}: {:?}", s.parameters);
        assert_eq!(m(s.parameters.backbone), backbone, "F = {f}: {:?}", s.parameters);
        assert_eq!(s.parameters.total, s.parameters.backbone + s.parameters.aspp + s.parameters.decoder);
        assert!(s.multiply_adds > 300_000_000_000 && s.multiply_adds < 700_000_000_000, "{}", s.multiply_adds);
    }
    assert_eq!(summarize(&Architecture::paper(), 20, 19, 1024, 2048).parameters.total, 10_147_427);
}

fn random_architecture(rng: &mut impl Rng, blocks: usize, layers: usize) -> Architecture {
    let ops = &Primitive::ALL[1..];
    let cell = Genotype::new(
        (0..blocks)
            .map(|b| {
                [0, 1].map(|_| CellEdge { input: rng.random_range(0..b + 2), op: ops[rng.random_range(0..ops.len())] })
            })
            .collect(),
    )
    .unwrap();
    let mut level = 0i32;
    let levels = (0..layers)
        .map(|_| {
            level = (level + rng.random_range(-1..=1)).clamp(0, 3);
            level as u8
        })
        .collect();
    Architecture { cell, path: NetworkPath::new(levels).unwrap(), extra: Default::default() }
}

fn forward_backward(architecture: Architecture, f: i64, (h, w): (i64, i64)) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = DecodedNetworkConfig {
        architecture: architecture.clone(),
        filter_multiplier: f,
        classes: 19,
        stem_channels: trellis::PAPER_STEM_CHANNELS,
    }
    .build(&vs.root());
    let images = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(19, [2, h, w], (Kind::Int64, Device::Cpu));
    let logits = net.forward_t(&images, true);
    assert_eq!(logits.size(), [2, 19, h, w], "{architecture:?}");
    logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, 255, 0.0).backward();
    for (name, t) in vs.trainable_variables().iter().enumerate() {
        assert!(has_useful_gradient(t), "parameter #{name} got no gradient for {:?}", architecture.path);
    }
    let eval = tch::no_grad(|| net.forward_t(&images, false));
    assert!(bool::try_from(eval.isfinite().all()).unwrap());
}

#[test]
fn the_paper_network_runs_forward_and_backward() {
    tch::manual_seed(0);
    forward_backward(Architecture::paper(), 2, (65, 65));
}

#[test]
fn random_valid_architectures_run_forward_and_backward() {
    tch::manual_seed(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for (blocks, layers, size) in [(5, 6, (57, 41)), (2, 4, (64, 48)), (3, 8, (33, 33))] {
        forward_backward(random_architecture(&mut rng, blocks, layers), 2, size);
    }
    // A path that starts at level 1 takes its low-level feature from the stem.
    let mut arch = random_architecture(&mut rng, 2, 3);
    arch.path = NetworkPath::new(vec![1, 0, 1]).unwrap();
    forward_backward(arch, 2, (40, 40));
}

/// Raw logits that make `architecture` the clear decoding.
fn raw_params_for(architecture: &Architecture) -> RawParams {
    let blocks = architecture.cell.num_blocks();
    // `none` is the strongest op of every edge, kept or not: decoding must look past it.
    let mut alpha = vec![[6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; cell::edges::num_edges(blocks)];
    for (b, edges) in architecture.cell.blocks().iter().enumerate() {
        for e in edges {
            alpha[cell::edges::edge_index(b, e.input)][e.op.index()] = 4.0;
        }
    }
    let layers = architecture.path.num_layers();
    let mut beta = vec![[[0.0; 3]; 4]; layers];
    let mut from = 0usize;
    for (l, &to) in architecture.path.levels().iter().enumerate() {
        beta[l][from][to as usize + 1 - from] = 5.0;
        from = to as usize;
    }
    RawParams { alpha, beta, edges: None }
}

#[test]
fn decode_reads_json_safetensors_and_checkpoint_folders() {
    let dir = std::env::temp_dir().join(format!("adl-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paper = Architecture::paper();
    let json = dir.join("params.json");
    std::fs::write(&json, serde_json::to_string(&raw_params_for(&paper)).unwrap()).unwrap();
    assert_eq!(decode_file(&json).unwrap(), paper);

    // The architecture store of a search, saved as safetensors.
    let store = nn::VarStore::new(Device::Cpu);
    let params = ArchParams::new(&store.root(), 5, 7);
    store.save(dir.join("arch.safetensors")).unwrap();
    let expected = decode(params.alpha.logits(), &params.beta, &dir).unwrap();
    assert_eq!(decode_file(&dir.join("arch.safetensors")).unwrap(), expected);
    assert_eq!(decode_file(&dir).unwrap(), expected, "a checkpoint folder holds arch.safetensors");
    assert_eq!(expected.path.num_layers(), 7);

    // The CLI prints the architecture and writes it with --out.
    let out = dir.join("arch.json");
    let run = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["decode", "--params", json.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let printed = Architecture::from_json(&String::from_utf8_lossy(&run.stdout), "stdout").unwrap();
    assert_eq!(printed, paper);
    assert_eq!(Architecture::load(&out).unwrap(), paper);

    // Bad inputs.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"alpha": [[0,0,0,0,0,0,0,0]], "beta": [[[0,0,0],[0,0,0],[0,0,0],[0,0,0]]]}"#).unwrap();
    let err = decode_file(&bad).unwrap_err();
    assert!(matches!(err, DecodeError::EdgeCount { rows: 1, .. }) && err.to_string().contains("bad.json"), "{err}");
    std::fs::write(&bad, r#"{"alpha": [], "beta": [], "gamma": 1}"#).unwrap();
    assert!(decode_file(&bad).unwrap_err().to_string().contains("gamma"));
    assert!(decode_file(&dir.join("missing.safetensors")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn summary_cli_prints_the_counts() {
    let out = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["summary", "--arch", "paper", "--filter-multiplier", "20", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["parameters"]["total"], 10_147_427);
    // Another stem: its three convolutions (3x3, batch norm) and the first cell's preprocessing
    // of H^{-2} and H^{-1} (1x1, batch norm) shrink with it.
    let narrow = |stem: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_search"))
            .args(["summary", "--arch", "paper", "--json", "--stem-channels", stem])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(narrow("64,64,128")["parameters"]["total"], 10_147_427, "the paper's stem is the default");
    let fewer = narrow("32,32,64")["parameters"]["total"].as_i64().unwrap();
    assert!(fewer < 10_147_427, "{fewer}");
    let zero = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["summary", "--arch", "paper", "--stem-channels", "0,32,64"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--stem-channels"));
    let bad =
        Command::new(env!("CARGO_BIN_EXE_search")).args(["summary", "--arch", "/nonexistent/a.json"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/a.json"));
}
