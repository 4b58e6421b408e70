//! `search`: Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985) from the command line.
//!
//! The command-line interface: argument parsing and printing. The work is done in the library
//! (`search::search_run`, `search::retrain`, `search::evaluate`, `search::predict`,
//! `search::demo`, …) and in the `cell`, `trellis` and `seg` crates.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use search::config;
use search::device::DeviceChoice;
use search::env::EnvReport;
use search::smoke::{self, SmokeConfig};
use seg::data::{Annotation, SynthConfig, TransformConfig};
use tracing::info;

/// mimalloc for the whole process, libtorch's tensors included (the `override` feature exports
/// `malloc`, `free` and `posix_memalign`): with glibc's allocator about a fifth of a small-crop
/// search step went to `_int_malloc` and chunk consolidation (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
}

/// "mimalloc" when a CPU tensor libtorch allocates lies in mimalloc's heap (the override
/// reaches libtorch), else "system".
fn tensor_allocator() -> &'static str {
    let t = tch::Tensor::zeros([4096], (tch::Kind::Float, tch::Device::Cpu));
    // SAFETY: a query of mimalloc's address ranges; the pointer is only compared, not read.
    if unsafe { mi_is_in_heap_region(t.data_ptr()) } {
        "mimalloc"
    } else {
        "system"
    }
}

/// Keeps freed memory mapped instead of handing it back to the OS: a search step frees and
/// re-allocates the same activations every step, and with mimalloc's defaults each step
/// re-faulted them (845k page faults and a third of the time in the kernel on a crop-321,
/// 6-layer bench; 92k without). Freed memory is purged with `MADV_FREE` (the kernel may take it
/// back under memory pressure) rather than decommitted, and never eagerly. Each option is set
/// only if it still has mimalloc 3's documented default (the crate is pinned), so that a
/// renumbered option enum is left alone rather than misconfigured, and only if the user has not
/// set it in the environment (`MIMALLOC_PURGE_DECOMMITS`, `MIMALLOC_PURGE_DELAY`).
fn keep_freed_memory_mapped() {
    // (index in `mi_option_e`, its environment variable, documented default, our value)
    let options: [(std::ffi::c_int, &str, std::ffi::c_long, std::ffi::c_long); 2] =
        [(5, "MIMALLOC_PURGE_DECOMMITS", 1, 0), (16, "MIMALLOC_PURGE_DELAY", 1000, -1)];
    for (option, variable, default, value) in options {
        if std::env::var_os(variable).is_some() {
            continue;
        }
        // SAFETY: plain getters and setters of mimalloc's option table, linked in by the allocator.
        unsafe {
            if mi_option_get(option) == default {
                mi_option_set(option, value);
            }
        }
    }
}

