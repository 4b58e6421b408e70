//! The configurations of `search run` (the bilevel search, paper §4.2) and `search train` (the
//! retraining, §5.2), in layers as in mmsegmentation: data, model (what is searched or
//! trained), execution (how it runs: never a result or a file format), schedule, optimisers,
//! checkpoints. Every struct rejects unknown keys, defaults what a file leaves out and
//! validates its values on load ([`Validate`]); the defaults are the paper's settings (see
//! configs/cityscapes-*.toml).

use crate::train::precision::AutocastDtype;
use std::path::{Path, PathBuf};

use seg::data::{DataFormat, Dataset, LoaderConfig, TransformConfig};
use seg::ClassTable;
use serde::{Deserialize, Serialize};
use trellis::{Execution, SearchNetworkConfig};

use crate::config::{Invalid, Validate};
use crate::train::optim::{AdamConfig, SgdConfig};

/// `Err` naming `key` unless `value` is finite and in `[low, high)` (`high` open) or
/// `[low, high]` (`high_closed`).
fn check_range(value: f64, key: &str, low: f64, high: f64, high_closed: bool) -> Result<(), Invalid> {
    let ok = value.is_finite() && value >= low && if high_closed { value <= high } else { value < high };
    let bracket = if high_closed { "]" } else { ")" };
    check(ok, key, || format!("must be a finite number in [{low}, {high}{bracket}, got {value}"))
}

/// `Err` naming `key` unless `value` is finite and positive.
fn check_positive(value: f64, key: &str) -> Result<(), Invalid> {
    check(value.is_finite() && value > 0.0, key, || format!("must be a finite number > 0, got {value}"))
}

/// `Err` naming `key` unless `value` is finite and at least 0 (0: off, for clipping and decay).
fn check_non_negative(value: f64, key: &str) -> Result<(), Invalid> {
    check(value.is_finite() && value >= 0.0, key, || format!("must be a finite number >= 0, got {value}"))
}

/// The settings every SGD in a config shares.
fn check_sgd(momentum: f64, weight_decay: f64, grad_clip: f64, prefix: &str) -> Result<(), Invalid> {
    check_range(momentum, &format!("{prefix}momentum"), 0.0, 1.0, false)?;
    check_non_negative(weight_decay, &format!("{prefix}weight_decay"))?;
    check_non_negative(grad_clip, &format!("{prefix}grad_clip"))
}

/// A run's `name` is one folder inside `runs/`: not empty, no `/` or `\\`, not `.` or `..`,
/// not absolute, so that a run never writes outside the runs folder.
fn check_run_name(name: &str) -> Result<(), Invalid> {
    let path = std::path::Path::new(name);
    let single =
        path.components().count() == 1 && matches!(path.components().next(), Some(std::path::Component::Normal(_)));
    check(single && !name.contains(['/', '\\']) && !name.starts_with('.'), "name", || {
        format!("{name:?} is not a folder name: a run's name is one folder inside runs/ (letters, digits, - and _; no /, .. or absolute path)")
    })
}

/// `Err` naming `key` unless `ok`.
fn check(ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(key, message()))
    }
}

/// Where the data is and how it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Layout of the data set: `cityscapes`, `folder`, `voc` or `ade20k` (datasets/README.md).
    pub format: DataFormat,
    /// Data set root; `--data` overrides it.
    pub root: PathBuf,
    /// The class table: a TOML file (relative to the working folder) or the table inline.
    /// Default: the format's own (Cityscapes, VOC, ADE20K); for `folder`, `<root>/classes.toml`.
    /// A run records it inline, so that its folder is complete without the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassesSpec>,
    /// Split to train on (the search halves it into trainA and trainB).
    pub train_split: String,
    /// Split to evaluate on.
    pub val_split: String,
    /// Training transforms; evaluation uses only `base_scale` and the normalisation.
    pub transform: TransformConfig,
    /// Batches and workers.
    pub loader: LoaderConfig,
    /// Evaluate whole images (None) or with a sliding window of `[height, width]` on the
    /// resized image, written `eval_window = "WIDTHxHEIGHT"`.
    #[serde(with = "seg::size::wxh_option", skip_serializing_if = "Option::is_none")]
    pub eval_window: Option<[u32; 2]>,
    /// Where the class table came from, in words (set when the config is resolved; for
    /// `search config show` and the run's log).
    #[serde(skip)]
    pub table_source: Option<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            format: DataFormat::Cityscapes,
            classes: None,
            root: PathBuf::from("datasets/cityscapes"),
            train_split: "train".into(),
            val_split: "val".into(),
            transform: TransformConfig::default(),
            loader: LoaderConfig::default(),
            eval_window: None,
            table_source: None,
        }
    }
}

