//! CUDA checks, ignored by default (CI has no GPU): `scripts/gpu-check.sh` runs them with
//! `cargo test --release --test cuda -- --ignored` on a CUDA machine. Each fails, rather than
//! passes silently, when CUDA is not usable.

use search::dist::Ranks;
use search::train::architect::{Architect, Order, Unrolled};
use search::train::optimised::Optimised;
use search::train::step::{segmentation_loss, Labelled};
use tch::{nn, Device, Kind, Tensor};
use trellis::{ArchParams, Architecture, DecodedNetworkConfig, SearchNetworkConfig};

fn cuda() -> Device {
    assert!(tch::Cuda::is_available(), "CUDA is not available to libtorch (see `search env`)");
    Device::Cuda(0)
}

#[test]
#[ignore = "needs a CUDA device"]
fn search_step_on_cuda_gives_finite_gradients() {
    let device = cuda();
    tch::manual_seed(0);
    let weights = nn::VarStore::new(device);
    let arch_store = nn::VarStore::new(device);
    let config = SearchNetworkConfig { layers: 6, filter_multiplier: 4, ..Default::default() };
    let net = config.build(&weights.root());
    let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
    let images = Tensor::randn([2, 3, 97, 97], (Kind::Float, device));
    let labels = Tensor::randint(19, [2, 97, 97], (Kind::Int64, device));
    let loss = segmentation_loss(&net.forward_t(&images, &arch.weights(), true), &labels);
    loss.backward();
    assert!(f64::try_from(&loss).unwrap().is_finite());
    for t in weights.trainable_variables().iter().chain(arch_store.trainable_variables().iter()) {
        assert!(bool::try_from(t.grad().isfinite().all()).unwrap());
    }
    // fp16 autocast keeps the logits close to fp32's.
    let w = tch::no_grad(|| arch.weights());
    let full = tch::no_grad(|| net.forward_t(&images, &w, false));
    let half = tch::no_grad(|| tch::autocast(true, || net.forward_t(&images, &w, false)));
    let diff = f64::try_from((full - half.to_kind(Kind::Float)).abs().max()).unwrap();
    assert!(diff < 0.1, "autocast differs by {diff}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn decoded_network_on_cuda_matches_the_cpu() {
    let device = cuda();
    tch::manual_seed(0);
    let config = DecodedNetworkConfig {
        architecture: Architecture::paper(),
        filter_multiplier: 8,
        classes: 19,
        stem_channels: trellis::PAPER_STEM_CHANNELS,
    };
    let cpu_store = nn::VarStore::new(Device::Cpu);
    let cpu_net = config.build(&cpu_store.root());
    let mut gpu_store = nn::VarStore::new(device);
    let gpu_net = config.build(&gpu_store.root());
    gpu_store.copy(&cpu_store).unwrap();
    let images = Tensor::randn([1, 3, 129, 129], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| cpu_net.forward_t(&images, false));
    let b = tch::no_grad(|| gpu_net.forward_t(&images.to_device(device), false)).to_device(Device::Cpu);
    let diff = f64::try_from((a - b).abs().max()).unwrap();
    assert!(diff < 1e-3, "CUDA and CPU logits differ by {diff}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn autocast_weight_steps_on_cuda_move_the_weights_float16_loss_scaled() {
    let device = cuda();
    tch::manual_seed(0);
    let weights = nn::VarStore::new(device);
    let arch_store = nn::VarStore::new(device);
    let config = SearchNetworkConfig { layers: 4, filter_multiplier: 4, ..Default::default() };
    let mut net = config.build(&weights.root());
    let arch = ArchParams::new(&arch_store.root(), config.blocks, config.layers);
    let images = Tensor::randn([2, 3, 65, 65], (Kind::Float, device));
    let labels = Tensor::randint(19, [2, 65, 65], (Kind::Int64, device));
    // Plain and recomputed backward passes under both autocast dtypes; float16 with a scaler.
    use search::train::precision::{AutocastDtype, Precision};
    for dtype in [AutocastDtype::Float16, AutocastDtype::Bfloat16] {
        let precision = Precision::of(true, dtype, device);
        precision.check().unwrap();
        for recompute in [trellis::Recompute::Never, trellis::Recompute::Always] {
            net.set_execution(trellis::Execution { recompute, ..Default::default() });
            let sgd = search::train::optim::Sgd::new(search::train::optim::Params::of(&weights), Default::default());
            let scaler = search::train::loss_scale::LossScaler::for_run(precision);
            assert_eq!(scaler.is_some(), dtype == AutocastDtype::Float16);
            let mut sgd = Optimised::new(sgd, Ranks::Single, 5.0).with_scaler(scaler);
            let before = sgd.params().snapshot();
            let batch = Labelled { images: &images, labels: &labels };
            let timing = search::train::step::weight_step(&net, &arch, &mut sgd, batch, 0.05, precision).unwrap();
            let what = format!("{dtype:?}, {recompute:?}");
            assert!(timing.loss.is_finite() && timing.loss > 0.5 && timing.loss < 10.0, "{what}: loss {}", timing.loss);
            let scaler = sgd.scaler();
            assert!(scaler.is_none_or(|s| s.skipped_steps == 0), "{what}: gradients overflowed at the first scale");
            // The second-order architecture step after it (fp32, whatever the weights' precision).
            let adam =
                search::train::optim::Adam::new(search::train::optim::Params::of(&arch_store), Default::default());
            let mut architect = Architect::new(adam, Ranks::Single, Order::Second);
            let unrolled = Unrolled { weights: &sgd, train_a: batch, weight_lr: 0.05 };
            let arch_timing = architect.step(&net, &arch, batch, unrolled, None).unwrap();
            assert!(arch_timing.loss.is_finite(), "{what}: second-order architecture loss {}", arch_timing.loss);
            let moved = before.iter().zip(sgd.params().tensors()).filter(|(a, b)| !a.equal(b)).count();
            assert!(moved > before.len() / 2, "{what}: only {moved} of {} weights moved", before.len());
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn gpu_memory_is_read_from_the_caching_allocator() {
    let device = cuda();
    let mut monitor = search::observe::gpu::GpuMonitor::for_device(device).expect("a monitor on CUDA");
    assert_eq!(monitor.source(), "allocator", "the allocator's statistics are readable on CUDA");
    let before = search::observe::gpu::allocator_memory(device).unwrap();
    let big = Tensor::zeros([64 << 20], (Kind::Float, device)); // 256 MiB
    let during = search::observe::gpu::allocator_memory(device).unwrap();
    assert!(during.allocated >= before.allocated + (256 << 20), "{before:?} -> {during:?}");
    assert!(during.reserved_peak >= during.reserved && during.reserved >= during.allocated, "{during:?}");
    monitor.sample();
    drop(big);
    let after = search::observe::gpu::allocator_memory(device).unwrap();
    assert!(after.allocated < during.allocated && after.allocated_peak >= during.allocated, "{after:?}");
    assert!(monitor.peak_mib().unwrap() >= 256.0, "peak {:?} MiB", monitor.peak_mib());
}
