//! `search demo`: the whole chain on the built-in synthetic data, on the CPU in minutes —
//! synth, search, decode, retrain, eval, predict — and a per-pixel baseline (a 1x1 conv
//! trained with the same settings) to show that the searched network learned more than colours.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use seg::data::{list_samples, Annotation, SynthConfig};
use seg::palette::PredictionFormat;
use serde::Serialize;
use tch::Device;
use tracing::info;
use trellis::Architecture;

use crate::retrain::{ModelChoice, RetrainOptions, RetrainOutcome};
use crate::run_config::{RetrainConfig, SearchRunConfig};
use crate::search_run::{SearchOptions, SearchOutcome};

/// The demo's search settings (configs/demo-search.toml, built in).
pub const SEARCH_CONFIG: &str = include_str!("../../../configs/demo-search.toml");
/// The demo's retraining settings (configs/demo-retrain.toml, built in).
pub const RETRAIN_CONFIG: &str = include_str!("../../../configs/demo-retrain.toml");

/// The synthetic data of the demo.
pub fn demo_data() -> SynthConfig {
    SynthConfig { seed: 0, train: 64, val: 16, width: 160, height: 80 }
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
    /// Val mIoU of the per-pixel baseline.
    pub baseline_miou: f64,
    /// Seconds per stage.
    pub seconds: Vec<(String, f64)>,
}

/// Runs the demo into `out` (which must not exist yet) with `overrides` applied to both
/// configs (e.g. `iterations=…` for the retraining).
pub fn run(
    out: &Path,
    device: Device,
    search_overrides: &[String],
    retrain_overrides: &[String],
) -> Result<DemoReport> {
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
    seg::data::generate(&data, &demo_data()).context("generating the synthetic data")?;
    lap("synth", &mut seconds);

    let mut search: SearchRunConfig =
        crate::config::load_text(SEARCH_CONFIG, Path::new("configs/demo-search.toml"), search_overrides)?;
    search.data.root = data.clone();
    let architecture = match crate::search_run::run(SearchOptions {
        config: search,
        out: out.join("search"),
        device,
        resume: false,
        stop_after_steps: None,
    })? {
        SearchOutcome::Finished(architecture) => architecture,
        SearchOutcome::Stopped(checkpoint) => {
            bail!("the search was stopped; resume it with `search run --resume {}`", checkpoint.display())
        }
    };
    lap("search", &mut seconds);
    // Decoding the saved checkpoint gives the same architecture as the search's own decode.
    let checkpoint = out.join("search/checkpoints");
    let latest =
        crate::checkpoint::Checkpoints::new(checkpoint, 1)?.latest()?.context("the search wrote no checkpoint")?;
    let decoded = trellis::decode_file(&latest)?;
    if decoded != architecture {
        bail!("decoding {} gave {decoded:?}, the search ended with {architecture:?}", latest.display());
    }
    info!(cell = %serde_json::to_string(&architecture.cell)?, path = ?architecture.path.levels(), "decoded");

    let mut retrain: RetrainConfig =
        crate::config::load_text(RETRAIN_CONFIG, Path::new("configs/demo-retrain.toml"), retrain_overrides)?;
    retrain.data.root = data.clone();
    let train = |model: ModelChoice, folder: &str, config: &RetrainConfig| -> Result<f64> {
        match crate::retrain::train(RetrainOptions {
            config: config.clone(),
            model,
            out: out.join(folder),
            device,
            resume: false,
            stop_after_steps: None,
        })? {
            RetrainOutcome::Finished { val_miou, .. } => Ok(val_miou),
            RetrainOutcome::Stopped(checkpoint) => bail!("training was stopped at {}", checkpoint.display()),
        }
    };
    train(ModelChoice::Deployed(architecture.clone()), "retrain", &retrain)?;
    lap("retrain", &mut seconds);

    let model = crate::trained::load(
        &crate::trained::ModelArgs { weights: out.join("retrain"), ..Default::default() },
        device,
    )?;
    let val = list_samples(&data, "val", Annotation::Fine)?;
    let forward = |x: &tch::Tensor| model.forward(x);
    let searched_miou =
        crate::evaluate::evaluate(&val, &model.transform, model.window, device, retrain.data.loader.workers, &forward)?
            .scores()
            .miou;
    lap("eval", &mut seconds);

    let predictions = out.join("predictions");
    crate::predict::predict(&model, &data.join("leftImg8bit/val"), &predictions, PredictionFormat::Labelids, device)?;
    let predicted_files_miou = seg::eval::evaluate_folder(&predictions, &data, "val", Annotation::Fine)?.scores.miou;
    crate::predict::predict(
        &model,
        &data.join("leftImg8bit/val"),
        &out.join("overlays"),
        PredictionFormat::Overlay,
        device,
    )?;
    lap("predict", &mut seconds);

    let baseline_miou = train(ModelChoice::PixelBaseline, "baseline", &retrain)?;
    lap("baseline", &mut seconds);
    Ok(DemoReport { out: out.to_owned(), architecture, searched_miou, predicted_files_miou, baseline_miou, seconds })
}