/// `data.classes`: a class table file, or the table itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ClassesSpec {
    File(PathBuf),
    Table(ClassTable),
}

impl<'de> Deserialize<'de> for ClassesSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(deserializer)? {
            toml::Value::String(path) => Ok(ClassesSpec::File(path.into())),
            table @ toml::Value::Table(_) => {
                ClassTable::deserialize(table).map(ClassesSpec::Table).map_err(D::Error::custom)
            }
            other => Err(D::Error::custom(format!("expected a file name or a class table, got {other}"))),
        }
    }
}

/// The class table `classes` names, else the built-in table of `format`, else (folder)
/// `<root>/classes.toml`; errors name `data.classes`.
pub fn resolve_table(format: DataFormat, classes: Option<&ClassesSpec>, root: &Path) -> Result<ClassTable, Invalid> {
    let invalid = |message: String| Invalid::new("classes", message);
    let beside = root.join("classes.toml");
    if let (Some(spec), true) = (classes, beside.is_file()) {
        // The data set's own table and the config's must agree: the config's would otherwise win
        // silently (and with index labels, train under the wrong names).
        let own = ClassTable::load(&beside).map_err(|e| invalid(e.to_string()))?;
        let (theirs, origin) = match spec {
            ClassesSpec::Table(table) => (table.clone(), "the config's inline [data.classes] table".to_owned()),
            ClassesSpec::File(path) => (
                ClassTable::load(path).map_err(|e| invalid(e.to_string()))?,
                format!("data.classes = {}", path.display()),
            ),
        };
        let same =
            own.classes == theirs.classes && own.ignore == theirs.ignore && own.ignore_colors == theirs.ignore_colors;
        if !same {
            let names = |t: &ClassTable| t.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
            return Err(invalid(format!(
                "{origin} (`{}`: {}) disagrees with the data set's own {} (`{}`: {}); remove data.classes from the \
                 config to use the data set's table, or make them equal",
                theirs.name,
                names(&theirs),
                beside.display(),
                own.name,
                names(&own)
            )));
        }
    }
    match classes {
        Some(ClassesSpec::Table(table)) => {
            table.validate().map_err(|e| invalid(e.to_string()))?;
            Ok(table.clone())
        }
        Some(ClassesSpec::File(path)) => ClassTable::load(path).map_err(|e| invalid(e.to_string())),
        None => match format.built_in_table() {
            Some(table) => Ok(table),
            None => {
                if beside.is_file() {
                    ClassTable::load(&beside).map_err(|e| invalid(e.to_string()))
                } else {
                    Err(invalid(format!(
                        "data.format = \"{format}\" needs a class table: put classes.toml in the data root ({} has \
                         none), or set data.classes = \"FILE.toml\" (see datasets/README.md)",
                        root.display()
                    )))
                }
            }
        },
    }
}

impl DataConfig {
    /// The class table (see [`DataConfig::classes`]).
    pub fn class_table(&self) -> Result<ClassTable, Invalid> {
        resolve_table(self.format, self.classes.as_ref(), &self.root).map_err(|e| e.within("data"))
    }

    /// The data set this config reads.
    pub fn dataset(&self) -> Result<Dataset, Invalid> {
        Ok(Dataset::new(self.format, self.root.clone(), self.class_table()?))
    }

    /// Reads the class table once and records it inline unless it is the format's built-in
    /// one; returns its class count.
    fn resolve_classes(&mut self) -> Result<usize, Invalid> {
        let table = self.class_table()?;
        let source = match &self.classes {
            Some(ClassesSpec::File(path)) => format!("the file {} (data.classes)", path.display()),
            Some(ClassesSpec::Table(_)) => "the config's inline [data.classes] table".to_owned(),
            None if self.format.built_in_table().is_some() => {
                format!("the built-in table of data.format = \"{}\"", self.format)
            }
            None => format!("the data set's own {}", self.root.join("classes.toml").display()),
        };
        self.table_source = Some(format!("`{}`, {} classes, from {source}", table.name, table.len()));
        if self.format.built_in_table().as_ref() != Some(&table) {
            self.classes = Some(ClassesSpec::Table(table.clone()));
        }
        Ok(table.len())
    }

