//! The one training loop of `search run` (the bilevel search, paper §4.2) and `search train`
//! (retraining, §5.2), as burn's `Learner` and Lightning's `Trainer` write it once: position
//! and resume, seeding, checkpoints (periodic, at evaluations, at the end of epochs, on Ctrl-C
//! and `--stop-after-steps`), evaluation on a schedule with the best checkpoint kept, metrics
//! lines, the progress bar and the epoch spans. Each command supplies a [`Task`]: its steps,
//! what its checkpoints hold, what it does at the end of an epoch and how it evaluates.
//!
//! Reproducibility: torch's generator is reseeded from (seed, global step) before every step,
//! and tasks read their data as functions of (seed, epoch, batch), so the position saved in
//! `state.json` is the whole RNG state and a resumed run is bit-exact.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tch::Tensor;
use tracing::{info, info_span};

use crate::dist::Ranks;
use crate::run_config::CheckpointConfig;
use crate::store::checkpoint::{read_state, Checkpoints};
use crate::store::rundir::{peak_rss_mib, RunDir};

/// When the loop evaluates on the val split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSchedule {
    Never,
    /// After every this many steps (not after the last one: see [`LoopConfig::eval_at_end`]).
    EverySteps(usize),
    /// At the end of every this many epochs.
    EveryEpochs(usize),
}

/// What the loop needs to know of a run.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub seed: u64,
    /// Steps in all.
    pub total_steps: usize,
    /// Steps per epoch (the last epoch may be cut short by `total_steps`).
    pub steps_per_epoch: usize,
    /// A metrics line every this many steps (0: none).
    pub log_every_steps: usize,
    pub eval: EvalSchedule,
    /// Evaluate once more after the last step.
    pub eval_at_end: bool,
    pub checkpoint: CheckpointConfig,
    /// Save a checkpoint at the end of every epoch.
    pub checkpoint_every_epoch: bool,
    /// Stop (with a checkpoint, as on Ctrl-C) once this many steps are done in total.
    pub stop_after_steps: Option<usize>,
    /// Where the run computes: on CUDA the metrics lines carry the peak GPU memory.
    pub device: tch::Device,
    /// The run's whole config: its computation keys are recorded in every checkpoint, and a
    /// resume with other values is refused ([`check_same_computation`]).
    pub run_config: Value,
}

/// The fault suite's kill point (tests/faults.rs): with `ADL_FAULT_EXIT_AFTER_CHECKPOINT=N`
/// the process ends at once, as kill -9 would, right after writing the checkpoint of step N
/// that leaves an evaluation or a metrics row pending. Unset, it does nothing.
fn fault_point(p: &Progress) {
    let Ok(step) = std::env::var("ADL_FAULT_EXIT_AFTER_CHECKPOINT") else { return };
    if step.parse() == Ok(p.global_step) && p.pending.is_some() {
        // SAFETY: ends the process at once, as a kill does.
        unsafe { libc::_exit(137) };
    }
}

/// Keys that change how a run executes, never what it computes: a resume may change them.
const EXECUTION_KEYS: [&str; 4] = ["execution.", "name", "log_every_steps", "checkpoint."];

/// The computation keys of a config as `dotted.key → value`, and their hash (CRC-32 of the
/// canonical JSON).
fn computation_keys(config: &Value) -> (std::collections::BTreeMap<String, Value>, String) {
    fn flatten(value: &Value, prefix: String, out: &mut std::collections::BTreeMap<String, Value>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    flatten(v, key, out);
                }
            }
            other => {
                out.insert(prefix, other.clone());
            }
        }
    }
    let mut keys = std::collections::BTreeMap::new();
    flatten(config, String::new(), &mut keys);
    keys.retain(|key, _| !EXECUTION_KEYS.iter().any(|e| key == e.trim_end_matches('.') || key.starts_with(e)));
    let hash = format!("{:08x}", crc32fast::hash(serde_json::to_string(&keys).unwrap_or_default().as_bytes()));
    (keys, hash)
}

