//! `search demo`: the whole chain on the built-in synthetic data, on the CPU in minutes —
//! synth, search, decode, retrain, eval, predict — and the baselines it is judged against:
//! architectures drawn at random from the same search space (`search random`), retrained with
//! the identical recipe and seeds (does the search pick better than chance?), and a per-pixel
//! 1x1 conv trained the same way (did the network learn more than colours?).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use seg::data::{DataFormat, Dataset, SynthConfig, SynthTask};
use seg::palette::PredictionFormat;
use serde::Serialize;
use tch::Device;
use tracing::info;
use trellis::Architecture;

use crate::run_config::{RetrainConfig, SearchRunConfig};
use crate::tasks::retrain::{ModelChoice, RetrainOptions, RetrainOutcome};
use crate::tasks::search_run::{SearchOptions, SearchOutcome};

/// The demo's search settings (configs/demo-search.toml, built in).
pub const SEARCH_CONFIG: &str = include_str!("../../../../configs/demo-search.toml");
/// The demo's retraining settings (configs/demo-retrain.toml, built in).
pub const RETRAIN_CONFIG: &str = include_str!("../../../../configs/demo-retrain.toml");

/// The synthetic data of the demo drawn from `seed`: the context task, on which the choice of
/// ops and path shows in the val mIoU.
pub fn demo_data(seed: u64) -> SynthConfig {
    SynthConfig { seed, train: 64, val: 16, width: 160, height: 80, task: SynthTask::Context }
}

/// How the demo was asked to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The run folder (must not exist yet).
    pub out: PathBuf,
    pub device: Device,
    /// Seed of the data, the search, the retrainings and the random draws.
    pub seed: u64,
    /// Random architectures to retrain beside the searched one.
    pub random: usize,
    /// Overrides of the built-in search config.
    pub search_overrides: Vec<String>,
    /// Overrides of the built-in retraining config (applied to every retraining alike).
    pub retrain_overrides: Vec<String>,
}

/// What the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub out: PathBuf,
    pub architecture: Architecture,
    /// Val mIoU of the retrained searched network (`search eval`).
    pub searched_miou: f64,
    /// Val mIoU of its label-id predictions through `search eval --pred`.
    pub predicted_files_miou: f64,
    /// Val mIoU of each random architecture, retrained with the same recipe and seeds.
    pub random_mious: Vec<f64>,
    /// Their mean and sample standard deviation.
    pub random_mean: f64,
    pub random_std: f64,
    /// Rank of the searched network among the searched and the random ones (1: best).
    pub rank: usize,
    /// Normalised entropy of the searched softmax(α) (mean over edges) and β (mean over
    /// nodes) at the end of the search: 1 = uniform, 0 = decided.
    pub alpha_entropy: f64,
    pub beta_entropy: f64,
    /// The decision margins the search ended with (its `arch/final.json`'s `margins`).
    pub margins: Option<MarginsRecord>,
    /// The block margins `[arch.progressive]` fixed the blocks at (`decided_margins`).
    pub decided: Option<trellis::progressive::DecidedMargins>,
    /// The blocks `[arch.progressive]` never found certain enough to fix (`undecided_blocks`),
    /// decoded by their argmax.
    pub undecided: Vec<usize>,
    /// Val mIoU of the per-pixel baseline.
    pub baseline_miou: f64,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
}

/// The margins of `trellis::Margins` as `arch/final.json` records them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MarginsRecord {
    pub alpha_mean: f64,
    pub beta_mean: f64,
    pub beta_path_mean: f64,
    pub closest: f64,
    /// Per layer, the β margin of the node the decoded path leaves from (empty in files
    /// written before it was recorded).
    #[serde(default)]
    pub beta_path: Vec<f64>,
    /// Per layer, Viterbi's margin for the decoded path's node (`trellis::viterbi::path_margins`;
    /// empty in files written before it was recorded).
    #[serde(default)]
    pub path: Vec<f64>,
}

impl MarginsRecord {
    /// The decoded path's closest call: the layer with the smallest path margin, and that
    /// margin; `None` when the file does not record them.
    pub fn path_closest(&self) -> Option<(usize, f64)> {
        trellis::margins::path_closest(&self.path)
    }
}