    /// Where the table comes from, in words (for errors).
    fn table_origin(&self) -> String {
        match &self.classes {
            Some(ClassesSpec::File(path)) => format!("data.classes = {}", path.display()),
            Some(ClassesSpec::Table(t)) => format!("data.classes (table `{}`)", t.name),
            None => format!("data.format = \"{}\"", self.format),
        }
    }
}

/// Sets `classes` (the model's output count) from the class table of `data`; a config that
/// names `model.classes` itself (`explicit` is the merged TOML) must agree with the table.
fn follow_table(data: &mut DataConfig, classes: &mut i64, explicit: &toml::Table) -> Result<(), Invalid> {
    let origin = data.table_origin();
    let n = data.resolve_classes()? as i64;
    let set = explicit.get("model").and_then(|m| m.get("classes")).and_then(|c| c.as_integer());
    if let Some(c) = set.filter(|&c| c != n) {
        return Err(Invalid::new(
            "model.classes",
            format!("is {c}, but the class table of {origin} has {n} classes: leave model.classes out, it follows the table"),
        ));
    }
    *classes = n;
    Ok(())
}

impl Validate for DataConfig {
    fn validate(&self) -> Result<(), Invalid> {
        self.transform.validate().map_err(|e| match e {
            seg::data::TransformError::Invalid { key, message } => Invalid::new(format!("transform.{key}"), message),
        })?;
        let l = &self.loader;
        check(l.batch >= 1, "loader.batch", || format!("must be at least 1, got {}", l.batch))?;
        check(l.workers >= 1, "loader.workers", || format!("must be at least 1, got {}", l.workers))?;
        check(l.prefetch >= 1, "loader.prefetch", || format!("must be at least 1, got {}", l.prefetch))?;
        if let Some(window) = self.eval_window {
            check(window.iter().all(|&c| c >= 1), "eval_window", || format!("must be at least 1, got {window:?}"))?;
        }
        crate::limits::check_data(self.transform.crop, l.batch, l.workers, l.prefetch)
    }
}

/// Checkpointing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Save every this many steps (0: only at the end of each epoch / evaluation).
    pub every_steps: usize,
    /// Keep this many most recent checkpoints (the best one is kept as well).
    pub keep_last: usize,
    /// Which weights a retraining ends with in `weights.safetensors`: the last ones, or those of
    /// its best evaluation (the run says which). The search always ends with its last α and β.
    #[serde(rename = "final")]
    pub final_weights: FinalWeights,
}

/// See [`CheckpointConfig::final_weights`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalWeights {
    #[default]
    Last,
    Best,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig { every_steps: 500, keep_last: 3, final_weights: FinalWeights::Last }
    }
}

/// The weights' optimiser in the search: SGD with a cosine schedule per epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightOptimConfig {
    pub lr_max: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Clip the weights' gradient norm to this (as DARTS); 0 disables.
    pub grad_clip: f64,
}

impl Default for WeightOptimConfig {
    fn default() -> Self {
        // Paper §4.2: cosine 0.025 -> 0.001, momentum 0.9, weight decay 3e-4.
        WeightOptimConfig { lr_max: 0.025, lr_min: 0.001, momentum: 0.9, weight_decay: 3e-4, grad_clip: 5.0 }
    }
}

impl WeightOptimConfig {
    /// The SGD settings.
    pub fn sgd(&self) -> SgdConfig {
        SgdConfig { momentum: self.momentum, weight_decay: self.weight_decay }
    }
}

/// `[arch]`: α and β's optimiser (Adam, paper §4.2) and what their loss adds to the
/// segmentation loss: a cost term (`[arch.cost]`, docs/cost-aware.md) and the stabilisers
/// (`[arch.beta_decay]`, `[arch.aux_skip]`). Without those tables the architecture loss is the
/// paper's. `order` picks the architecture gradient (`crate::train::architect`): 1, first-order
/// DARTS (the default, as the paper's search), or 2, DARTS' one-step unrolled gradient with
/// virtual learning rate `unrolled_lr` (ξ; unset: the weights' current learning rate) and the
/// Hessian-vector product's finite-difference step ε = `hessian_step` / ‖∇w′ L_val‖ (DARTS' 0.01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchConfig {
    pub order: crate::train::architect::Order,
    pub unrolled_lr: Option<f64>,
    pub hessian_step: f64,
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub cost: Option<CostConfig>,
    pub beta_decay: Option<BetaDecayConfig>,
    pub aux_skip: Option<AuxSkipConfig>,
    pub temperature: Option<TemperatureConfig>,
    pub progressive: Option<ProgressiveConfig>,
    /// The fewest architecture steps a search may have (`crate::tasks::search_budget`); fewer
    /// are refused before the run starts.
    pub min_steps: usize,
}

