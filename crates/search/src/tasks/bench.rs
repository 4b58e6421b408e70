//! `search bench`: the time and memory of search steps on random data, without the loader
//! (performance issue; docs/performance.md). A weight step is forward + loss + backward + SGD,
//! an architecture step the same with Adam on α and β, as in the public port's measurements;
//! then the second-order architecture step (DARTS' unrolled gradient, `crate::train::architect`)
//! is timed on its own, after the first-order pairs, so that the peak memory before it is the
//! first-order figure and the peak after it the second-order one.
//! The network, its execution and the optimisers come from a search config, as `search run`
//! reads it.

use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};
use trellis::{ArchParams, Execution, SearchNetworkConfig};

use crate::dist::Ranks;
use crate::observe::env::EnvReport;
use crate::run_config::{SearchRunConfig, WeightOptimConfig};
use crate::store::rundir::peak_rss_mib;
use crate::store::session::Compute;
use crate::train::architect::{Architect, Order, Unrolled};
use crate::train::loss_scale::LossScaler;
use crate::train::optim::{Adam, AdamConfig, Params, Sgd};
use crate::train::optimised::Optimised;
use crate::train::step::{weight_step, Labelled, StepTiming};

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// Square crop.
    pub crop: i64,
    pub batch: i64,
    pub steps: usize,
    pub warmup: usize,
    pub autocast: bool,
    pub autocast_dtype: crate::train::precision::AutocastDtype,
    pub model: SearchNetworkConfig,
    pub execution: Execution,
    /// The optimisers' settings (their cost is part of a step).
    pub weights: WeightOptimConfig,
    pub arch: AdamConfig,
    /// The second-order step's ξ (unset: the weights' learning rate) and r of its ε.
    pub unrolled_lr: Option<f64>,
    pub hessian_step: f64,
}

impl BenchConfig {
    /// The steps of `search`'s config: its model, execution, crop (the larger side) and batch.
    pub fn of(search: &SearchRunConfig, steps: usize, warmup: usize) -> BenchConfig {
        BenchConfig {
            crop: search.data.transform.crop.into_iter().max().unwrap_or(1) as i64,
            batch: search.data.loader.batch as i64,
            steps,
            warmup,
            autocast: search.autocast,
            autocast_dtype: search.autocast_dtype,
            model: search.model.clone(),
            execution: search.execution.clone(),
            weights: search.weights.clone(),
            arch: search.arch.adam(),
            unrolled_lr: search.arch.unrolled_lr,
            hessian_step: search.arch.hessian_step,
        }
    }
}

/// Median and every measurement of one quantity, seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Seconds {
    pub median: f64,
    pub all: Vec<f64>,
}

impl Seconds {
    fn of(values: Vec<f64>) -> Seconds {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Seconds { median, all: values }
    }
}

/// The report, printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    #[serde(flatten)]
    pub config: BenchConfig,
    pub device: String,
    pub threads: i32,
    pub weight_step: Seconds,
    pub weight_forward: Seconds,
    pub weight_backward: Seconds,
    pub arch_step: Seconds,
    pub arch_forward: Seconds,
    pub arch_backward: Seconds,
    /// The second-order architecture step (`arch.order = 2`): four forward and backward
    /// passes (∇w on trainA, ∇w′ and ∇α on trainB at w′, ∇α on trainA at w±) and Adam.
    pub arch_step_second_order: Seconds,
    /// Its median over the first-order architecture step's.
    pub second_order_ratio: f64,
    /// Peak resident memory after the first-order steps, MiB (before any second-order step).
    pub peak_rss_mib_first_order: Option<f64>,
    /// Peak resident memory after the second-order steps too, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Peak GPU memory after the first-order steps, MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_gpu_mib_first_order: Option<f64>,
    /// Peak GPU memory of this process, MiB (`search::observe::gpu`: the caching allocator's peak
    /// reserved memory, or NVML's sampled figure); absent on the CPU or when unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_gpu_mib: Option<f64>,
    /// Where `peak_gpu_mib` comes from: `allocator` or `nvml`; absent on the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_source: Option<&'static str>,
    /// Ranks taking part (`--nproc-per-node`); `batch` is per rank.
    pub ranks: usize,
    /// Share of a weight step plus an architecture step spent averaging gradients across the
    /// ranks (medians; 0 in one process).
    pub communication_share: f64,
    /// Images per second of a weight step plus an architecture step (each on one batch per
    /// rank), over all ranks.
    pub images_per_second: f64,
    /// The recompute budget in force, MiB (sized by the device when the config leaves it unset).
    pub activation_budget_mib: u64,
    /// The estimate of the activations a plain backward pass keeps, MiB (what the `auto`
    /// policy compares with the budget).
    pub estimated_activation_mib: f64,
    /// Layers whose activations the steps recompute (0: the plain backward pass).
    pub recomputed_layers: usize,
    pub weight_parameters: usize,
    pub arch_parameters: usize,
    pub tch_version: String,
    pub libtorch_version: String,
}

