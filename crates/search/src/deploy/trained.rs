//! Loading a trained network for `search eval` and `search predict`: from a `search train` run
//! folder (architecture, width and transforms come from the run), one of its checkpoints, or a
//! bare safetensors file (then `--arch` and `--filter-multiplier` say what it is).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use seg::data::{DataFormat, TransformConfig};
use seg::ClassTable;
use tch::{nn, Device};

use crate::deploy::model_card::{read_metadata, InputConvention, ModelCard, TrainingData};
use crate::run_config::RetrainConfig;
use crate::store::checkpoint::load_store;
use crate::tasks::retrain::{build_model, ModelChoice, Segmenter};

/// What the command line says about the network.
#[derive(Debug, Clone, Default)]
pub struct ModelArgs {
    /// `--arch FILE|paper`; defaults to the run's `arch.json`.
    pub arch: Option<String>,
    /// `--weights RUN|CHECKPOINT|FILE.safetensors`.
    pub weights: PathBuf,
    pub filter_multiplier: Option<i64>,
    /// `--format`: the data set's layout (default: the run's; Cityscapes).
    pub format: Option<DataFormat>,
    /// `--classes FILE`: the class table (default: the run's; the format's own).
    pub classes: Option<PathBuf>,
    /// Resize factor of the input (default: the run's `data.transform.base_scale`, else 1).
    pub base_scale: Option<f32>,
    /// Sliding window `[height, width]` (default: the run's `data.eval_window`).
    pub window: Option<[u32; 2]>,
    /// Scales of inference (empty or `[1.0]`: single-scale).
    pub scales: Vec<f64>,
    /// Also infer left-right flipped images.
    pub flip: bool,
}

/// A network ready for inference.
pub struct TrainedModel {
    pub model: Box<dyn Segmenter>,
    /// The layout of the data set it was trained on (or `--format`).
    pub format: DataFormat,
    /// Its classes: the output channels' names, colours and stored values.
    pub table: ClassTable,
    /// What it is (architecture, width, classes, input convention, provenance).
    pub card: ModelCard,
    pub store: nn::VarStore,
    pub transform: TransformConfig,
    /// Window, scales and flips of inference.
    pub protocol: crate::deploy::evaluate::Protocol,
}

impl TrainedModel {
    /// Logits of normalised images, without drop path.
    pub fn forward(&self, images: &tch::Tensor) -> tch::Tensor {
        self.model.logits(images, false, 1.0)
    }
}

/// The run folder a weights path belongs to, if any: the folder itself, or the run holding a
/// checkpoint folder.
fn run_folder(weights: &Path) -> Option<PathBuf> {
    [weights.to_owned(), weights.join("../..")].into_iter().find(|p| p.join("config.toml").is_file())
}