#[derive(Parser)]
#[command(name = "search", version, about = "Auto-DeepLab: hierarchical architecture search for semantic segmentation")]
struct Cli {
    /// Torch intra-op threads (default: libtorch's choice, one per core).
    #[arg(long, global = true)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tch and libtorch versions, CUDA/cuDNN availability, device count and threads.
    Env {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a fresh set-up: print the environment, then run a tiny search cell forward and
    /// backward and decode its α.
    Check(CheckArgs),
    /// The whole chain on built-in synthetic data, on the CPU in minutes: synth, search,
    /// decode, retrain, eval, predict, and a per-pixel baseline to compare with.
    Demo(DemoArgs),
    /// Retrain a decoded network (poly learning rate, SGD), evaluating on val.
    Train(TrainArgs),
    /// Segment images with a trained network.
    Predict(PredictArgs),
    /// Generate the synthetic street-scene data set in the Cityscapes layout and encoding.
    Synth(SynthArgs),
    /// Evaluate predictions with the Cityscapes pixel-level metric (per-class IoU, mIoU).
    Eval(EvalArgs),
    /// Measure the data loader's images/s on 2048x1024 PNGs at half resolution.
    BenchData(BenchDataArgs),
    /// Parameters and multiply-adds of the deployable network of an architecture.
    Summary(SummaryArgs),
    /// Decode α and β into an architecture: the cell (top-2 inputs, argmax op without `none`)
    /// and the network path (Viterbi over β).
    Decode(DecodeArgs),
    /// The bilevel architecture search: weights on trainA (SGD), α and β on trainB (Adam).
    Run(RunArgs),
    /// Time search steps (weight step and architecture step) on random data; one JSON line.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Square crop size.
    #[arg(long, default_value_t = 64)]
    crop: i64,
    /// Images per batch.
    #[arg(long, default_value_t = 2)]
    batch: i64,
    /// Filter multiplier F.
    #[arg(long, default_value_t = 8)]
    filter_multiplier: i64,
    /// Layers L.
    #[arg(long, default_value_t = 12)]
    layers: usize,
    /// Blocks per cell B.
    #[arg(long, default_value_t = 5)]
    blocks: usize,
    /// Measured steps.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Unmeasured steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// fp16 autocast for the weights' forward (CUDA only).
    #[arg(long)]
    autocast: bool,
    /// Measure the plain path: one cell call per transition.
    #[arg(long)]
    plain_transitions: bool,
    /// Measure the plain path: one mixed op per edge.
    #[arg(long)]
    plain_edges: bool,
    /// When to recompute the layers' activations in the backward pass (memory-saving mode):
    /// auto (when the kept activations would exceed the budget), always or never.
    #[arg(long, default_value = "auto")]
    recompute: trellis::Recompute,
    /// Partial channel connections (PC-DARTS): 1/K of the channels through the mixed ops.
    #[arg(long, default_value_t = 1)]
    partial_channels: i64,
    /// The activation budget of `--recompute auto`, MiB.
    #[arg(long, default_value_t = 3072)]
    activation_budget_mib: u64,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// What `search run` and `search train` share: where the config, data and run folder are.
#[derive(Args)]
struct RunFlags {
    /// Config (TOML; see configs/). Not with --resume.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set epochs=10` (repeatable). Not with --resume.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Data set root (overrides `data.root`). Not with --resume.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder (default: runs/<name>). Not with --resume.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Continue the run in this folder from its latest checkpoint, with its own config.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop with a checkpoint after this many steps in total, as Ctrl-C does (for tests).
    #[arg(long, hide = true)]
    stop_after_steps: Option<usize>,
}

impl RunFlags {
    /// The config (the run's own one with --resume), the run folder and whether to resume.
    /// `name` gives a config's run name, `root` its data root.
    fn resolve<T: serde::de::DeserializeOwned>(
        &self,
        name: impl Fn(&T) -> &str,
        root: impl Fn(&mut T) -> &mut PathBuf,
    ) -> Result<(T, PathBuf, bool)> {
        match &self.resume {
            Some(dir) => {
                anyhow::ensure!(
                    self.config.is_none() && self.overrides.is_empty() && self.data.is_none() && self.out.is_none(),
                    "--resume continues a run with its own config: drop --config, --set, --data and --out"
                );
                let config = config::load(Some(&dir.join("config.toml")), &[]).context("reading the run's config")?;
                Ok((config, dir.clone(), true))
            }
            None => {
                let mut config: T =
                    config::load(self.config.as_deref(), &self.overrides).context("loading the config")?;
                if let Some(data) = &self.data {
                    *root(&mut config) = data.clone();
                }
                let out = self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name(&config)));
                Ok((config, out, false))
            }
        }
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Args)]
struct DecodeArgs {
    /// Raw parameters: a search checkpoint folder (its arch.safetensors), a safetensors file
    /// with tensors `alpha` and `beta`, or JSON {"alpha": [[8 numbers] x edges], "beta":
    /// [[[3 numbers] x 4] x L]} of raw logits.
    #[arg(long)]
    params: PathBuf,
    /// Also write the architecture JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SummaryArgs {
    /// Architecture JSON file, or `paper` for the architecture of the paper (Fig. 3).
    #[arg(long)]
    arch: String,
    /// Filter multiplier F (20 / 32 / 48 for Auto-DeepLab-S / M / L).
    #[arg(long, default_value_t = 20)]
    filter_multiplier: i64,
    /// Input height for the multiply-adds.
    #[arg(long, default_value_t = 1024)]
    height: i64,
    /// Input width for the multiply-adds.
    #[arg(long, default_value_t = 2048)]
    width: i64,
    /// Output classes.
    #[arg(long, default_value_t = 19)]
    classes: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// Output folder (gets leftImg8bit/ and gtFine/).
    #[arg(long)]
    out: PathBuf,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of training images.
    #[arg(long, default_value_t = 64)]
    train: usize,
    /// Number of validation images.
    #[arg(long, default_value_t = 16)]
    val: usize,
    /// Image size as WIDTHxHEIGHT.
    #[arg(long, default_value = "256x128", value_parser = parse_size)]
    size: (u32, u32),
}

