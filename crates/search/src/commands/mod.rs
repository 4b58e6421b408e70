//! The commands of `search`, one module each (`Args` and `exec`), and the flags they share.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use search::config::{self as configs, Validate};
use search::device::DeviceChoice;

mod bench;
mod bench_data;
mod check;
mod compare;
mod config;
mod cost;
mod cost_table;
mod decode;
mod demo;
mod dist_check;
mod env;
mod eval;
mod export;
mod predict;
mod random;
mod run;
mod summary;
mod synth;
mod train;

#[derive(Parser)]
#[command(name = "search", version, about = "Auto-DeepLab: hierarchical architecture search for semantic segmentation")]
pub struct Cli {
    /// Torch intra-op threads (default: the config's `execution.threads`, else libtorch's
    /// choice, one per core).
    #[arg(long, global = true)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tch and libtorch versions, CUDA/cuDNN availability, device count and threads.
    Env(env::Args),
    /// Check a fresh set-up: print the environment, then run a tiny search cell forward and
    /// backward and decode its α.
    Check(check::Args),
    /// Join the ranks of a distributed launch and check the collective engine (all-reduce,
    /// broadcast, bandwidth); `--nproc-per-node N` starts N local ranks.
    DistCheck(dist_check::Args),
    /// The whole chain on built-in synthetic data, on the CPU in minutes: synth, search,
    /// decode, retrain, eval, predict, and a per-pixel baseline to compare with.
    Demo(demo::Args),
    /// Retrain a decoded network (poly learning rate, SGD), evaluating on val.
    Train(train::Args),
    /// Segment images with a trained network.
    Predict(predict::Args),
    /// Generate the synthetic street-scene data set, in the Cityscapes, folder, VOC or ADE20K
    /// layout.
    Synth(synth::Args),
    /// Evaluate predictions with the Cityscapes pixel-level metric (per-class IoU, mIoU).
    Eval(eval::Args),
    /// Export a trained network as TorchScript and ONNX with its metadata (docs/deploy.md).
    Export(export::Args),
    /// Measure the data loader's images/s on 2048x1024 images (PNG, or JPEG in the VOC and
    /// ADE20K layouts) at half resolution.
    BenchData(bench_data::Args),
    /// Parameters and multiply-adds of the deployable network of an architecture.
    Summary(summary::Args),
    /// The expected cost (multiply-adds, parameters or latency) of raw α and β, the decoded
    /// architecture's cost and the trellis nodes' probabilities.
    Cost(cost::Args),
    /// Measure the latency of every component of the deployable network on a device: the
    /// table a latency-aware search uses.
    CostTable(cost_table::Args),
    /// Decode α and β into an architecture: the cell (top-2 inputs, argmax op without `none`)
    /// and the network path (Viterbi over β).
    Decode(decode::Args),
    /// The bilevel architecture search: weights on trainA (SGD), α and β on trainB (Adam).
    Run(run::Args),
    /// Time search steps (weight step and architecture step) on random data; one JSON line.
    Bench(bench::Args),
    /// Draw architectures uniformly from a search space: the baseline a search must beat.
    Random(random::Args),
    /// The searched architecture (or a search run now) against random draws and hand-designed
    /// baselines from the same space, each retrained alike for several seeds: mean ± sd, ranks,
    /// Welch's test, Hedges' g, compare.json/.md/.svg. Resumable; shared out across ranks.
    Compare(compare::Args),
    /// The resolved config of a command (`config show --for run|train|check`).
    Config(config::Args),
}

impl Cli {
    /// Applies `--threads` and runs the command.
    pub fn exec(self) -> Result<()> {
        search::runtime::set_threads(self.threads, None)?;
        let threads = self.threads;
        match self.command {
            Command::Env(args) => env::exec(args),
            Command::Check(args) => check::exec(args),
            Command::Demo(args) => demo::exec(args),
            Command::DistCheck(args) => dist_check::exec(args),
            Command::Train(args) => train::exec(args),
            Command::Predict(args) => predict::exec(args),
            Command::Synth(args) => synth::exec(args),
            Command::Eval(args) => eval::exec(args),
            Command::Export(args) => export::exec(args),
            Command::BenchData(args) => bench_data::exec(args),
            Command::Summary(args) => summary::exec(args),
            Command::Decode(args) => decode::exec(args),
            Command::Cost(args) => cost::exec(args),
            Command::CostTable(args) => cost_table::exec(args),
            Command::Run(args) => run::exec(args, threads),
            Command::Bench(args) => bench::exec(args, threads),
            Command::Random(args) => random::exec(args),
            Command::Compare(args) => compare::exec(args),
            Command::Config(args) => config::exec(args),
        }
    }
}