/// Loads the network `args` describe onto `device`.
pub fn load(args: &ModelArgs, device: Device) -> Result<TrainedModel> {
    if !args.weights.exists() {
        anyhow::bail!("--weights {}: no such file or folder", args.weights.display());
    }
    let run = if args.weights.is_dir() { run_folder(&args.weights) } else { None };
    if let Some(dir) = &run {
        if dir.join("arch/final.json").is_file() && !dir.join("arch.json").is_file() {
            anyhow::bail!(
                "--weights {} is a search run, not a trained network: retrain its architecture first \
                 (search train --arch {} --config …), then evaluate that run",
                args.weights.display(),
                dir.join("arch/final.json").display()
            );
        }
    }
    let run_config: Option<RetrainConfig> = match &run {
        Some(dir) => {
            Some(crate::config::load(Some(&dir.join("config.toml")), &[]).context("reading the run's config")?)
        }
        None => None,
    };
    let weights_file =
        if args.weights.is_dir() { args.weights.join("weights.safetensors") } else { args.weights.clone() };
    // What the weights say they are (docs/deploy.md), when a retraining wrote them.
    let stored = match weights_file.is_file() {
        true => ModelCard::from_metadata(&read_metadata(&weights_file)?)
            .with_context(|| format!("reading the metadata of {}", weights_file.display()))?,
        false => None,
    };
    let architecture = match (&args.arch, &run, &stored) {
        (Some(spec), _, _) => crate::arch_source::resolve(spec).context("reading --arch")?,
        (None, Some(dir), _) => trellis::Architecture::load(&dir.join("arch.json"))?,
        (None, None, Some(card)) => {
            trellis::Architecture::from_json(&card.architecture.to_string(), "the weights' metadata")?
        }
        (None, None, None) => anyhow::bail!(
            "--weights {} is a file without our metadata: say which network it is with --arch",
            args.weights.display()
        ),
    };
    let mut config = run_config.clone().unwrap_or_default();
    if let Some(f) = args
        .filter_multiplier
        .or(run_config.as_ref().map(|c| c.model.filter_multiplier))
        .or(stored.as_ref().map(|c| c.filter_multiplier))
    {
        config.model.filter_multiplier = f;
    }
    let (format, table) = class_table(args, run_config.as_ref(), stored.as_ref())?;
    config.model.classes = table.len() as i64;
    crate::config::Validate::validate(&config.model).map_err(|e| {
        anyhow::anyhow!("model.{}: {} (--filter-multiplier, --classes, --format or the run's config)", e.key, e.message)
    })?;
    let mut transform = match (&run_config, &stored) {
        (Some(c), _) => c.data.transform.clone(),
        (None, Some(card)) => TransformConfig {
            base_scale: card.input.base_scale,
            mean: card.input.mean,
            std: card.input.std,
            ..Default::default()
        },
        (None, None) => TransformConfig { base_scale: 1.0, ..Default::default() },
    };
    if let Some(s) = args.base_scale {
        transform.base_scale = s;
    }
    transform.validate()?;
    let window = args.window.or(run_config.as_ref().and_then(|c| c.data.eval_window));
    let mut store = nn::VarStore::new(device);
    let model = build_model(&ModelChoice::Deployed(architecture.clone()), &config, &store);
    load_store(&mut store, &weights_file).with_context(|| {
        format!(
            "the weights do not fit the network (filter multiplier {}, {} classes of the `{}` class table)",
            config.model.filter_multiplier, config.model.classes, table.name
        )
    })?;
    let scales = if args.scales.is_empty() { vec![1.0] } else { args.scales.clone() };
    anyhow::ensure!(
        scales.iter().all(|s| s.is_finite() && *s > 0.0),
        "--scales {scales:?}: every scale must be a finite number > 0"
    );
    let protocol = crate::deploy::evaluate::Protocol { window, scales, flip: args.flip };
    let training_data = match &run_config {
        Some(c) => Some(TrainingData {
            format: c.data.format.to_string(),
            root: c.data.root.display().to_string(),
            train_split: c.data.train_split.clone(),
            val_split: c.data.val_split.clone(),
        }),
        None => stored.as_ref().and_then(|c| c.training_data.clone()),
    };
    let card = ModelCard {
        architecture: serde_json::from_str(&architecture.to_json())?,
        filter_multiplier: config.model.filter_multiplier,
        class_table: table.clone(),
        input: InputConvention {
            channels: "RGB".into(),
            base_scale: transform.base_scale,
            mean: transform.mean,
            std: transform.std,
        },
        training_data,
        val_miou: stored.as_ref().and_then(|c| c.val_miou),
        commit: stored.as_ref().map_or_else(|| "unknown (not recorded with the weights)".into(), |c| c.commit.clone()),
        tool_version: stored.as_ref().map_or_else(|| env!("CARGO_PKG_VERSION").into(), |c| c.tool_version.clone()),
    };
    Ok(TrainedModel { model, format, table, card, store, transform, protocol })
}

/// The data set format and class table of a network: `--classes FILE` and `--format` first,
/// then the run's config, then the weights' metadata, then Cityscapes.
pub fn class_table(
    args: &ModelArgs,
    run: Option<&RetrainConfig>,
    stored: Option<&ModelCard>,
) -> Result<(DataFormat, ClassTable)> {
    let stored_format = stored
        .and_then(|c| c.training_data.as_ref())
        .and_then(|d| serde_json::from_value::<DataFormat>(serde_json::Value::String(d.format.clone())).ok());
    let format = args.format.or(run.map(|c| c.data.format)).or(stored_format).unwrap_or_default();
    if let (None, None, None, Some(card)) = (&args.classes, args.format, run, stored) {
        return Ok((format, card.class_table.clone()));
    }
    let table = match (&args.classes, args.format, run) {
        (Some(file), _, _) => ClassTable::load(file).context("reading --classes")?,
        (None, Some(format), _) => format.built_in_table().with_context(|| {
            format!("--format {format} has no built-in class table: name the data set's with --classes FILE.toml")
        })?,
        (None, None, Some(run)) => {
            run.data.class_table().map_err(|e| anyhow::anyhow!("the run's config: {}: {}", e.key, e.message))?
        }
        (None, None, None) => ClassTable::cityscapes(),
    };
    Ok((format, table))
}