#[derive(Args)]
struct EvalArgs {
    /// Folder of predicted label-id PNGs in the Cityscapes results format (one single-channel
    /// PNG per image, named with its <city>_<seq>_<frame> prefix; searched recursively).
    /// Either this or --weights.
    #[arg(long, conflicts_with = "weights")]
    pred: Option<PathBuf>,
    #[command(flatten)]
    model: ModelFlags,
    /// Data set root (holding leftImg8bit/ and gtFine/).
    #[arg(long)]
    data: PathBuf,
    /// Split to evaluate.
    #[arg(long, default_value = "val")]
    split: String,
    /// Use the coarse annotations (gtCoarse/) as ground truth.
    #[arg(long)]
    coarse: bool,
    /// Also write the scores as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where to run the network (with --weights).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Which trained network to use.
#[derive(Args, Clone)]
struct ModelFlags {
    /// Trained weights: a `search train` run folder, one of its checkpoints, or a safetensors
    /// file (then --arch and --filter-multiplier say which network it is).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Architecture JSON file or `paper` (default: the run's arch.json).
    #[arg(long)]
    arch: Option<String>,
    /// Filter multiplier F (default: the run's; 20 for a bare file).
    #[arg(long)]
    filter_multiplier: Option<i64>,
    /// Output classes (default: the run's; 19).
    #[arg(long)]
    classes: Option<i64>,
    /// Resize factor of the input images (default: the run's data.transform.base_scale; 1).
    #[arg(long)]
    base_scale: Option<f32>,
    /// Sliding window HEIGHTxWIDTH on the resized image (default: the run's; whole images).
    #[arg(long, value_parser = parse_window)]
    window: Option<[u32; 2]>,
}

impl ModelFlags {
    fn resolve(&self) -> Result<search::trained::ModelArgs> {
        let weights = self.weights.clone().context("--weights is required")?;
        Ok(search::trained::ModelArgs {
            arch: self.arch.clone(),
            weights,
            filter_multiplier: self.filter_multiplier,
            classes: self.classes,
            base_scale: self.base_scale,
            window: self.window,
        })
    }
}

fn parse_window(text: &str) -> Result<[u32; 2], String> {
    let (w, h) = parse_size(text)?;
    Ok([w, h])
}

#[derive(Args)]
struct TrainArgs {
    /// Architecture JSON file or `paper`. Not with --resume.
    #[arg(long)]
    arch: Option<String>,
    /// Train the per-pixel baseline (a 1x1 conv) instead of a decoded network.
    #[arg(long, conflicts_with = "arch")]
    baseline: bool,
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// An image, or a folder searched recursively for PNG and JPEG images.
    #[arg(long)]
    input: PathBuf,
    /// Output folder (mirrors the input's sub-folders).
    #[arg(long)]
    out: PathBuf,
    /// colour PNG, label-id PNG (the Cityscapes results format) or overlay on the image.
    #[arg(long, value_enum, default_value_t = FormatArg::Color)]
    format: FormatArg,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Color,
    Labelids,
    Overlay,
}

#[derive(Args)]
struct DemoArgs {
    /// Output folder (default: runs/demo-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a key of the built-in search config (configs/demo-search.toml).
    #[arg(long = "set-search", value_name = "KEY=VALUE")]
    search_overrides: Vec<String>,
    /// Override a key of the built-in retraining config (configs/demo-retrain.toml).
    #[arg(long = "set-retrain", value_name = "KEY=VALUE")]
    retrain_overrides: Vec<String>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchDataArgs {
    /// Data set root to read (its train split); default: generate synthetic images into a
    /// temporary folder.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Synthetic images to generate when --data is not given.
    #[arg(long, default_value_t = 16)]
    images: usize,
    /// Size of the generated images, WIDTHxHEIGHT.
    #[arg(long, default_value = "2048x1024", value_parser = parse_size)]
    size: (u32, u32),
    /// Worker counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Batches prepared ahead.
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// Square crop size.
    #[arg(long, default_value_t = 321)]
    crop: u32,
    /// Resize factor applied before cropping (0.5 = half resolution).
    #[arg(long, default_value_t = 0.5)]
    base_scale: f32,
    /// Epochs over the images per measurement.
    #[arg(long, default_value_t = 2)]
    epochs: u64,
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(format!("`{text}` is not WIDTHxHEIGHT with positive numbers, e.g. 2048x1024")),
    }
}

#[derive(Args)]
struct CheckArgs {
    /// TOML config (see configs/cell-smoke.toml); built-in defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set blocks=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// oneDNN (libtorch's CPU convolutions) caches 1024 compiled primitives by default; the search
/// network's convolutions come in more shapes than that (four levels, bundles of 1 to 5 edges,
/// 1 to 3 batched transitions, forward and two backward passes each), so the default cache
/// thrashes and primitives are rebuilt every step. 16384 entries cost no measurable memory.
/// oneDNN reads the variable on its first convolution, after this; a user's setting wins.
fn size_onednn_primitive_cache() {
    const VARIABLE: &str = "ONEDNN_PRIMITIVE_CACHE_CAPACITY";
    if std::env::var_os(VARIABLE).is_none() {
        std::env::set_var(VARIABLE, "16384");
    }
}

fn main() -> Result<()> {
    keep_freed_memory_mapped();
    size_onednn_primitive_cache();
    search::logging::init();
    search::interrupt::install();
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        anyhow::ensure!(threads >= 1, "--threads {threads}: needs at least one thread");
        tch::set_num_threads(threads);
    }
    match cli.command {
        Command::Env { json } => {
            let report = EnvReport { tensor_allocator: Some(tensor_allocator().to_owned()), ..EnvReport::collect() };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
        }
        Command::Check(args) => check(args)?,
        Command::Demo(args) => demo(args)?,
        Command::Train(args) => train(args)?,
        Command::Predict(args) => predict(args)?,
        Command::Synth(args) => synth(args)?,
        Command::Eval(args) => eval(args)?,
        Command::BenchData(args) => bench_data(args)?,
        Command::Summary(args) => summary(args)?,
        Command::Decode(args) => decode(args)?,
        Command::Run(args) => run(args)?,
        Command::Bench(args) => bench(args)?,
    }
    Ok(())
}

fn check(args: CheckArgs) -> Result<()> {
    let config: SmokeConfig =
        config::load(args.config.as_deref(), &args.overrides).context("loading the check config")?;
    anyhow::ensure!(config.blocks >= 1, "config key `blocks`: a cell needs at least one block, got 0");
    anyhow::ensure!(
        config.batch >= 1 && config.size >= 1 && config.channels >= 1 && config.classes >= 2,
        "config keys `batch`, `size`, `channels` must be >= 1 and `classes` >= 2, got {config:?}"
    );
    let device = args.device.resolve()?;
    let env = EnvReport::collect();
    if !args.json {
        print!("{}", env.to_text());
    }
    info!(?device, blocks = config.blocks, channels = config.channels, "search cell forward/backward");
    let report = smoke::run(&config, device);
    anyhow::ensure!(
        report.weight_tensors_with_gradient == report.weight_tensors && report.alpha_grad_norm > 0.0,
        "gradient check failed: {} of {} weight tensors and α (norm {}) got a finite non-zero gradient",
        report.weight_tensors_with_gradient,
        report.weight_tensors,
        report.alpha_grad_norm
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"env": env, "cell": report}))?);
    } else {
        println!(
            "search cell: output {:?}, loss {:.4}, gradients on {}/{} weight tensors and on α (norm {:.3e}), {:.3} s",
            report.cell_output,
            report.loss,
            report.weight_tensors_with_gradient,
            report.weight_tensors,
            report.alpha_grad_norm,
            report.seconds
        );
        println!("decoded cell: {}", serde_json::to_string(&report.genotype)?);
    }
    Ok(())
}