/// Refuses to resume `dir` with a config whose computation keys differ from those recorded in
/// its checkpoint, naming each changed key with both values.
fn check_same_computation(recorded: &Progress, config: &Value, dir: &Path) -> Result<()> {
    let (Some(before), Some(hash)) = (&recorded.config, &recorded.config_hash) else { return Ok(()) };
    let (now, now_hash) = computation_keys(config);
    if *hash == now_hash {
        return Ok(());
    }
    let mut changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| now.get(*k) != Some(v))
        .map(|(k, v)| format!("`{k}` was {v}, is {}", now.get(k).map_or("absent".to_owned(), ToString::to_string)))
        .collect();
    changed.extend(now.keys().filter(|k| !before.contains_key(*k)).map(|k| format!("`{k}` is new ({})", now[k])));
    anyhow::bail!(
        "{}: the run's config.toml differs from the config the run started with: {}. A resumed run must compute \
         what the started one did, so this is refused; restore the value, or start a new run (another --out) \
         with the new config (only execution.*, name, log_every_steps and checkpoint.* may change on resume)",
        dir.display(),
        changed.join("; ")
    )
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub epoch: usize,
    /// Batch within the epoch.
    pub batch: usize,
    /// Steps done before this one.
    pub global_step: usize,
}

/// What one step reports.
#[derive(Debug, Clone, Default)]
pub struct StepRecord {
    /// The training loss (NaN when the step was skipped, e.g. a batch of ignored pixels).
    pub loss: f64,
    /// Images the step trained on (on every rank of a distributed run).
    pub images: usize,
    /// Further fields of the metrics line (learning rates, other losses: fields whose name
    /// starts with `loss` are averaged over the logging interval).
    pub fields: Map<String, Value>,
    /// Seconds the step waited for its data (batches from the loader).
    pub data_seconds: f64,
}

impl StepRecord {
    /// The record of a step that trained on `images` (over all ranks) with `loss`, its metrics
    /// `fields` (a JSON object) and, when the run scales its loss, float16's scaler state
    /// (`fp16_scale`, `fp16_skipped_steps`).
    pub fn new(
        loss: f64,
        images: usize,
        mut fields: Value,
        data_seconds: f64,
        scaler: Option<&crate::train::loss_scale::LossScaler>,
    ) -> StepRecord {
        if let Some(scaler) = scaler {
            scaler.log_into(&mut fields);
        }
        let fields = match fields {
            Value::Object(map) => map,
            other => panic!("a step's fields are a JSON object, not {other}"),
        };
        StepRecord { loss, images, fields, data_seconds }
    }
}

/// A command's part of the loop.
pub trait Task {
    /// The named tensor files of a checkpoint (`weights`, `optim`, …), on the CPU.
    fn checkpoint_files(&self) -> Vec<(&'static str, Vec<(String, Tensor)>)>;
    /// The task's own state for `state.json`.
    fn state(&self) -> Value;
    /// Restores the task from `checkpoint` and its own `state`.
    fn restore(&mut self, checkpoint: &Path, state: &Value) -> Result<()>;
    /// Starts epoch `epoch` at `batch` (0, or where a resumed run stopped).
    fn begin_epoch(&mut self, epoch: usize, batch: usize) -> Result<()>;
    /// One training step.
    fn step(&mut self, at: Position) -> Result<StepRecord>;
    /// After an epoch's last step: the task's records (decoded architectures, …) and the
    /// fields it adds to the epoch's metrics line.
    fn end_epoch(&mut self, epoch: usize) -> Result<Map<String, Value>>;
    /// The val scores (mIoU, per-class IoU) of the current model.
    fn evaluate(&mut self) -> Result<seg::Scores>;
    /// The current model's predictions on the first `n` val images, blended over them: (id,
    /// height, width, PNG), for TensorBoard.
    fn pictures(&mut self, n: usize) -> Result<Vec<crate::observe::tensorboard::Picture>>;
}

/// Position and bookkeeping saved in every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// Epoch to continue in, and the first batch of it not yet done.
    epoch: usize,
    batch: usize,
    global_step: usize,
    best_val_miou: Option<f64>,
    /// Torch's intra-op threads when the checkpoint was written (CPU results are bit-exact only
    /// at the same count).
    #[serde(default)]
    threads: i32,
    task: Value,
    /// The current epoch's training loss so far (sum and finite steps), so that a resumed
    /// epoch's `train_loss` is the uninterrupted one.
    #[serde(default)]
    epoch_loss: (f64, usize),
    /// The current logging interval's sums, for the same reason.
    #[serde(default)]
    window: WindowSums,
    /// What was still to be written when this checkpoint was saved (an evaluation and its
    /// rows): a resumed run does it before its next step, so that `metrics.jsonl` holds every
    /// row an uninterrupted run writes.
    #[serde(default)]
    pending: Option<Pending>,
    /// The run's computation keys and their hash, as it started (see [`check_same_computation`]).
    #[serde(default)]
    config: Option<std::collections::BTreeMap<String, Value>>,
    #[serde(default)]
    config_hash: Option<String>,
}