/// The deployed network a cost or summary is counted for: its input size, width and classes.
/// Each flag wins; without it the value comes from the run the command reads (its config and
/// its data's image size), else the paper's deployment (2048x1024, F = 20, 19 classes).
#[derive(Args, Debug, Clone, Copy)]
pub struct DeploymentFlags {
    /// Deployment input size WIDTHxHEIGHT (default: the run's images at its base scale, else
    /// 2048x1024).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Filter multiplier F, 20 / 32 / 48 for Auto-DeepLab-S / M / L (default: the run's, else 20).
    #[arg(long)]
    pub filter_multiplier: Option<i64>,
    /// Output classes (default: the run's class table, else 19).
    #[arg(long)]
    pub classes: Option<i64>,
    /// Channels of the three stem convolutions, `A,B,C` (default: the run's
    /// `model.stem_channels`, else 64,64,128).
    #[arg(long, value_parser = parse_stem)]
    pub stem_channels: Option<[i64; 3]>,
}

/// A deployment resolved from the flags and the run ([`DeploymentFlags::resolve`]).
#[derive(Debug, Clone, Copy)]
pub struct Deployment {
    pub size: (u32, u32),
    pub filter_multiplier: i64,
    pub classes: i64,
    pub stem_channels: [i64; 3],
}

/// What a run folder says about its network: F, classes, stem, and its images' size at its base
/// scale when its data is at hand.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts {
    pub size: Option<(u32, u32)>,
    pub filter_multiplier: i64,
    pub classes: i64,
    pub stem_channels: [i64; 3],
}

/// The run folder `path` belongs to: itself, or the run holding it (a checkpoint folder, a file
/// in either); a run folder holds `config.toml` and its provenance `env/`.
fn run_root(path: &Path) -> Option<&Path> {
    path.ancestors()
        .take(4)
        .filter(|d| !d.as_os_str().is_empty())
        .find(|d| d.join("config.toml").is_file() && d.join("env").is_dir())
}

/// The facts of the run `path` belongs to ([`run_root`]): a retraining's (with `arch.json`) or a
/// search's; `None` outside a run.
pub fn run_facts(path: &Path) -> Result<Option<RunFacts>> {
    let Some(root) = run_root(path) else { return Ok(None) };
    let config = root.join("config.toml");
    let read = || format!("reading {}", config.display());
    let (data, filter_multiplier, classes, stem_channels) = if root.join("arch.json").is_file() {
        let c: search::run_config::RetrainConfig = configs::load(Some(&config), &[]).with_context(read)?;
        (c.data, c.model.filter_multiplier, c.model.classes, c.model.stem_channels)
    } else {
        let c: search::run_config::SearchRunConfig = configs::load(Some(&config), &[]).with_context(read)?;
        (c.data, c.model.filter_multiplier, c.model.classes, c.model.stem_channels)
    };
    Ok(Some(RunFacts { size: image_size(&data), filter_multiplier, classes, stem_channels }))
}

/// The images' size at inference, WIDTHxHEIGHT: the first val image at the data's base scale;
/// `None` when the data is not at hand.
fn image_size(data: &search::run_config::DataConfig) -> Option<(u32, u32)> {
    let first = data.dataset().ok()?.list_samples(&data.val_split).ok()?.into_iter().next()?;
    let (w, h) = image::image_dimensions(&first.image).ok()?;
    let scale = data.transform.base_scale;
    Some((((w as f32 * scale).round() as u32).max(16), ((h as f32 * scale).round() as u32).max(16)))
}

impl DeploymentFlags {
    /// The deployment: each flag, else what the run `run` belongs to says, else the paper's
    /// (2048x1024 also when the run's data is not at hand).
    pub fn resolve(&self, run: Option<&Path>) -> Result<Deployment> {
        let facts = match run {
            Some(path) => run_facts(path)?,
            None => None,
        };
        let d = Deployment {
            size: self.size.or(facts.and_then(|f| f.size)).unwrap_or((2048, 1024)),
            filter_multiplier: self.filter_multiplier.or(facts.map(|f| f.filter_multiplier)).unwrap_or(20),
            classes: self.classes.or(facts.map(|f| f.classes)).unwrap_or(19),
            stem_channels: self
                .stem_channels
                .or(facts.map(|f| f.stem_channels))
                .unwrap_or(trellis::PAPER_STEM_CHANNELS),
        };
        d.validate()?;
        Ok(d)
    }
}

impl Deployment {
    /// The input height.
    pub fn height(&self) -> i64 {
        self.size.1 as i64
    }