fn synth(args: SynthArgs) -> Result<()> {
    let (width, height) = args.size;
    let config = SynthConfig { seed: args.seed, train: args.train, val: args.val, width, height };
    let start = std::time::Instant::now();
    let written = seg::data::generate(&args.out, &config)
        .with_context(|| format!("writing the synthetic data set to {}", args.out.display()))?;
    info!(images = written.len(), seconds = start.elapsed().as_secs_f64(), "synthetic data set written");
    println!("wrote {} train and {} val images of {width}x{height} to {}", args.train, args.val, args.out.display());
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let annotation = if args.coarse { Annotation::Coarse } else { Annotation::Fine };
    let (scores, counts, images) = match &args.pred {
        Some(pred) => {
            let result = seg::eval::evaluate_folder(pred, &args.data, &args.split, annotation).with_context(|| {
                format!("evaluating {} against {} ({})", pred.display(), args.data.display(), args.split)
            })?;
            (result.scores, result.counts, result.images)
        }
        None => {
            anyhow::ensure!(
                args.model.weights.is_some(),
                "say what to evaluate: --pred FOLDER, or --weights (with --arch)"
            );
            let device = args.device.resolve()?;
            let model = search::trained::load(&args.model.resolve()?, device)?;
            let samples = seg::data::list_samples(&args.data, &args.split, annotation)?;
            let forward = |x: &tch::Tensor| model.forward(x);
            let matrix = search::evaluate::evaluate(&samples, &model.transform, model.window, device, 2, &forward)?;
            (matrix.scores(), matrix.counts(), samples.len())
        }
    };
    print!("{}", scores.to_table());
    println!("{images} images");
    if let Some(path) = &args.json {
        let json =
            serde_json::json!({"images": images, "split": args.split, "scores": scores, "confusion_counts": counts});
        search::rundir::write_atomic(path, (serde_json::to_string_pretty(&json)? + "\n").as_bytes())?;
    }
    Ok(())
}