/// Rows due after a checkpoint: an evaluation, and the epoch's row (which carries its score).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// Evaluate: after `EverySteps` (an `eval` row) or at an epoch's end (in the epoch row).
    eval: Option<PendingEval>,
    /// The finished epoch's row, without its val fields.
    epoch_row: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PendingEval {
    Steps,
    EpochEnd,
}

/// The sums of a logging interval that are not wall-clock time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WindowSums {
    steps: usize,
    images: usize,
    loss: (f64, usize),
    /// Sums and counts of the tasks' loss fields, for interval means.
    means: std::collections::BTreeMap<String, (f64, usize)>,
}

/// How a run of the loop ended.
#[derive(Debug)]
pub enum LoopOutcome {
    /// All steps done; the last evaluation's val mIoU, if there was one.
    Finished { val_miou: Option<f64> },
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// Val predictions written to TensorBoard at each evaluation (when it is enabled).
const TENSORBOARD_PICTURES: usize = 3;

/// What a log line reports about the steps since the previous one.
struct Window {
    start: Instant,
    data_seconds: f64,
    sums: WindowSums,
}

impl Window {
    fn new(sums: WindowSums) -> Window {
        Window { start: Instant::now(), data_seconds: 0.0, sums }
    }

    fn add(&mut self, record: &StepRecord) {
        let sums = &mut self.sums;
        sums.steps += 1;
        sums.images += record.images;
        self.data_seconds += record.data_seconds;
        if record.loss.is_finite() {
            sums.loss = (sums.loss.0 + record.loss, sums.loss.1 + 1);
        }
        for (key, value) in &record.fields {
            if let (true, Some(v)) = (key.starts_with("loss"), value.as_f64().filter(|v| v.is_finite())) {
                let (sum, count) = sums.means.entry(key.clone()).or_default();
                *sum += v;
                *count += 1;
            }
        }
    }

