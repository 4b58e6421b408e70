//! `cargo bench --bench hot_pieces`: forward + backward time of the search's hot pieces on the
//! CPU at the sizes of the paper's search at crop 64 (level 0 is 16x16, C = F = 8, batch 2):
//! one mixed op (the one implementation, and the per-edge reference), one search cell (one
//! transition, and three transitions batched or one call each; and its per-edge reference),
//! and a two-layer search network with and without batched transitions. Prints the median of 20 runs after 3 warm-ups.

use std::time::Instant;

use cell::{Alpha, MixedOp, ReferenceMixedOp, SearchCellConfig};

use tch::{nn, Device, Kind, Tensor};
use trellis::{ArchParams, Execution, SearchNetworkConfig};

fn median_ms(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let device = Device::Cpu;
    let x = Tensor::randn([2, 8, 16, 16], (Kind::Float, device)).set_requires_grad(true);

    let vs = nn::VarStore::new(device);
    let mixed = MixedOp::new(&vs.root(), 8, 1, 1);
    let reference = ReferenceMixedOp::new(&vs.root(), 8, 1);
    let w = Tensor::full([8], 0.125, (Kind::Float, device));
    let ms = median_ms(|| mixed.forward_t(&x, &w, true).sum(Kind::Float).backward());
    println!("mixed op (C=8, 16x16, batch 2): {ms:.2} ms");
    let ms = median_ms(|| reference.forward_t(&x, &w, true).sum(Kind::Float).backward());
    println!("reference mixed op (one module per op): {ms:.2} ms");
    for primitive in cell::Primitive::ALL.into_iter().skip(1) {
        let vs = nn::VarStore::new(device);
        let op = cell::OpConfig { primitive, channels: 8, stride: 1, style: cell::OpStyle::Search }
            .build(&vs.root())
            .unwrap();
        let ms = median_ms(|| tch::nn::ModuleT::forward_t(&op, &x, true).sum(Kind::Float).backward());
        println!("  {primitive}: {ms:.3} ms");
    }

    let arch = nn::VarStore::new(device);
    let alpha = Alpha::new(&arch.root(), 5);
    let pp = Tensor::randn([2, 40, 16, 16], (Kind::Float, device));
    let inputs: Vec<Tensor> = (0..3).map(|_| Tensor::randn([2, 40, 16, 16], (Kind::Float, device))).collect();
    let vs = nn::VarStore::new(device);
    let config = SearchCellConfig {
        blocks: 5,
        channels: 8,
        prev_prev_channels: Some(40),
        prev_channels: 40,
        partial_channels: 1,
    };
    let cell = config.build(&vs.root());
    let ms = median_ms(|| cell.forward_t(Some(&pp), &inputs[0], &alpha.weights(), true).sum(Kind::Float).backward());
    println!("search cell, B=5, one transition: {ms:.2} ms");
    let ms =
        median_ms(|| cell.forward_transitions(Some(&pp), &inputs, &alpha.weights(), true).sum(Kind::Float).backward());
    println!("search cell, B=5, three transitions batched: {ms:.2} ms");
    let ms = median_ms(|| {
        let a = alpha.weights();
        let total = inputs
            .iter()
            .map(|i| cell.forward_t(Some(&pp), i, &a, true).sum(Kind::Float))
            .reduce(|a, b| a + b)
            .unwrap();
        total.backward()
    });
    println!("search cell, B=5, three transitions one call each: {ms:.2} ms");
    let reference = cell::ReferenceCell::new(&config, &(vs.root() / "reference"));
    let ms = median_ms(|| {
        reference.forward_transitions(Some(&pp), &inputs, &alpha.weights(), true).sum(Kind::Float).backward()
    });
    println!("reference search cell (one mixed op per edge), three transitions: {ms:.2} ms");

    for batched in [true, false] {
        let vs = nn::VarStore::new(device);
        let arch_store = nn::VarStore::new(device);
        let config = SearchNetworkConfig { layers: 2, ..Default::default() };
        let mut net = config.build(&vs.root());
        net.set_execution(Execution { batched_transitions: batched, ..Default::default() });
        let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
        let images = Tensor::randn([2, 3, 64, 64], (Kind::Float, device));
        let ms = median_ms(|| net.forward_t(&images, &arch.weights(), true).sum(Kind::Float).backward());
        println!("search network, L=2, crop 64 ({}): {ms:.1} ms", if batched { "batched" } else { "plain" });
    }
}