/// Runs `warmup` + `steps` pairs of weight and architecture steps on random data.
pub fn run(config: &BenchConfig, device: Device, ranks: &Ranks) -> anyhow::Result<BenchReport> {
    let compute = Compute::of(device, ranks.clone(), 0, (config.autocast, config.autocast_dtype));
    let prepared = crate::store::session::prepare(compute)?;
    let precision = prepared.precision();
    let weights = nn::VarStore::new(device);
    let arch_store = nn::VarStore::new(device);
    let model = &config.model;
    let mut net = model.build(&weights.root());
    let execution = crate::observe::gpu::sized_for(&config.execution, device);
    net.set_execution(execution);
    let mut gpu = crate::observe::gpu::GpuMonitor::for_device(device);
    let arch = ArchParams::for_search(&arch_store.root(), model.blocks, model.layers, model.edge_normalization);
    let sgd = Sgd::new(Params::of(&weights), config.weights.sgd());
    let mut sgd =
        Optimised::new(sgd, ranks.clone(), config.weights.grad_clip).with_scaler(LossScaler::for_run(precision));
    let architect = |order| {
        Architect::new(Adam::new(Params::of(&arch_store), config.arch.clone()), ranks.clone(), order)
            .unrolled(config.unrolled_lr, config.hessian_step)
    };
    let mut first_order = architect(Order::First);
    let count = |vs: &nn::VarStore| Params::of(vs).tensors().iter().map(|t| t.numel()).sum::<usize>();
    let (weight_parameters, arch_parameters) = (count(&weights), count(&arch_store));
    let shape = [config.batch, 3, config.crop, config.crop];
    let estimated: f64 = net.activation_bytes(config.batch, config.crop, config.crop).iter().sum();
    let recomputed_layers =
        net.recompute_plan(config.batch, config.crop, config.crop).map_or(0, |plan| plan.recomputed());
    let mut weight_timings: Vec<StepTiming> = Vec::new();
    let mut arch_timings: Vec<StepTiming> = Vec::new();
    for step in 0..config.warmup + config.steps {
        let images = Tensor::randn(shape, (Kind::Float, device));
        let labels = Tensor::randint(model.classes, [config.batch, config.crop, config.crop], (Kind::Int64, device));
        let batch = Labelled { images: &images, labels: &labels };
        let w = weight_step(&net, &arch, &mut sgd, batch, 0.01, precision)?;
        let unrolled = Unrolled { weights: &sgd, train_a: batch, weight_lr: 0.01 };
        let a = first_order.step(&net, &arch, batch, unrolled, None)?;
        if let Some(gpu) = gpu.as_mut() {
            gpu.sample();
        }
        if step >= config.warmup {
            weight_timings.push(w);
            arch_timings.push(a);
        }
    }
    let (peak_rss_mib_first_order, peak_gpu_mib_first_order) =
        (peak_rss_mib(), gpu.as_ref().and_then(|g| g.peak_mib()));
    // The second-order step from the same state, on its own trainA and trainB batches.
    let mut second_order = architect(Order::Second);
    let mut second_timings: Vec<StepTiming> = Vec::new();
    for step in 0..config.warmup + config.steps {
        let batch = || {
            let images = Tensor::randn(shape, (Kind::Float, device));
            let labels =
                Tensor::randint(model.classes, [config.batch, config.crop, config.crop], (Kind::Int64, device));
            (images, labels)
        };
        let ((images_a, labels_a), (images_b, labels_b)) = (batch(), batch());
        let train_a = Labelled { images: &images_a, labels: &labels_a };
        let unrolled = Unrolled { weights: &sgd, train_a, weight_lr: 0.01 };
        let train_b = Labelled { images: &images_b, labels: &labels_b };
        let a = second_order.step(&net, &arch, train_b, unrolled, None)?;
        if let Some(gpu) = gpu.as_mut() {
            gpu.sample();
        }
        if step >= config.warmup {
            second_timings.push(a);
        }
    }
    let of = |timings: &[StepTiming], f: fn(&StepTiming) -> f64| Seconds::of(timings.iter().map(f).collect());
    let arch_step_second_order = of(&second_timings, StepTiming::total);
    let env = EnvReport::collect();
    let (weight_step, arch_step) = (of(&weight_timings, StepTiming::total), of(&arch_timings, StepTiming::total));
    let communication = of(&weight_timings, |t| t.communication).median + of(&arch_timings, |t| t.communication).median;
    Ok(BenchReport {
        ranks: ranks.size(),
        second_order_ratio: arch_step_second_order.median / arch_step.median,
        arch_step_second_order,
        peak_rss_mib_first_order,
        peak_gpu_mib_first_order,
        communication_share: communication / (weight_step.median + arch_step.median),
        images_per_second: (config.batch as usize * ranks.size()) as f64 / (weight_step.median + arch_step.median),
        config: config.clone(),
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        weight_step,
        weight_forward: of(&weight_timings, |t| t.forward),
        weight_backward: of(&weight_timings, |t| t.backward),
        arch_step,
        arch_forward: of(&arch_timings, |t| t.forward),
        arch_backward: of(&arch_timings, |t| t.backward),
        peak_rss_mib: peak_rss_mib(),
        peak_gpu_mib: gpu.as_ref().and_then(|g| g.peak_mib()),
        gpu_memory_source: gpu.as_ref().map(|g| g.source()),
        activation_budget_mib: net.execution().budget_mib(),
        estimated_activation_mib: estimated / (1u64 << 20) as f64,
        recomputed_layers,
        weight_parameters,
        arch_parameters,
        tch_version: env.tch_version,
        libtorch_version: env.libtorch_version,
    })
}