impl Default for ArchConfig {
    fn default() -> Self {
        let adam = AdamConfig::default();
        ArchConfig {
            order: crate::train::architect::Order::First,
            unrolled_lr: None,
            hessian_step: crate::train::architect::DARTS_HESSIAN_STEP,
            lr: adam.lr,
            betas: adam.betas,
            eps: adam.eps,
            weight_decay: adam.weight_decay,
            cost: None,
            beta_decay: None,
            aux_skip: None,
            temperature: None,
            progressive: None,
            min_steps: 40,
        }
    }
}

impl ArchConfig {
    /// The optimiser's settings.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig { lr: self.lr, betas: self.betas, eps: self.eps, weight_decay: self.weight_decay }
    }
}

/// `[arch.cost]`: the architecture loss gains `weight * E[cost] / target`, the expected cost of
/// the deployable network at `height x width` and filter multiplier `filter_multiplier` under
/// (α, β) (`trellis::cost`). With `adapt`, after every epoch with architecture steps the weight
/// is multiplied by `factor` when the decoded network costs more than `target * (1 + band)`,
/// divided by it when it costs less than `target * (1 - band)` (FasterSeg's rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// `macs`, `params` or `latency` (which needs `table`).
    pub kind: trellis::CostKind,
    /// The budget, in the kind's unit (multiply-adds, parameters, ms).
    pub target: f64,
    #[serde(default = "CostConfig::default_weight")]
    pub weight: f64,
    #[serde(default)]
    pub adapt: bool,
    #[serde(default = "CostConfig::default_band")]
    pub band: f64,
    #[serde(default = "CostConfig::default_factor")]
    pub factor: f64,
    /// The deployment: input size and filter multiplier of the retrained network.
    #[serde(default = "CostConfig::default_height")]
    pub height: i64,
    #[serde(default = "CostConfig::default_width")]
    pub width: i64,
    #[serde(default = "CostConfig::default_filter_multiplier")]
    pub filter_multiplier: i64,
    /// The deployed network's stem channels (the retraining config's `model.stem_channels`).
    #[serde(default = "trellis::network::paper_stem_channels")]
    pub stem_channels: [i64; 3],
    /// A latency table written by `search cost-table` (required for `latency`).
    #[serde(default)]
    pub table: Option<PathBuf>,
}

impl CostConfig {
    fn default_weight() -> f64 {
        0.1
    }
    fn default_band() -> f64 {
        0.1
    }
    fn default_factor() -> f64 {
        1.5
    }
    fn default_height() -> i64 {
        1024
    }
    fn default_width() -> i64 {
        2048
    }
    fn default_filter_multiplier() -> i64 {
        20
    }

    fn validate(&self) -> Result<(), Invalid> {
        check_positive(self.target, "target")?;
        check_non_negative(self.weight, "weight")?;
        check_range(self.band, "band", 0.0, 1.0, false)?;
        check(self.factor.is_finite() && self.factor > 1.0, "factor", || {
            format!("must be a finite number > 1, got {}", self.factor)
        })?;
        for (key, value) in [("height", self.height), ("width", self.width)] {
            check((16..=8192).contains(&value), key, || format!("must be in 16..=8192, got {value}"))?;
        }
        check(self.filter_multiplier >= 1, "filter_multiplier", || {
            format!("must be at least 1, got {}", self.filter_multiplier)
        })?;
        check(self.kind != trellis::CostKind::Latency || self.table.is_some(), "table", || {
            "kind = \"latency\" needs a latency table (write one with `search cost-table`)".into()
        })
    }
}

/// How a stabiliser's coefficient moves over the search, with t the fraction of the search's
/// steps done (0 at the first step, 1 after the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The configured value throughout.
    Constant,
    /// β-decay: value * t (rises from 0); auxiliary skip: value * (1 - t) (falls to 0).
    Linear,
    /// β-decay: value * (1 - cos(πt)) / 2; auxiliary skip: value * (1 + cos(πt)) / 2.
    Cosine,
}