/// Runs the demo as `options` say.
pub fn run(options: &DemoOptions) -> Result<DemoReport> {
    let (out, device) = (options.out.as_path(), options.device);
    let seed_override = format!("seed={}", options.seed);
    let search_overrides = [&[seed_override.clone()][..], &options.search_overrides].concat();
    let retrain_overrides = [&[seed_override][..], &options.retrain_overrides].concat();
    if out.exists() {
        bail!("{} exists already; the demo writes a fresh folder (use --out)", out.display());
    }
    let mut seconds = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, seconds: &mut Vec<(String, f64)>| {
        seconds.push((name.to_owned(), clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };

    let data = out.join("data");
    seg::data::generate(&data, &demo_data(options.seed)).context("generating the synthetic data")?;
    lap("synth", &mut seconds);

    let search: SearchRunConfig =
        crate::config::load_text(SEARCH_CONFIG, Path::new("configs/demo-search.toml"), &search_overrides)?;
    let space = search.model.clone();
    let search =
        SearchRunConfig { data: crate::run_config::DataConfig { root: data.clone(), ..search.data }, ..search };
    let run = crate::store::session::RunRequest::fresh(out.join("search"), device);
    let architecture = match crate::tasks::search_run::run(SearchOptions { config: search, run })? {
        SearchOutcome::Finished(architecture) => architecture,
        SearchOutcome::Stopped(checkpoint) => {
            bail!("the search was stopped; resume it with `search run --resume {}`", checkpoint.display())
        }
    };
    lap("search", &mut seconds);
    // Decoding the saved checkpoint gives the same architecture as the search's own decode.
    let checkpoint = out.join("search/checkpoints");
    let latest = crate::store::checkpoint::Checkpoints::new(checkpoint, 1)?
        .latest()?
        .context("the search wrote no checkpoint")?;
    let decoded = trellis::decode_file(&latest)?;
    if (&decoded.cell, &decoded.path) != (&architecture.cell, &architecture.path) {
        bail!("decoding {} gave {decoded:?}, the search ended with {architecture:?}", latest.display());
    }
    info!(cell = %serde_json::to_string(&architecture.cell)?, path = ?architecture.path.levels(), "decoded");
    let (alpha_entropy, beta_entropy) = final_entropies(&out.join("search"))?;
    let margins = architecture.extra.get("margins").and_then(|m| serde_json::from_value(m.clone()).ok());
    let decided = architecture.extra.get("decided_margins").and_then(|m| serde_json::from_value(m.clone()).ok());
    let undecided = architecture
        .extra
        .get("undecided_blocks")
        .and_then(|b| serde_json::from_value(b.clone()).ok())
        .unwrap_or_default();

    let mut retrain: RetrainConfig =
        crate::config::load_text(RETRAIN_CONFIG, Path::new("configs/demo-retrain.toml"), &retrain_overrides)?;
    retrain.data.root = data.clone();
    let train = |model: ModelChoice, folder: &str, config: &RetrainConfig| -> Result<f64> {
        let run = crate::store::session::RunRequest::fresh(out.join(folder), device);
        match crate::tasks::retrain::train(RetrainOptions { config: config.clone(), model, run, holdout: None })? {
            RetrainOutcome::Finished { val_miou, .. } => Ok(val_miou),
            RetrainOutcome::Stopped(checkpoint) => bail!("training was stopped at {}", checkpoint.display()),
        }
    };
    train(ModelChoice::Deployed(architecture.clone()), "retrain", &retrain)?;
    lap("retrain", &mut seconds);

    let model = crate::deploy::trained::load(
        &crate::deploy::trained::ModelArgs { weights: out.join("retrain"), ..Default::default() },
        device,
    )?;
    let dataset = Dataset::new(DataFormat::Cityscapes, data.clone(), model.table.clone());
    let val = dataset.list_samples("val")?;
    let forward = |x: &tch::Tensor| model.forward(x);
    let searched_miou = crate::deploy::evaluate::evaluate(
        &val,
        model.table.names(),
        &model.transform,
        &model.protocol,
        device,
        retrain.data.loader.workers,
        &forward,
    )?
    .scores()
    .miou;
    lap("eval", &mut seconds);

    // Label ids (what `search eval --pred` reads; they look black) and the same in colour.
    let predictions = out.join("predictions/labelids");
    for (folder, format) in [("labelids", PredictionFormat::Labelids), ("color", PredictionFormat::Color)] {
        crate::deploy::predict::predict(
            &model,
            &data.join("leftImg8bit/val"),
            &out.join("predictions").join(folder),
            crate::deploy::predict::PredictOutput::Png(format),
            device,
        )?;
    }
    let predicted_files_miou = seg::eval::evaluate_folder(&predictions, &dataset, "val")?.scores.miou;
    crate::deploy::predict::predict(
        &model,
        &data.join("leftImg8bit/val"),
        &out.join("overlays"),
        crate::deploy::predict::PredictOutput::Png(PredictionFormat::Overlay),
        device,
    )?;
    lap("predict", &mut seconds);

    let drawn = crate::tasks::random::draw(&space, options.random, options.seed);
    crate::tasks::random::write(&out.join("random"), drawn.iter().cloned(), |_| {})?;
    let mut random_mious = Vec::with_capacity(drawn.len());
    for (i, architecture) in drawn.into_iter().enumerate() {
        let miou = train(ModelChoice::Deployed(architecture), &format!("random/{i:03}"), &retrain)?;
        info!(draw = i, val_miou = %format!("{:.2} %", 100.0 * miou), "random architecture retrained");
        random_mious.push(miou);
    }
    let (random_mean, random_std) = crate::tasks::random::mean_std(&random_mious);
    let rank = 1 + random_mious.iter().filter(|&&m| m > searched_miou).count();
    lap("random", &mut seconds);

    let baseline_miou = train(ModelChoice::PixelBaseline, "baseline", &retrain)?;
    lap("baseline", &mut seconds);
    Ok(DemoReport {
        out: out.to_owned(),
        architecture,
        searched_miou,
        predicted_files_miou,
        random_mious,
        random_mean,
        random_std,
        rank,
        alpha_entropy,
        beta_entropy,
        margins,
        decided,
        undecided,
        baseline_miou,
        seconds,
    })
}

/// The mean normalised entropies of α and β that the search's last epoch row reports.
fn final_entropies(search: &Path) -> Result<(f64, f64)> {
    let path = search.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let last = text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|row| row["kind"] == "epoch")
        .with_context(|| format!("{} has no epoch row", path.display()))?;
    let entropy = |key: &str| last[key].as_f64().with_context(|| format!("{}: no `{key}`", path.display()));
    Ok((entropy("alpha_entropy")?, entropy("beta_entropy")?))
}
