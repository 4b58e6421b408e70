//! Loading a trained network for `search eval` and `search predict`: from a `search train` run
//! folder (architecture, width and transforms come from the run), one of its checkpoints, or a
//! bare safetensors file (then `--arch` and `--filter-multiplier` say what it is).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use seg::data::{DataFormat, TransformConfig};
use seg::ClassTable;
use tch::{nn, Device};

use crate::deploy::model_card::{read_metadata, InputConvention, ModelCard, TrainingData};
use crate::run_config::{RetrainConfig, RetrainModelConfig};
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

/// Where a trained network comes from, resolved once from `--weights`: a retraining's run folder
/// or one of its checkpoint folders (the run's config, read through the config loader, and its
/// `arch.json`), or a bare weights file (what its model card says, or the flags). The weights
/// file carries the model card whenever a retraining wrote it.
pub struct Source {
    /// The safetensors file.
    pub weights: PathBuf,
    /// The run folder and its config, when the weights belong to one.
    pub run: Option<(PathBuf, RetrainConfig)>,
    /// The weights' model card, when a retraining wrote them.
    pub card: Option<ModelCard>,
}

impl Source {
    /// Resolves `weights` (a run folder, a checkpoint folder, or a file).
    pub fn resolve(weights: &Path) -> Result<Source> {
        if !weights.exists() {
            anyhow::bail!("--weights {}: no such file or folder", weights.display());
        }
        let dir = weights
            .is_dir()
            .then(|| [weights.to_owned(), weights.join("../..")].into_iter().find(|p| p.join("config.toml").is_file()));
        let run = match dir.flatten() {
            Some(dir) => {
                if dir.join("arch/final.json").is_file() && !dir.join("arch.json").is_file() {
                    anyhow::bail!(
                        "--weights {} is a search run, not a trained network: retrain its architecture first \
                         (search train --arch {} --config …), then evaluate that run",
                        weights.display(),
                        dir.join("arch/final.json").display()
                    );
                }
                let config = crate::config::load(Some(&dir.join("config.toml")), &[])
                    .with_context(|| format!("reading the run's config {}", dir.join("config.toml").display()))?;
                Some((dir, config))
            }
            None => None,
        };
        let file = if weights.is_dir() { weights.join("weights.safetensors") } else { weights.to_owned() };
        if weights.is_dir() && !file.is_file() {
            let hint = if weights.join("checkpoints").is_dir() {
                format!(
                    "its retraining has not finished: resume it (search train --resume {}), or use one of its \
                     checkpoints (--weights {}/checkpoints/step_…)",
                    weights.display(),
                    weights.display()
                )
            } else {
                "it is not a finished `search train` run or checkpoint".to_owned()
            };
            anyhow::bail!("--weights {} holds no weights.safetensors: {hint}", weights.display());
        }
        let card = match file.is_file() {
            true => ModelCard::from_metadata(&read_metadata(&file)?)
                .with_context(|| format!("reading the metadata of {}", file.display()))?,
            false => None,
        };
        Ok(Source { weights: file, run, card })
    }

    fn config(&self) -> Option<&RetrainConfig> {
        self.run.as_ref().map(|(_, c)| c)
    }

    /// The architecture: `--arch`, else the run's `arch.json`, else the card's.
    fn architecture(&self, flag: Option<&str>) -> Result<trellis::Architecture> {
        match (flag, &self.run, &self.card) {
            (Some(spec), _, _) => crate::arch_source::resolve(spec).context("reading --arch"),
            (None, Some((dir, _)), _) => Ok(trellis::Architecture::load(&dir.join("arch.json"))?),
            (None, None, Some(card)) => Ok(card.architecture.clone()),
            (None, None, None) => anyhow::bail!(
                "--weights {} is a file without our metadata: say which network it is with --arch",
                self.weights.display()
            ),
        }
    }