impl Schedule {
    /// The schedule's factor at progress `t` in [0, 1], rising (from 0 to 1) or falling (1 to 0).
    pub fn factor(self, t: f64, rising: bool) -> f64 {
        let t = t.clamp(0.0, 1.0);
        let falling = match self {
            Schedule::Constant => return 1.0,
            Schedule::Linear => 1.0 - t,
            Schedule::Cosine => (1.0 + (std::f64::consts::PI * t).cos()) / 2.0,
        };
        if rising {
            1.0 - falling
        } else {
            falling
        }
    }
}

/// `[arch.beta_decay]`: β-DARTS's Beta-Decay regulariser (Ye et al., CVPR 2022) on α: the
/// architecture loss gains `weight(t) * mean over edges of logsumexp(α_e)`, which keeps the
/// softmax of α from saturating early; `weight(t)` rises by `schedule` (default linear).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetaDecayConfig {
    pub weight: f64,
    #[serde(default = "BetaDecayConfig::default_schedule")]
    pub schedule: Schedule,
}

impl BetaDecayConfig {
    fn default_schedule() -> Schedule {
        Schedule::Linear
    }
}

/// `[arch.aux_skip]`: DARTS-'s auxiliary skip connection (Chu et al., ICLR 2021): every cell
/// edge adds `coefficient(t) * x` to its mixed op's output, outside α, so that `skip_connect`
/// loses its unfair advantage; `coefficient(t)` falls from `start` by `schedule` (default
/// linear, to 0 at the end of the search).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxSkipConfig {
    #[serde(default = "AuxSkipConfig::default_start")]
    pub start: f64,
    #[serde(default = "BetaDecayConfig::default_schedule")]
    pub schedule: Schedule,
}

impl AuxSkipConfig {
    fn default_start() -> f64 {
        1.0
    }
}

/// `[arch.temperature]`: the softmax over α's ops and β's moves is taken at temperature τ,
/// falling from `start` to `end` by `schedule` (default linear) over the steps that update α and
/// β (SNAS / GDAS-style annealing): the supernet trains on ever sharper mixtures, closer to the
/// one network decoding keeps. Decoding, entropies and margins read the logits at τ = 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureConfig {
    #[serde(default = "TemperatureConfig::default_start")]
    pub start: f64,
    pub end: f64,
    #[serde(default = "BetaDecayConfig::default_schedule")]
    pub schedule: Schedule,
}

impl TemperatureConfig {
    fn default_start() -> f64 {
        1.0
    }

    /// τ at fraction `t` of the architecture phase.
    pub fn at(&self, t: f64) -> f64 {
        self.end + (self.start - self.end) * self.schedule.factor(t, false)
    }
}

/// `[arch.progressive]`: SGAS-style progressive decisions (`trellis::progressive`): at the end of
/// the `after_epochs`-th epoch that updates α and β, and every `every_epochs` epochs after it,
/// the most certain undecided block of the cell is fixed to its decoding — but only when its
/// block margin is at least `min_margin`. A decision too close to call is deferred: the search
/// tries again at the end of every later epoch, and catches up with the schedule (several blocks
/// at one epoch's end) as soon as blocks clear the margin. A block still undecided when the
/// search ends is decoded like any other, by its argmax. With `path`, the same schedule fixes the
/// network path one layer at a time from the stem, by the path's margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressiveConfig {
    #[serde(default = "ProgressiveConfig::one")]
    pub every_epochs: usize,
    #[serde(default = "ProgressiveConfig::one")]
    pub after_epochs: usize,
    /// The smallest block margin (`cell::Genotype::block_margin`) a block is fixed at; the
    /// default is the tool's near-tie margin, `cell::genotype::NEAR_TIE_MARGIN` (0.01), so a
    /// search never fixes a block by a near tie. 0 decides on schedule whatever the margin.
    #[serde(default = "ProgressiveConfig::near_tie")]
    pub min_margin: f64,
    /// Decide the network path too (`trellis::progressive::decide_path_due`): on the same
    /// schedule, one layer per decision from the stem on, each when the path's margin there
    /// (`trellis::viterbi::path_margins`) is at least `min_margin`. Off by default.
    #[serde(default)]
    pub path: bool,
}

impl ProgressiveConfig {
    fn one() -> usize {
        1
    }

    fn near_tie() -> f64 {
        cell::genotype::NEAR_TIE_MARGIN
    }