    /// The input width.
    pub fn width(&self) -> i64 {
        self.size.0 as i64
    }

    /// The stem's widths.
    pub fn stem(&self) -> [i64; 3] {
        self.stem_channels
    }

    /// Errors naming the flag for values no network can have.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            self.filter_multiplier >= 1,
            "--filter-multiplier {}: must be at least 1",
            self.filter_multiplier
        );
        let (w, h) = self.size;
        anyhow::ensure!(
            (16..=8192).contains(&w) && (16..=8192).contains(&h),
            "--size {w}x{h}: each side must be in 16..=8192"
        );
        anyhow::ensure!(
            (2..=search::limits::MAX_CLASSES).contains(&self.classes),
            "--classes {}: must be in 2..={} (a segmentation has at least two classes; labels are bytes)",
            self.classes,
            search::limits::MAX_CLASSES
        );
        anyhow::ensure!(
            self.filter_multiplier <= search::limits::MAX_FILTER_MULTIPLIER,
            "--filter-multiplier {}: over the limit of {}",
            self.filter_multiplier,
            search::limits::MAX_FILTER_MULTIPLIER
        );
        Ok(())
    }
}

/// `A,B,C`: three stem widths, each at least 1.
pub fn parse_stem(text: &str) -> Result<[i64; 3], String> {
    let widths: Vec<i64> = text
        .split(',')
        .map(|w| w.trim().parse::<i64>().map_err(|_| format!("{text:?}: three widths A,B,C expected")))
        .collect::<Result<_, _>>()?;
    let widths: [i64; 3] = widths.try_into().map_err(|_| format!("{text:?}: three widths A,B,C expected"))?;
    if widths.iter().any(|&w| w < 1) {
        return Err(format!("{text:?}: every width must be at least 1"));
    }
    Ok(widths)
}

impl Deployment {
    /// The networks of cells of `blocks` blocks at this deployment.
    pub fn spec(&self, blocks: usize) -> trellis::TableSpec {
        trellis::TableSpec {
            height: self.height(),
            width: self.width(),
            filter_multiplier: self.filter_multiplier,
            blocks,
            classes: self.classes,
            stem_channels: self.stem(),
        }
    }
}

/// A config file and `--set` overrides, as every configurable command takes them.
#[derive(Args)]
pub struct ConfigFlags {
    /// Config (TOML; see configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set data.loader.batch=4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigFlags {
    /// The config: defaults, the file, the overrides, validated.
    pub fn load<T: serde::de::DeserializeOwned + Validate>(&self) -> Result<T> {
        configs::load(self.config.as_deref(), &self.overrides).context("loading the config")
    }
}

/// What `search run` and `search train` share: where the config, data and run folder are.
#[derive(Args)]
pub struct RunFlags {
    #[command(flatten)]
    pub config: ConfigFlags,
    /// Data set root (overrides `data.root`). Not with --resume.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run folder (default: runs/<name>). Not with --resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Continue the run in this folder from its latest checkpoint, with its own config (only
    /// `--set execution.*` may change how it runs).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop with a checkpoint after this many steps in total, as Ctrl-C does (for tests).
    #[arg(long, hide = true)]
    pub stop_after_steps: Option<usize>,
    /// Start this many ranks on this machine, as `torchrun --nproc-per-node` does (each reads
    /// its share of the data; gradients are averaged; rank 0 writes the run). Launchers'
    /// variables (torchrun, SLURM, MPI) are read without it (docs/distributed.md).
    #[arg(long)]
    pub nproc_per_node: Option<usize>,
    /// How long a rank waits for the others in any collective before it stops with an error.
    #[arg(long, default_value_t = 300)]
    pub dist_timeout_s: u64,
}

impl RunFlags {
    /// With `--nproc-per-node N`: runs the N local ranks of this very command and waits for
    /// them (`Some`); `None` otherwise.
    pub fn launch_local(&self) -> Option<Result<()>> {
        let n = self.nproc_per_node?;
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        Some(search::dist::launch::run_local(n, &search::dist::launch::arguments_without_nproc(&all)))
    }

    /// This process's device (`--device`, made this rank's own GPU in a launch) and the group
    /// of ranks it is one of, when a launcher started it.
    pub fn join(&self) -> Result<(tch::Device, search::dist::Ranks)> {
        let timeout = std::time::Duration::from_secs(self.dist_timeout_s);
        search::dist::join_from_env(self.device.resolve()?, timeout)
    }