fn bench_data(args: BenchDataArgs) -> Result<()> {
    let transform =
        TransformConfig { base_scale: args.base_scale, crop: [args.crop, args.crop], ..TransformConfig::default() };
    let temp;
    let root = match &args.data {
        Some(root) => root.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("adl-bench-data-{}", std::process::id()));
            let (width, height) = args.size;
            let config = SynthConfig { seed: 0, train: args.images, val: 0, width, height };
            info!(images = args.images, width, height, "generating benchmark images");
            seg::data::generate(&temp, &config).context("generating benchmark images")?;
            temp.clone()
        }
    };
    let results = search::bench_data::measure(&root, &transform, args.batch, args.prefetch, &args.workers, args.epochs);
    if args.data.is_none() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    for result in results? {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

fn summary(args: SummaryArgs) -> Result<()> {
    anyhow::ensure!(args.filter_multiplier >= 1, "--filter-multiplier {}: must be at least 1", args.filter_multiplier);
    anyhow::ensure!(args.height >= 1 && args.width >= 1, "--height and --width must be at least 1");
    anyhow::ensure!(args.classes >= 1, "--classes {}: must be at least 1", args.classes);
    let architecture = search::arch_source::resolve(&args.arch).context("reading --arch")?;
    let summary =
        search::summary::summarize(&architecture, args.filter_multiplier, args.classes, args.height, args.width);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

fn decode(args: DecodeArgs) -> Result<()> {
    let architecture = trellis::decode_file(&args.params).context("decoding --params")?;
    println!("{}", architecture.to_json());
    if let Some(out) = &args.out {
        architecture.save(out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    use search::run_config::SearchRunConfig;
    let device = args.run.device.resolve()?;
    let (config, out, resume) =
        args.run.resolve(|c: &SearchRunConfig| c.name.as_str(), |c: &mut SearchRunConfig| &mut c.data.root)?;
    let options =
        search::search_run::SearchOptions { config, out, device, resume, stop_after_steps: args.run.stop_after_steps };
    match search::search_run::run(options)? {
        search::search_run::SearchOutcome::Finished(architecture) => println!("{}", architecture.to_json()),
        search::search_run::SearchOutcome::Stopped(checkpoint) => {
            println!("stopped at checkpoint {}", checkpoint.display())
        }
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    use search::retrain::{ModelChoice, RetrainOptions, RetrainOutcome};
    use search::run_config::RetrainConfig;
    let device = args.run.device.resolve()?;
    let (config, out, resume) =
        args.run.resolve(|c: &RetrainConfig| c.name.as_str(), |c: &mut RetrainConfig| &mut c.data.root)?;
    let model = if resume {
        anyhow::ensure!(
            args.arch.is_none() && !args.baseline,
            "--resume continues a run with its own architecture: drop --arch and --baseline"
        );
        match out.join("arch.json") {
            arch if arch.is_file() => ModelChoice::Deployed(trellis::Architecture::load(&arch)?),
            _ => ModelChoice::PixelBaseline,
        }
    } else {
        match (&args.arch, args.baseline) {
            (_, true) => ModelChoice::PixelBaseline,
            (Some(spec), false) => ModelChoice::Deployed(search::arch_source::resolve(spec).context("reading --arch")?),
            (None, false) => anyhow::bail!("say what to train: --arch FILE|paper, or --baseline"),
        }
    };
    let options = RetrainOptions { config, model, out, device, resume, stop_after_steps: args.run.stop_after_steps };
    match search::retrain::train(options)? {
        RetrainOutcome::Finished { val_miou, weights } => {
            println!("val mIoU {:.2} %, weights {}", 100.0 * val_miou, weights.display())
        }
        RetrainOutcome::Stopped(checkpoint) => println!("stopped at checkpoint {}", checkpoint.display()),
    }
    Ok(())
}

fn predict(args: PredictArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let model = search::trained::load(&args.model.resolve()?, device)?;
    let format = match args.format {
        FormatArg::Color => seg::palette::PredictionFormat::Color,
        FormatArg::Labelids => seg::palette::PredictionFormat::Labelids,
        FormatArg::Overlay => seg::palette::PredictionFormat::Overlay,
    };
    let count = search::predict::predict(&model, &args.input, &args.out, format, device)?;
    println!("wrote {count} predictions to {}", args.out.display());
    Ok(())
}

fn demo(args: DemoArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("demo-{now}"))
    });
    let start = std::time::Instant::now();
    print!("{}", EnvReport::collect().to_text());
    let report = search::demo::run(&out, device, &args.search_overrides, &args.retrain_overrides)?;
    let total = start.elapsed().as_secs_f64();
    println!("decoded cell: {}", serde_json::to_string(&report.architecture.cell)?);
    println!("decoded path: {:?}", report.architecture.path.levels());
    for (stage, seconds) in &report.seconds {
        println!("{stage:>9}: {seconds:6.1} s");
    }
    println!(
        "searched network, retrained:  val mIoU {:5.2} %  (from its label-id PNGs: {:5.2} %)",
        100.0 * report.searched_miou,
        100.0 * report.predicted_files_miou
    );
    println!("per-pixel baseline (1x1 conv): val mIoU {:5.2} %", 100.0 * report.baseline_miou);
    println!(
        "margin {:+.2} points; {total:.0} s in all; everything is in {}",
        100.0 * (report.searched_miou - report.baseline_miou),
        out.display()
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    anyhow::ensure!(
        args.crop >= 1 && args.batch >= 1 && args.filter_multiplier >= 1,
        "--crop, --batch and --filter-multiplier must be at least 1"
    );
    anyhow::ensure!(
        args.layers >= 1 && args.blocks >= 1 && args.steps >= 1,
        "--layers, --blocks and --steps must be at least 1"
    );
    anyhow::ensure!(
        args.partial_channels >= 1 && args.filter_multiplier % args.partial_channels == 0,
        "--partial-channels {} must be at least 1 and divide --filter-multiplier {}",
        args.partial_channels,
        args.filter_multiplier
    );
    let device = args.device.resolve()?;
    let config = search::bench::BenchConfig {
        crop: args.crop,
        batch: args.batch,
        filter_multiplier: args.filter_multiplier,
        layers: args.layers,
        blocks: args.blocks,
        classes: 19,
        steps: args.steps,
        warmup: args.warmup,
        autocast: args.autocast,
        plain_transitions: args.plain_transitions,
        plain_edges: args.plain_edges,
        partial_channels: args.partial_channels,
        recompute: args.recompute,
        activation_budget_mib: args.activation_budget_mib,
    };
    println!("{}", serde_json::to_string(&search::bench::run(&config, device))?);
    Ok(())
}
