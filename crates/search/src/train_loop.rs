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

use crate::checkpoint::{read_state, Checkpoints};
use crate::run_config::CheckpointConfig;
use crate::rundir::{peak_rss_mib, RunDir};

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
    /// Images the step trained on.
    pub images: usize,
    /// Further fields of the metrics line (learning rates, other losses).
    pub fields: Map<String, Value>,
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
    /// The val mIoU of the current model.
    fn evaluate(&mut self) -> Result<f64>;
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
}

/// How a run of the loop ended.
#[derive(Debug)]
pub enum LoopOutcome {
    /// All steps done; the last evaluation's val mIoU, if there was one.
    Finished { val_miou: Option<f64> },
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// Runs `task` for `config.total_steps` steps, from the latest checkpoint in `checkpoints`
/// when `resume`.
pub fn run(
    config: &LoopConfig,
    task: &mut dyn Task,
    dir: &RunDir,
    checkpoints: &Checkpoints,
    resume: bool,
) -> Result<LoopOutcome> {
    let mut p = Progress::default();
    if resume {
        let checkpoint = checkpoints.latest_verified()?.with_context(|| {
            format!(
                "{} has no checkpoint to resume: the run stopped before its first one; start it again with the \
                 same --out and its config",
                dir.root().display()
            )
        })?;
        p = read_state(&checkpoint)?;
        if p.threads != tch::get_num_threads() {
            tracing::warn!(
                saved = p.threads,
                now = tch::get_num_threads(),
                "resuming with another thread count than the run used: the result will not be bit-exact \
                 (pass --threads {} for that)",
                p.threads
            );
        }
        dir.forget_metrics_after(p.global_step, p.epoch)?;
        task.restore(&checkpoint, &p.task).with_context(|| format!("restoring {}", checkpoint.display()))?;
        info!(checkpoint = %checkpoint.display(), epoch = p.epoch, batch = p.batch, step = p.global_step, "resuming");
    }
    let save = |p: &mut Progress, task: &dyn Task, best: bool| -> Result<PathBuf> {
        p.task = task.state();
        p.threads = tch::get_num_threads();
        checkpoints.save(p.global_step, &task.checkpoint_files(), &*p, best)
    };
    let mut last_eval = None;
    let mut evaluate = |p: &mut Progress, task: &mut dyn Task, last: bool| -> Result<(f64, bool)> {
        let miou = task.evaluate()?;
        // At the end a tie keeps the later weights.
        let best = p.best_val_miou.is_none_or(|b| if last { miou >= b } else { miou > b });
        if best {
            p.best_val_miou = Some(miou);
        }
        last_eval = Some(miou);
        Ok((miou, best))
    };
    let total = config.total_steps;
    let mut gpu = crate::gpu::GpuMonitor::for_device(config.device);
    let stopping =
        |p: &Progress| crate::interrupt::requested() || config.stop_after_steps.is_some_and(|n| p.global_step >= n);

    while p.global_step < total {
        let epoch = p.epoch;
        let _span = info_span!("epoch", epoch).entered();
        task.begin_epoch(epoch, p.batch)?;
        let in_epoch = config.steps_per_epoch.min(total - (p.global_step - p.batch));
        let bar = crate::logging::progress(in_epoch as u64, format!("epoch {epoch}"));
        bar.set_position(p.batch as u64);
        let mut window = (Instant::now(), 0usize);
        let mut epoch_loss = (0.0, 0usize);
        while p.batch < config.steps_per_epoch && p.global_step < total {
            let at = Position { epoch, batch: p.batch, global_step: p.global_step };
            let record = {
                let _step = info_span!("step", step = at.global_step).entered();
                tch::manual_seed((config.seed as i64) ^ (at.global_step as i64));
                task.step(at)?
            };
            p.batch += 1;
            p.global_step += 1;
            if let Some(gpu) = gpu.as_mut() {
                gpu.sample();
            }
            if record.loss.is_finite() {
                epoch_loss = (epoch_loss.0 + record.loss, epoch_loss.1 + 1);
            }
            window.1 += record.images;
            bar.inc(1);
            if config.log_every_steps > 0 && p.global_step % config.log_every_steps == 0 {
                let seconds = window.0.elapsed().as_secs_f64();
                let mut line = json!({
                    "kind": "step", "epoch": epoch, "step": at.batch, "global_step": p.global_step,
                    "loss": record.loss,
                });
                line.as_object_mut().expect("an object").extend(record.fields.clone());
                line["images_per_second"] = json!(window.1 as f64 / seconds);
                line["peak_rss_mib"] = json!(peak_rss_mib());
                if let Some(gpu) = &gpu {
                    line["peak_gpu_mib"] = json!(gpu.peak_mib());
                }
                dir.metric(&line)?;
                info!(global_step = p.global_step, loss = record.loss, "step");
                window = (Instant::now(), 0);
            }
            // A checkpoint that is due is written before an evaluation, so that a failing
            // evaluation never costs it; a new best is marked by saving the same step again.
            let last = p.global_step == total;
            let eval_due = matches!(config.eval, EvalSchedule::EverySteps(n) if n > 0 && p.global_step % n == 0);
            let epoch_end = p.batch == config.steps_per_epoch;
            let periodic = config.checkpoint.every_steps > 0 && p.global_step % config.checkpoint.every_steps == 0;
            let at_epoch_save = epoch_end && config.checkpoint_every_epoch;
            if (eval_due || stopping(&p) || periodic) && !last && !at_epoch_save {
                let path = save(&mut p, task, false)?;
                if eval_due {
                    let (miou, best) = evaluate(&mut p, task, false)?;
                    dir.metric(&json!({"kind": "eval", "global_step": p.global_step, "val_miou": miou}))?;
                    info!(global_step = p.global_step, val_miou = miou, "evaluated");
                    if best {
                        save(&mut p, task, true)?;
                    }
                }
                if stopping(&p) {
                    crate::logging::finish_progress();
                    info!(checkpoint = %path.display(), "stopped; resume with --resume");
                    return Ok(LoopOutcome::Stopped(path));
                }
            }
        }
        crate::logging::finish_progress();
        if p.batch < config.steps_per_epoch {
            break; // the last, shortened epoch
        }

        let mut line = task.end_epoch(epoch)?;
        p.epoch += 1;
        p.batch = 0;
        let checkpoint = if config.checkpoint_every_epoch { Some(save(&mut p, task, false)?) } else { None };
        let val_miou = match config.eval {
            EvalSchedule::EveryEpochs(k) if k > 0 && (epoch + 1) % k == 0 => {
                let (miou, best) = evaluate(&mut p, task, false)?;
                if best && checkpoint.is_some() {
                    save(&mut p, task, true)?;
                }
                Some(miou)
            }
            _ => None,
        };
        let train_loss = epoch_loss.0 / epoch_loss.1.max(1) as f64;
        line.insert("kind".into(), json!("epoch"));
        line.insert("epoch".into(), json!(epoch));
        line.insert("train_loss".into(), json!(train_loss));
        line.insert("val_miou".into(), json!(val_miou));
        line.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
        if let Some(gpu) = &gpu {
            line.insert("peak_gpu_mib".into(), json!(gpu.peak_mib()));
        }
        dir.metric(&Value::Object(line))?;
        info!(epoch, train_loss, val_miou, "epoch done");
        if let (Some(path), true) = (checkpoint, stopping(&p) && p.global_step < total) {
            info!(checkpoint = %path.display(), "stopped; resume with --resume");
            return Ok(LoopOutcome::Stopped(path));
        }
    }
    if config.eval_at_end {
        save(&mut p, task, false)?;
        let (miou, best) = evaluate(&mut p, task, true)?;
        dir.metric(&json!({"kind": "eval", "global_step": p.global_step, "val_miou": miou, "final": true}))?;
        if best {
            save(&mut p, task, true)?;
        }
    }
    Ok(LoopOutcome::Finished { val_miou: last_eval })
}