    /// The config (the run's own one with --resume), the run folder and whether to resume.
    /// `name` gives a config's run name, `root` its data root.
    /// On resume only rank 0 reads the run's config; the other ranks get it from rank 0
    /// (docs/distributed.md: they need no access to the run folder).
    pub fn resolve<T: serde::de::DeserializeOwned + Validate>(
        &self,
        ranks: &search::dist::Ranks,
        name: impl Fn(&T) -> &str,
        root: impl Fn(&mut T) -> &mut PathBuf,
    ) -> Result<(T, PathBuf, bool)> {
        match &self.resume {
            Some(dir) => {
                let execution_only = self.config.overrides.iter().all(|o| o.trim_start().starts_with("execution."));
                anyhow::ensure!(
                    self.config.config.is_none() && execution_only && self.data.is_none() && self.out.is_none(),
                    "--resume continues a run with its own config: drop --config, --data, --out and every --set \
                     but `--set execution.*` (how it runs, which never changes its results)"
                );
                let path = dir.join("config.toml");
                let read = seg::limits::read_text(&path).with_context(|| format!("reading {}", path.display()));
                let text = String::from_utf8(ranks.from_rank0(read.map(String::into_bytes))?)?;
                let config =
                    configs::load_text(&text, &path, &self.config.overrides).context("reading the run's config")?;
                Ok((config, dir.clone(), true))
            }
            None => {
                // --data is the last override, so that what the config reads from the data root
                // (a folder data set's classes.toml) comes from this one.
                let mut overrides = self.config.overrides.clone();
                if let Some(data) = &self.data {
                    overrides.push(format!("data.root={}", toml::Value::String(data.display().to_string())));
                }
                let mut config: T =
                    configs::load(self.config.config.as_deref(), &overrides).context("loading the config")?;
                // Recorded absolute, so that `--resume` works from any folder.
                if let Ok(absolute) = std::fs::canonicalize(&*root(&mut config)) {
                    *root(&mut config) = absolute;
                }
                let out = self.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name(&config)));
                Ok((config, out, false))
            }
        }
    }
}

/// Which trained network to use.
#[derive(Args, Clone)]
pub struct ModelFlags {
    /// Trained weights: a `search train` run folder, one of its checkpoints, or a safetensors
    /// file (its metadata says which network it is; else --arch and --filter-multiplier).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Architecture JSON file or `paper` (default: the run's arch.json).
    #[arg(long)]
    pub arch: Option<String>,
    /// Filter multiplier F (default: the run's; 20 for a bare file).
    #[arg(long)]
    pub filter_multiplier: Option<i64>,
    /// Class table file of the data set (default: the run's; the format's own).
    #[arg(long, value_name = "FILE.toml")]
    pub classes: Option<PathBuf>,
    /// Resize factor of the input images (default: the run's data.transform.base_scale; 1).
    #[arg(long)]
    pub base_scale: Option<f32>,
}

/// How a trained network is applied to an image (`eval`, `predict`; an export has no say).
#[derive(Args, Clone, Default)]
pub struct InferenceFlags {
    /// Sliding window WIDTHxHEIGHT on the resized image (default: the run's; whole images).
    #[arg(long, value_parser = parse_window)]
    pub window: Option<[u32; 2]>,
    /// Scales of inference, e.g. `0.75,1,1.25` (the paper's multi-scale numbers); logits of
    /// every scale are averaged. Default: 1.
    #[arg(long, value_delimiter = ',')]
    pub scales: Vec<f64>,
    /// Also infer every image flipped left-right and average.
    #[arg(long)]
    pub flip: bool,
}

impl ModelFlags {
    /// The model arguments; `format` is the data set format the command was given (its class
    /// table is the network's unless --classes names one), `inference` how it is applied.
    pub fn resolve(
        &self,
        format: Option<seg::data::DataFormat>,
        inference: &InferenceFlags,
    ) -> Result<search::deploy::trained::ModelArgs> {
        let weights = self.weights.clone().context("--weights is required")?;
        Ok(search::deploy::trained::ModelArgs {
            arch: self.arch.clone(),
            weights,
            filter_multiplier: self.filter_multiplier,
            format,
            classes: self.classes.clone(),
            base_scale: self.base_scale,
            window: inference.window,
            scales: inference.scales.clone(),
            flip: inference.flip,
        })
    }
}

/// `WIDTHxHEIGHT`, like every size on the command line, as `[height, width]` (the order of
/// `data.eval_window` and of tensors).
fn parse_window(text: &str) -> Result<[u32; 2], String> {
    let (w, h) = parse_size(text)?;
    Ok([h, w])
}

/// `WIDTHxHEIGHT` with positive numbers.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(format!("`{text}` is not WIDTHxHEIGHT with positive numbers, e.g. 2048x1024")),
    }
}
