//! `search`: Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985) from the command line.
//!
//! For now: `search env` (what libtorch this build uses and sees), `search demo` (set-up
//! check: the environment, then a tiny search-cell forward/backward and decode), `search synth`
//! (the synthetic data set), `search eval --pred` (the Cityscapes metric on a folder of
//! predictions) and `search bench-data` (loader throughput). The search,
//! decode, retrain, eval and predict commands arrive with the later issues.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use search::config;
use search::device::DeviceChoice;
use search::env::EnvReport;
use search::smoke::{self, SmokeConfig};
use seg::data::{Annotation, SynthConfig, TransformConfig};
use tracing::info;

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
    Demo(DemoArgs),
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
}

#[derive(Args)]
struct RunArgs {
    /// Search config (TOML; see configs/cityscapes-search.toml). Not with --resume.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set epochs=10` (repeatable). Not with --resume.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Data set root (overrides `data.root`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder (default: runs/<name>).
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
    #[arg(long)]
    pred: PathBuf,
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
struct DemoArgs {
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

fn main() -> Result<()> {
    search::logging::init();
    search::interrupt::install();
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        anyhow::ensure!(threads >= 1, "--threads {threads}: needs at least one thread");
        tch::set_num_threads(threads);
    }
    match cli.command {
        Command::Env { json } => {
            let report = EnvReport::collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
        }
        Command::Demo(args) => demo(args)?,
        Command::Synth(args) => synth(args)?,
        Command::Eval(args) => eval(args)?,
        Command::BenchData(args) => bench_data(args)?,
        Command::Summary(args) => summary(args)?,
        Command::Decode(args) => decode(args)?,
        Command::Run(args) => run(args)?,
    }
    Ok(())
}

fn demo(args: DemoArgs) -> Result<()> {
    let config: SmokeConfig =
        config::load(args.config.as_deref(), &args.overrides).context("loading the demo config")?;
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
    let result = seg::eval::evaluate_folder(&args.pred, &args.data, &args.split, annotation).with_context(|| {
        format!("evaluating {} against {} ({})", args.pred.display(), args.data.display(), args.split)
    })?;
    print!("{}", result.scores.to_table());
    println!("{} images", result.images);
    if let Some(path) = &args.json {
        let json = serde_json::json!({"images": result.images, "split": args.split, "scores": result.scores, "confusion_counts": result.counts});
        write_atomic(path, &(serde_json::to_string_pretty(&json)? + "\n"))?;
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

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomic(path: &std::path::Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
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
    let device = args.device.resolve()?;
    let (config, out, resume) = match &args.resume {
        Some(dir) => {
            anyhow::ensure!(
                args.config.is_none() && args.overrides.is_empty() && args.data.is_none() && args.out.is_none(),
                "--resume continues a run with its own config: drop --config, --set, --data and --out"
            );
            let config: search::run_config::SearchRunConfig =
                config::load(Some(&dir.join("config.toml")), &[]).context("reading the run's config")?;
            (config, dir.clone(), true)
        }
        None => {
            let mut config: search::run_config::SearchRunConfig =
                config::load(args.config.as_deref(), &args.overrides).context("loading the search config")?;
            if let Some(root) = &args.data {
                config.data.root = root.clone();
            }
            let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
            (config, out, false)
        }
    };
    let options =
        search::search_run::SearchOptions { config, out, device, resume, stop_after_steps: args.stop_after_steps };
    match search::search_run::run(options)? {
        search::search_run::SearchOutcome::Finished(architecture) => println!("{}", architecture.to_json()),
        search::search_run::SearchOutcome::Stopped(checkpoint) => {
            println!("stopped at checkpoint {}", checkpoint.display())
        }
    }
    Ok(())
}