    /// How many blocks the schedule has decided by the end of `epoch` (at most `blocks`), for a
    /// search whose architecture steps begin at epoch `arch_start`: 0 before the
    /// `after_epochs`-th epoch with architecture steps, one more every `every_epochs` epochs
    /// from it.
    pub fn due_after(&self, epoch: usize, arch_start: usize, blocks: usize) -> usize {
        let done = (epoch + 1).saturating_sub(arch_start);
        if done < self.after_epochs {
            return 0;
        }
        (1 + (done - self.after_epochs) / self.every_epochs).min(blocks)
    }
}

/// `search run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchRunConfig {
    /// Run name: the run folder is `runs/<name>` unless `--out` says otherwise.
    pub name: String,
    pub seed: u64,
    pub data: DataConfig,
    pub model: SearchNetworkConfig,
    /// Epochs over trainA.
    pub epochs: usize,
    /// First epoch (0-based) with architecture updates; the paper starts at epoch 20 of 40.
    pub arch_start_epoch: usize,
    /// Cap on steps per epoch (None: all of trainA).
    pub steps_per_epoch: Option<usize>,
    /// Size the search from the data set instead (`crate::tasks::search_budget`): this many
    /// steps in all, epochs of one pass over trainA (at most a tenth of the steps), and
    /// `warmup_fraction` of the epochs weight-only; `epochs`, `arch_start_epoch` and
    /// `steps_per_epoch` are then ignored.
    pub budget_steps: Option<usize>,
    /// With `budget_steps`: the fraction of epochs that train the weights alone.
    pub warmup_fraction: f64,
    pub weights: WeightOptimConfig,
    pub arch: ArchConfig,
    /// How the search runs (never what it computes).
    pub execution: Execution,
    /// Evaluate the search network on the val split every this many epochs (0: never).
    pub eval_every_epochs: usize,
    /// Log a metrics line every this many steps.
    pub log_every_steps: usize,
    /// Also write the metrics as TensorBoard scalars into `<run>/tensorboard/`.
    pub tensorboard: bool,
    pub checkpoint: CheckpointConfig,
    /// Autocast for the weights' forward pass on CUDA (α and β stay fp32;
    /// `search::train::precision`).
    pub autocast: bool,
    /// The dtype of autocast: `float16` (with loss scaling) or `bfloat16`.
    pub autocast_dtype: AutocastDtype,
    /// In a distributed run, batch norm normalises with the statistics of every rank's batch
    /// together (synchronised, as torch.nn.SyncBatchNorm) instead of each rank's own (as DDP
    /// does by default). It changes what is computed, so it is a key of the run, not of
    /// `[execution]`; no effect in one process.
    pub sync_bn: bool,
}

impl Default for SearchRunConfig {
    fn default() -> Self {
        SearchRunConfig {
            name: "search".into(),
            seed: 0,
            data: DataConfig::default(),
            model: SearchNetworkConfig::default(),
            epochs: 40,
            arch_start_epoch: 20,
            steps_per_epoch: None,
            budget_steps: None,
            warmup_fraction: 0.4,
            weights: WeightOptimConfig::default(),
            arch: ArchConfig::default(),
            execution: Execution::default(),
            eval_every_epochs: 1,
            log_every_steps: 20,
            tensorboard: false,
            checkpoint: CheckpointConfig::default(),
            autocast: false,
            autocast_dtype: AutocastDtype::default(),
            sync_bn: false,
        }
    }
}

impl Validate for SearchRunConfig {
    fn resolve(&mut self, explicit: &toml::Table) -> Result<(), Invalid> {
        follow_table(&mut self.data, &mut self.model.classes, explicit)
    }