    /// The interval mean of the loss (NaN when every step was skipped).
    fn mean_loss(&self) -> f64 {
        if self.sums.loss.1 == 0 {
            f64::NAN
        } else {
            self.sums.loss.0 / self.sums.loss.1 as f64
        }
    }
}

/// `12m03s`-style durations for log lines.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The per-class IoU of `scores` by class name (null where a class has none).
fn class_ious(scores: &seg::Scores) -> Value {
    Value::Object(scores.classes.iter().map(|c| (c.name.to_owned(), json!(c.iou))).collect())
}

/// Runs `task` for `config.total_steps` steps, from the latest checkpoint in `checkpoints`
/// when `resume`. In a distributed run only rank 0 reads the checkpoint; the other ranks
/// restore from the copy it sends them (`Ranks::share_folder`), so they need no access to the
/// run folder.
pub fn run(
    config: &LoopConfig,
    task: &mut dyn Task,
    dir: &RunDir,
    checkpoints: &Checkpoints,
    resume: bool,
    ranks: &Ranks,
) -> Result<LoopOutcome> {
    let (keys, hash) = computation_keys(&config.run_config);
    let mut p = Progress { config: Some(keys), config_hash: Some(hash), ..Progress::default() };
    if resume {
        let checkpoint = ranks.share_folder(|| {
            checkpoints.latest_verified()?.with_context(|| {
                format!(
                    "{} has no checkpoint to resume: the run stopped before its first one; start it again with \
                     the same --out and its config",
                    dir.root().display()
                )
            })
        })?;
        p = read_state(&checkpoint)?;
        check_same_computation(&p, &config.run_config, dir.root())?;
        if p.threads != tch::get_num_threads() {
            tracing::warn!(
                saved = p.threads,
                now = tch::get_num_threads(),
                "resuming with another thread count than the run used: the result will not be bit-exact \
                 (pass --threads {} for that)",
                p.threads
            );
        }
        let pending = p.pending.as_ref();
        let redo = (
            pending.is_some_and(|q| q.eval == Some(PendingEval::Steps)),
            pending.is_some_and(|q| q.epoch_row.is_some()),
        );
        dir.forget_metrics_after(p.global_step, p.epoch, redo)?;
        task.restore(&checkpoint, &p.task).with_context(|| format!("restoring {}", checkpoint.display()))?;
        ranks.done_with(&checkpoint);
        info!(checkpoint = %checkpoint.display(), epoch = p.epoch, batch = p.batch, step = p.global_step, "resuming");
    }
    let save = |p: &mut Progress, task: &dyn Task, best: bool| -> Result<PathBuf> {
        p.task = task.state();
        p.threads = tch::get_num_threads();
        let path = checkpoints.save(p.global_step, &task.checkpoint_files(), &*p, best)?;
        fault_point(p);
        Ok(path)
    };
    let last_eval = std::cell::Cell::new(None);
    let evaluate = |p: &mut Progress, task: &mut dyn Task, last: bool| -> Result<(seg::Scores, bool)> {
        let scores = task.evaluate()?;
        if dir.tensorboard_enabled() {
            let pictures: Vec<_> = task
                .pictures(TENSORBOARD_PICTURES)?
                .into_iter()
                .map(|(id, h, w, png)| (format!("predictions/{id}"), h, w, png))
                .collect();
            dir.tensorboard_images(p.global_step, &pictures)?;
        }
        let miou = scores.miou;
        // At the end a tie keeps the later weights.
        let best = p.best_val_miou.is_none_or(|b| if last { miou >= b } else { miou > b });
        if best {
            p.best_val_miou = Some(miou);
        }
        last_eval.set(Some(miou));
        Ok((scores, best))
    };
    // Writes what a checkpoint left pending (an evaluation, the epoch's row) and marks a new
    // best by saving the same step again; on resume, what the checkpoint says was pending.
    // `Ok(true)` when an interrupt stopped the evaluation: what was pending stays pending.
    let complete = |p: &mut Progress, task: &mut dyn Task, saved: bool| -> Result<bool> {
        let Some(pending) = p.pending.clone() else { return Ok(false) };
        let evaluated = match pending.eval {
            Some(kind) => match evaluate(p, task, false) {
                Ok(scores) => Some((kind, scores)),
                Err(e) if e.chain().any(|c| c.is::<crate::store::interrupt::Interrupted>()) => return Ok(true),
                Err(e) => return Err(e),
            },
            None => None,
        };
        p.pending = None;
        if let Some((PendingEval::Steps, (scores, _))) = &evaluated {
            dir.metric(&json!({"kind": "eval", "step": p.global_step, "val_miou": scores.miou,
                               "val_iou": class_ious(scores)}))?;
            info!(step = p.global_step, val_miou = %format!("{:.2} %", 100.0 * scores.miou), "evaluated");
        }
        if let Some(mut line) = pending.epoch_row {
            let val = evaluated.as_ref().filter(|(kind, _)| *kind == PendingEval::EpochEnd).map(|(_, (s, _))| s);
            line.insert("val_miou".into(), json!(val.map(|s| s.miou)));
            if let Some(scores) = val {
                line.insert("val_iou".into(), class_ious(scores));
            }
            let train_loss = line["train_loss"].as_f64().unwrap_or(f64::NAN);
            let epoch = line["epoch"].as_u64().unwrap_or(0) + 1;
            match val {
                Some(s) => {
                    info!(
                        "epoch {epoch}/{} done: train loss {train_loss:.4}, val mIoU {:.2} %",
                        line["epochs"],
                        100.0 * s.miou
                    )
                }
                None => info!("epoch {epoch}/{} done: train loss {train_loss:.4}", line["epochs"]),
            }
            line.remove("epochs");
            dir.metric(&Value::Object(line))?;
        }
        if saved && evaluated.is_some_and(|(_, (_, best))| best) {
            save(p, task, true)?;
        }
        Ok(false)
    };
    let stopped = |path: PathBuf| {
        crate::observe::logging::finish_progress();
        info!(checkpoint = %path.display(), "stopped; resume with --resume");
        Ok(LoopOutcome::Stopped(path))
    };
    let _graceful = crate::store::interrupt::Graceful::hold();
    if resume && complete(&mut p, task, true)? {
        return stopped(checkpoints.latest()?.context("the checkpoint just resumed")?);
    }
    let total = config.total_steps;
    let epochs = total.div_ceil(config.steps_per_epoch.max(1));
    let mut gpu = crate::observe::gpu::GpuMonitor::for_device(config.device);
    let stopping = |p: &Progress| {
        crate::store::interrupt::requested() || config.stop_after_steps.is_some_and(|n| p.global_step >= n)
    };
    // One progress display over the whole run (in a terminal; log lines otherwise).
    let bar = crate::observe::logging::progress(total as u64, format!("epoch {}/{epochs}", p.epoch + 1));
    bar.set_position(p.global_step as u64);
    let (run_start, first_step) = (Instant::now(), p.global_step);

    while p.global_step < total {
        let epoch = p.epoch;
        let _span = info_span!("epoch", epoch).entered();
        task.begin_epoch(epoch, p.batch)?;
        bar.set_message(format!("epoch {}/{epochs}", epoch + 1));
        let mut window = Window::new(std::mem::take(&mut p.window));
        while p.batch < config.steps_per_epoch && p.global_step < total {
            let at = Position { epoch, batch: p.batch, global_step: p.global_step };
            let record = {
                let _step = info_span!("step", step = at.global_step + 1).entered();
                tch::manual_seed((config.seed as i64) ^ (at.global_step as i64));
                task.step(at)?
            };
            p.batch += 1;
            p.global_step += 1;
            if let Some(gpu) = gpu.as_mut() {
                gpu.sample();
            }
            if record.loss.is_finite() {
                p.epoch_loss = (p.epoch_loss.0 + record.loss, p.epoch_loss.1 + 1);
            }
            window.add(&record);
            bar.inc(1);
            if config.log_every_steps > 0 && p.global_step % config.log_every_steps == 0 {
                let seconds = window.start.elapsed().as_secs_f64();
                let per_step = seconds / window.sums.steps.max(1) as f64;
                let elapsed = run_start.elapsed().as_secs_f64();
                let done = (p.global_step - first_step).max(1);
                let eta = elapsed / done as f64 * (total - p.global_step) as f64;
                let mut row = json!({
                    "kind": "step", "step": p.global_step, "epoch": epoch, "batch": at.batch,
                    "loss": window.mean_loss(),
                });
                let fields = row.as_object_mut().expect("an object");
                for (key, value) in &record.fields {
                    // Losses as interval means; other fields (learning rates) as they are now.
                    let mean = window.sums.means.get(key).map(|(sum, count)| sum / *count as f64);
                    fields.insert(key.clone(), mean.map_or_else(|| value.clone(), |m| json!(m)));
                }
                fields.insert("seconds_per_step".into(), json!(per_step));
                fields.insert("data_share".into(), json!(window.data_seconds / seconds.max(1e-9)));
                fields.insert("images_per_second".into(), json!(window.sums.images as f64 / seconds.max(1e-9)));
                fields.insert("elapsed_seconds".into(), json!(elapsed));
                fields.insert("eta_seconds".into(), json!(eta));
                fields.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
                if let Some((now, peak)) = gpu.as_ref().and_then(|g| g.current_mib().zip(g.peak_mib())) {
                    fields.insert("gpu_mib".into(), json!(now));
                    fields.insert("peak_gpu_mib".into(), json!(peak));
                }
                info!("{}", log_line(&row, total, epochs));
                dir.metric(&row)?;
                window = Window::new(WindowSums::default());
            }
            // A checkpoint that is due is written before an evaluation, so that a failing
            // evaluation never costs it; a new best is marked by saving the same step again.
            let last = p.global_step == total;
            let eval_due = matches!(config.eval, EvalSchedule::EverySteps(n) if n > 0 && p.global_step % n == 0);
            let epoch_end = p.batch == config.steps_per_epoch;
            let periodic = config.checkpoint.every_steps > 0 && p.global_step % config.checkpoint.every_steps == 0;
            let at_epoch_save = epoch_end && config.checkpoint_every_epoch;
            if (eval_due || stopping(&p) || periodic) && !last && !at_epoch_save {
                p.window = window.sums.clone();
                p.pending = eval_due.then_some(Pending { eval: Some(PendingEval::Steps), epoch_row: None });
                let path = save(&mut p, task, false)?;
                p.window = WindowSums::default();
                if complete(&mut p, task, true)? {
                    return stopped(path);
                }
                if stopping(&p) {
                    crate::observe::logging::finish_progress();
                    info!(checkpoint = %path.display(), "stopped; resume with --resume");
                    return Ok(LoopOutcome::Stopped(path));
                }
            }
        }
        if p.batch < config.steps_per_epoch {
            break; // the last, shortened epoch
        }

        let mut line = task.end_epoch(epoch)?;
        p.epoch += 1;
        p.batch = 0;
        let train_loss = p.epoch_loss.0 / p.epoch_loss.1.max(1) as f64;
        p.epoch_loss = (0.0, 0);
        line.insert("kind".into(), json!("epoch"));
        line.insert("step".into(), json!(p.global_step));
        line.insert("epoch".into(), json!(epoch));
        line.insert("train_loss".into(), json!(train_loss));
        line.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
        if let Some(peak) = gpu.as_ref().and_then(|g| g.peak_mib()) {
            line.insert("peak_gpu_mib".into(), json!(peak));
        }
        // For the log line only; removed before the row is written.
        line.insert("epochs".into(), json!(epochs));
        let eval_due = matches!(config.eval, EvalSchedule::EveryEpochs(k) if k > 0 && (epoch + 1) % k == 0);
        p.pending = Some(Pending { eval: eval_due.then_some(PendingEval::EpochEnd), epoch_row: Some(line) });
        let checkpoint = if config.checkpoint_every_epoch { Some(save(&mut p, task, false)?) } else { None };
        if complete(&mut p, task, checkpoint.is_some())? {
            return stopped(match checkpoint {
                Some(path) => path,
                None => save(&mut p, task, false)?,
            });
        }
        if let (Some(path), true) = (checkpoint, stopping(&p) && p.global_step < total) {
            crate::observe::logging::finish_progress();
            info!(checkpoint = %path.display(), "stopped; resume with --resume");
            return Ok(LoopOutcome::Stopped(path));
        }
    }
    crate::observe::logging::finish_progress();
    if config.eval_at_end {
        save(&mut p, task, false)?;
        let (scores, best) = evaluate(&mut p, task, true)?;
        dir.metric(&json!({"kind": "eval", "step": p.global_step, "val_miou": scores.miou,
                           "val_iou": class_ious(&scores), "final": true}))?;
        if best {
            save(&mut p, task, true)?;
        }
    }
    Ok(LoopOutcome::Finished { val_miou: last_eval.get() })
}

/// A metrics row as one log line that reads without a terminal: `step 20/300 (epoch 2/10)
/// loss 1.712 loss_arch 1.391 lr_weights 0.0428 | 0.41 s/step, data 3 %, 9.8 img/s | 8s elapsed,
/// ETA 1m54s | RSS 1234 MiB`. Absent values are left out, never printed as `None`.
fn log_line(row: &Value, total: usize, epochs: usize) -> String {
    let number = |key: &str| row[key].as_f64();
    let mut parts = vec![format!(
        "step {}/{total} (epoch {}/{epochs})",
        row["step"].as_u64().unwrap_or(0),
        row["epoch"].as_u64().unwrap_or(0) + 1
    )];
    if let Some(fields) = row.as_object() {
        for (key, value) in fields {
            let wanted = key.starts_with("loss") || key.starts_with("lr");
            if let (true, Some(v)) = (wanted, value.as_f64()) {
                parts.push(format!("{key} {v:.4}"));
            }
        }
    }
    let mut line = parts.join(" ");
    if let (Some(sps), Some(share), Some(ips)) =
        (number("seconds_per_step"), number("data_share"), number("images_per_second"))
    {
        line.push_str(&format!(" | {sps:.3} s/step, data {:.0} %, {ips:.1} img/s", 100.0 * share));
    }
    if let (Some(elapsed), Some(eta)) = (number("elapsed_seconds"), number("eta_seconds")) {
        line.push_str(&format!(" | {} elapsed, ETA {}", duration(elapsed), duration(eta)));
    }
    if let Some(rss) = number("peak_rss_mib") {
        line.push_str(&format!(" | RSS {rss:.0} MiB"));
    }
    if let (Some(now), Some(peak)) = (number("gpu_mib"), number("peak_gpu_mib")) {
        line.push_str(&format!(", GPU {now:.0} MiB (peak {peak:.0})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_without_a_terminal() {
        let row = json!({"kind": "step", "step": 20, "epoch": 1, "batch": 9, "loss": 1.7123, "loss_arch": null,
                         "lr_weights": 0.0428, "seconds_per_step": 0.41, "data_share": 0.031,
                         "images_per_second": 9.76, "elapsed_seconds": 8.2, "eta_seconds": 114.0,
                         "peak_rss_mib": 1234.4});
        assert_eq!(
            log_line(&row, 300, 10),
            "step 20/300 (epoch 2/10) loss 1.7123 lr_weights 0.0428 | 0.410 s/step, data 3 %, 9.8 img/s \
             | 8s elapsed, ETA 1m54s | RSS 1234 MiB"
        );
        assert_eq!(duration(3725.0), "1h02m");
    }
}