    /// The network's model config: the run's, else the card's width and stem, else the
    /// defaults; `--filter-multiplier` over all of them; the classes from `table`.
    fn model(&self, args: &ModelArgs, table: &ClassTable) -> Result<RetrainModelConfig> {
        let mut model = match (self.config(), &self.card) {
            (Some(config), _) => config.model.clone(),
            (None, Some(card)) => RetrainModelConfig {
                filter_multiplier: card.filter_multiplier,
                stem_channels: card.stem_channels,
                ..Default::default()
            },
            (None, None) => RetrainModelConfig::default(),
        };
        if let Some(f) = args.filter_multiplier {
            model.filter_multiplier = f;
        }
        model.classes = table.len() as i64;
        crate::config::Validate::validate(&model).map_err(|e| {
            anyhow::anyhow!(
                "model.{}: {} (--filter-multiplier, --classes, --format or the run's config)",
                e.key,
                e.message
            )
        })?;
        Ok(model)
    }

    /// The input transform: the run's, else the card's convention; `--base-scale` over both.
    fn transform(&self, args: &ModelArgs) -> Result<TransformConfig> {
        let mut transform = match (self.config(), &self.card) {
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
        Ok(transform)
    }

    /// Where the network was trained: the run's data, else the card's.
    fn training_data(&self) -> Option<TrainingData> {
        match self.config() {
            Some(c) => Some(TrainingData {
                format: c.data.format.to_string(),
                root: c.data.root.display().to_string(),
                train_split: c.data.train_split.clone(),
                val_split: c.data.val_split.clone(),
            }),
            None => self.card.as_ref().and_then(|c| c.training_data.clone()),
        }
    }
}

/// Loads the network `args` describe onto `device`.
pub fn load(args: &ModelArgs, device: Device) -> Result<TrainedModel> {
    let source = Source::resolve(&args.weights)?;
    let architecture = source.architecture(args.arch.as_deref())?;
    let (format, table) = class_table(args, source.config(), source.card.as_ref())?;
    let config = RetrainConfig { model: source.model(args, &table)?, ..source.config().cloned().unwrap_or_default() };
    let transform = source.transform(args)?;
    let window = args.window.or(source.config().and_then(|c| c.data.eval_window));
    let mut store = nn::VarStore::new(device);
    let model = build_model(&ModelChoice::Deployed(architecture.clone()), &config, &store);
    load_store(&mut store, &source.weights).with_context(|| {
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
    let stored = source.card.as_ref();
    let card = ModelCard {
        architecture,
        filter_multiplier: config.model.filter_multiplier,
        stem_channels: config.model.stem_channels,
        class_table: table.clone(),
        input: InputConvention {
            channels: "RGB".into(),
            base_scale: transform.base_scale,
            mean: transform.mean,
            std: transform.std,
        },
        training_data: source.training_data(),
        val_miou: stored.and_then(|c| c.val_miou),
        commit: stored.map_or_else(|| "unknown (not recorded with the weights)".into(), |c| c.commit.clone()),
        tool_version: stored.map_or_else(|| env!("CARGO_PKG_VERSION").into(), |c| c.tool_version.clone()),
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
        (None, Some(format), _) if format.built_in_table().is_some() => format.built_in_table().expect("built in"),
        // A format without a built-in table (folder): the table the network was trained with,
        // when it was trained on this format.
        (None, Some(format), run) => {
            let trained = match (run, stored) {
                (Some(run), _) if run.data.format == format => Some(
                    run.data
                        .class_table()
                        .map_err(|e| anyhow::anyhow!("the run's config: {}: {}", e.key, e.message))?,
                ),
                (None, Some(card)) if stored_format == Some(format) => Some(card.class_table.clone()),
                _ => None,
            };
            trained.with_context(|| {
                format!(
                    "--format {format} has no built-in class table and the network was not trained on this format: \
                     name the data set's with --classes FILE.toml"
                )
            })?
        }
        (None, None, Some(run)) => {
            run.data.class_table().map_err(|e| anyhow::anyhow!("the run's config: {}: {}", e.key, e.message))?
        }
        (None, None, None) => ClassTable::cityscapes(),
    };
    Ok((format, table))
}