    fn validate(&self) -> Result<(), Invalid> {
        self.data.validate().map_err(|e| e.within("data"))?;
        self.model.validate().map_err(|e| Invalid::from(e).within("model"))?;
        let m = &self.model;
        crate::limits::check_model(m.layers, m.blocks, m.filter_multiplier, m.classes)
            .map_err(|e| e.within("model"))?;
        check_run_name(&self.name)?;
        self.execution.validate().map_err(|e| Invalid::from(e).within("execution"))?;
        check(self.epochs >= 1, "epochs", || "must be at least 1".into())?;
        check(self.arch_start_epoch < self.epochs, "arch_start_epoch", || {
            format!(
                "{} but `epochs` = {}: no epoch would update α and β (epochs are 0-based)",
                self.arch_start_epoch, self.epochs
            )
        })?;
        check(self.steps_per_epoch != Some(0), "steps_per_epoch", || "must be at least 1 when set".into())?;
        check(self.budget_steps.is_none_or(|b| b >= 2), "budget_steps", || "must be at least 2 when set".into())?;
        check_range(self.warmup_fraction, "warmup_fraction", 0.0, 1.0, false)?;
        let w = &self.weights;
        check_positive(w.lr_max, "weights.lr_max")?;
        check_range(w.lr_min, "weights.lr_min", 0.0, w.lr_max, true)?;
        check_sgd(w.momentum, w.weight_decay, w.grad_clip, "weights.")?;
        let a = &self.arch;
        check_positive(a.lr, "arch.lr")?;
        if let Some(xi) = a.unrolled_lr {
            check_positive(xi, "arch.unrolled_lr")?;
        }
        check_positive(a.hessian_step, "arch.hessian_step")?;
        check_positive(a.eps, "arch.eps")?;
        check_non_negative(a.weight_decay, "arch.weight_decay")?;
        for beta in a.betas {
            check_range(beta, "arch.betas", 0.0, 1.0, false)?;
        }
        if let Some(cost) = &a.cost {
            cost.validate().map_err(|e| e.within("arch.cost"))?;
        }
        if let Some(decay) = &a.beta_decay {
            check_non_negative(decay.weight, "arch.beta_decay.weight")?;
        }
        if let Some(skip) = &a.aux_skip {
            check_non_negative(skip.start, "arch.aux_skip.start")?;
        }
        if let Some(t) = &a.temperature {
            check_positive(t.start, "arch.temperature.start")?;
            check_positive(t.end, "arch.temperature.end")?;
        }
        if let Some(p) = &a.progressive {
            check(p.every_epochs >= 1, "arch.progressive.every_epochs", || "must be at least 1".into())?;
            check(p.after_epochs >= 1, "arch.progressive.after_epochs", || "must be at least 1".into())?;
            check(
                p.min_margin.is_finite() && (0.0..1.0).contains(&p.min_margin),
                "arch.progressive.min_margin",
                || {
                    format!(
                        "{} must be at least 0 and below 1 (a block margin is a difference of softmax weights)",
                        p.min_margin
                    )
                },
            )?;
        }
        check(self.checkpoint.keep_last >= 1, "checkpoint.keep_last", || "must be at least 1".into())?;
        check(self.checkpoint.final_weights == FinalWeights::Last, "checkpoint.final", || {
            "\"best\" applies to retraining; a search ends with its last α and β".into()
        })?;
        Ok(())
    }
}

/// The model of `search train`: the decoded network's width and classes, and optionally the
/// L and B the architecture file must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainModelConfig {
    /// Filter multiplier F (20 / 32 / 48 for S / M / L).
    pub filter_multiplier: i64,
    /// Output classes: the class table's count (a config that sets it must agree).
    pub classes: i64,
    /// Layers the architecture must have (checked before training when set).
    pub layers: Option<usize>,
    /// Blocks the architecture's cell must have (checked before training when set).
    pub blocks: Option<usize>,
    /// Keep probability of scheduled drop path at the end of training (1: off).
    pub drop_path_keep_prob: f64,
    /// Channels of the three stem convolutions (the paper's 64, 64, 128).
    pub stem_channels: [i64; 3],
}

impl Default for RetrainModelConfig {
    fn default() -> Self {
        RetrainModelConfig {
            filter_multiplier: 20,
            classes: 19,
            layers: None,
            blocks: None,
            drop_path_keep_prob: 1.0,
            stem_channels: trellis::PAPER_STEM_CHANNELS,
        }
    }
}

/// `search train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    pub name: String,
    pub seed: u64,
    pub data: DataConfig,
    pub model: RetrainModelConfig,
    /// Training iterations (batches).
    pub iterations: usize,
    /// Base learning rate of the poly schedule.
    pub lr: f64,
    /// Power of the poly schedule.
    pub lr_power: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Clip the weights' gradient norm to this, as the search does; 0 disables.
    pub grad_clip: f64,
    /// Evaluate on the val split every this many iterations (0: only at the end).
    pub eval_every: usize,
    pub log_every_steps: usize,
    /// Also write the metrics as TensorBoard scalars into `<run>/tensorboard/`.
    pub tensorboard: bool,
    pub checkpoint: CheckpointConfig,
    /// Autocast for the forward pass on CUDA (`search::train::precision`).
    pub autocast: bool,
    /// The dtype of autocast: `float16` (with loss scaling) or `bfloat16`.
    pub autocast_dtype: AutocastDtype,
    /// Synchronised batch norm across the ranks of a distributed run (see `SearchRunConfig`).
    pub sync_bn: bool,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            name: "retrain".into(),
            seed: 0,
            data: DataConfig::default(),
            model: RetrainModelConfig::default(),
            iterations: 1_500_000,
            lr: 0.05,
            lr_power: 0.9,
            momentum: 0.9,
            weight_decay: 4e-5,
            grad_clip: 5.0,
            eval_every: 50_000,
            log_every_steps: 100,
            tensorboard: false,
            checkpoint: CheckpointConfig { every_steps: 10_000, keep_last: 3, final_weights: FinalWeights::Last },
            autocast: false,
            autocast_dtype: AutocastDtype::default(),
            sync_bn: false,
        }
    }
}

impl RetrainConfig {
    /// The SGD settings.
    pub fn sgd(&self) -> SgdConfig {
        SgdConfig { momentum: self.momentum, weight_decay: self.weight_decay }
    }
}

impl Validate for RetrainConfig {
    fn resolve(&mut self, explicit: &toml::Table) -> Result<(), Invalid> {
        follow_table(&mut self.data, &mut self.model.classes, explicit)
    }

    fn validate(&self) -> Result<(), Invalid> {
        self.data.validate().map_err(|e| e.within("data"))?;
        self.model.validate().map_err(|e| e.within("model"))?;
        check_run_name(&self.name)?;
        check(self.iterations >= 1, "iterations", || "must be at least 1".into())?;
        check_positive(self.lr, "lr")?;
        check_positive(self.lr_power, "lr_power")?;
        check_sgd(self.momentum, self.weight_decay, self.grad_clip, "")?;
        check(self.checkpoint.keep_last >= 1, "checkpoint.keep_last", || "must be at least 1".into())?;
        Ok(())
    }
}

impl Validate for RetrainModelConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let m = self;
        check(m.filter_multiplier >= 1, "filter_multiplier", || {
            format!("must be at least 1, got {}", m.filter_multiplier)
        })?;
        check(m.classes >= 2, "classes", || format!("must be at least 2, got {}", m.classes))?;
        check(m.layers != Some(0), "layers", || "must be at least 1 when set".into())?;
        check(m.blocks != Some(0), "blocks", || "must be at least 1 when set".into())?;
        check(m.drop_path_keep_prob > 0.0 && m.drop_path_keep_prob <= 1.0, "drop_path_keep_prob", || {
            format!("must be in (0, 1], got {}", m.drop_path_keep_prob)
        })?;
        check(m.stem_channels.iter().all(|&c| c >= 1), "stem_channels", || {
            format!("every entry must be at least 1, got {:?}", m.stem_channels)
        })?;
        crate::limits::check_model(m.layers.unwrap_or(1), m.blocks.unwrap_or(1), m.filter_multiplier, m.classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schedule: nothing before the `after_epochs`-th epoch with architecture steps, one
    /// block more every `every_epochs` epochs from it, never more than the cell has.
    #[test]
    fn progressive_decisions_fall_due_on_schedule() {
        let p = ProgressiveConfig { every_epochs: 2, after_epochs: 3, min_margin: 0.01, path: false };
        // Architecture steps from epoch 4: the third such epoch is epoch 6.
        let due: Vec<usize> = (0..16).map(|e| p.due_after(e, 4, 5)).collect();
        assert_eq!(due, [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(p.due_after(40, 4, 5), 5, "at most the cell's blocks");
        let every = ProgressiveConfig { every_epochs: 1, after_epochs: 1, min_margin: 0.0, path: false };
        assert_eq!((3..6).map(|e| every.due_after(e, 4, 5)).collect::<Vec<_>>(), [0, 1, 2]);
    }

    /// A margin outside [0, 1) is refused, naming the key and the value.
    #[test]
    fn a_min_margin_outside_the_unit_interval_is_refused() {
        let mut config = SearchRunConfig::default();
        for bad in [1.5, -0.1, f64::NAN] {
            config.arch.progressive =
                Some(ProgressiveConfig { every_epochs: 1, after_epochs: 1, min_margin: bad, path: false });
            let e = config.validate().unwrap_err();
            assert_eq!(e.key, "arch.progressive.min_margin");
            assert!(e.message.contains(&bad.to_string()), "{}", e.message);
        }
        config.arch.progressive =
            Some(ProgressiveConfig { every_epochs: 1, after_epochs: 1, min_margin: 0.0, path: false });
        config.validate().unwrap();
    }
}
