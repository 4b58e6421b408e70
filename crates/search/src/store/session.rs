//! One session per run: everything a task (the search, retraining, the benchmark, the demo's
//! stages) needs to open or resume a run, in one order, written once:
//!
//! 1. [`prepare`], before anything is built or written: the precision (a run that cannot run as
//!    asked refuses before it writes anything), torch seeded from the config's seed, the
//!    device's tuning, the ranks (and their shares of the data: [`Prepared::share_even`],
//!    [`Prepared::share`]).
//! 2. [`Prepared::open`], once the task knows its data and loaders are usable: the run folder
//!    created, or opened to resume (rank 0 alone, with its lock, provenance and the
//!    distributed layout; the other ranks only follow), the checkpoints, TensorBoard and
//!    synchronised batch norm.
//! 3. [`Session::start`] gives every rank rank 0's parameters (a fresh run), and
//!    [`Session::run`] runs the task in the training loop, resuming from the latest checkpoint
//!    when asked: rank 0 reads it and sends it to the other ranks, so that no rank but 0 reads
//!    the run folder (docs/distributed.md).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use tch::{nn, Device};

use crate::dist::{Ranks, SyncBatchNormGuard};
use crate::store::checkpoint::Checkpoints;
use crate::store::rundir::RunDir;
use crate::train::precision::{AutocastDtype, Precision};
use crate::train::train_loop::{LoopConfig, LoopOutcome, Task};

/// How a command asks a task (search, retraining) to run: where, on what, on which ranks,
/// resuming or not.
#[derive(Clone)]
pub struct RunRequest {
    /// The run folder.
    pub out: std::path::PathBuf,
    pub device: Device,
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint, as on Ctrl-C) once this many steps are done in total.
    pub stop_after_steps: Option<usize>,
    /// The ranks of the run (docs/distributed.md).
    pub ranks: Ranks,
}

impl RunRequest {
    /// A fresh run into `out` in one process on `device` (the demo's stages).
    pub fn fresh(out: std::path::PathBuf, device: Device) -> RunRequest {
        RunRequest { out, device, resume: false, stop_after_steps: None, ranks: Ranks::Single }
    }

    /// Where this run keeps its files, with a config's `sync_bn`, `tensorboard`, per-rank batch
    /// and checkpoints kept.
    pub fn folder(&self, (sync_bn, tensorboard): (bool, bool), per_rank_batch: usize, keep_last: usize) -> Folder<'_> {
        Folder { out: &self.out, resume: self.resume, sync_bn, tensorboard, per_rank_batch, keep_last }
    }
}

/// How a run computes: what [`prepare`] needs.
#[derive(Clone)]
pub struct Compute {
    pub device: Device,
    pub ranks: Ranks,
    /// The config's seed: torch is seeded with it before anything is built.
    pub seed: u64,
    pub autocast: bool,
    pub autocast_dtype: AutocastDtype,
}

impl Compute {
    /// On `device` and `ranks`, seeded with `seed`, with the config's `autocast` and its dtype.
    pub fn of(device: Device, ranks: Ranks, seed: u64, (autocast, autocast_dtype): (bool, AutocastDtype)) -> Compute {
        Compute { device, ranks, seed, autocast, autocast_dtype }
    }
}

/// Where a run keeps its files: what [`Prepared::open`] needs.
pub struct Folder<'a> {
    /// The run folder.
    pub out: &'a Path,
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// Synchronised batch norm across the ranks (`sync_bn`).
    pub sync_bn: bool,
    /// TensorBoard event files beside `metrics.jsonl`.
    pub tensorboard: bool,
    /// Images per rank and step (recorded with the distributed layout).
    pub per_rank_batch: usize,
    /// Checkpoints kept.
    pub keep_last: usize,
}

/// A run prepared: precision checked, torch seeded; nothing written yet.
pub struct Prepared {
    compute: Compute,
    precision: Precision,
}

/// Checks the precision, seeds torch and tunes the device: what every task does first (the
/// benchmark, which keeps no files, only this).
pub fn prepare(compute: Compute) -> Result<Prepared> {
    let precision = Precision::for_run(compute.autocast, compute.autocast_dtype, compute.device)?;
    tch::manual_seed(compute.seed as i64);
    crate::observe::gpu::tune(compute.device);
    Ok(Prepared { compute, precision })
}

impl Prepared {
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn ranks(&self) -> &Ranks {
        &self.compute.ranks
    }

    pub fn device(&self) -> Device {
        self.compute.device
    }

    /// This rank's deterministic share of training `items`, as many for every rank.
    pub fn share_even<T: Clone>(&self, items: &[T]) -> Vec<T> {
        self.compute.ranks.share_even(items)
    }

    /// This rank's share of evaluation `items`.
    pub fn share<T: Clone>(&self, items: &[T]) -> Vec<T> {
        self.compute.ranks.share(items)
    }

    /// Creates the run folder `folder` describes for `config` (or opens it to resume), with its
    /// checkpoints, TensorBoard and synchronised batch norm.
    pub fn open(self, folder: Folder, config: &impl Serialize) -> Result<Session> {
        let Compute { device, ranks, .. } = self.compute;
        let (dir, checkpoints) = RunDir::for_run(
            folder.out,
            config,
            device,
            folder.resume,
            &ranks,
            folder.per_rank_batch,
            folder.keep_last,
        )?;
        if folder.tensorboard {
            dir.enable_tensorboard()?;
        }
        let sync_bn = SyncBatchNormGuard::new(&ranks, folder.sync_bn);
        Ok(Session {
            _graceful: crate::store::interrupt::Graceful::hold(),
            dir,
            checkpoints,
            ranks,
            device,
            precision: self.precision,
            resume: folder.resume,
            _sync_bn: sync_bn,
        })
    }
}

/// An open run.
pub struct Session {
    pub dir: RunDir,
    pub checkpoints: Checkpoints,
    pub ranks: Ranks,
    pub device: Device,
    pub precision: Precision,
    /// Whether the run continues from its latest checkpoint.
    pub resume: bool,
    _sync_bn: SyncBatchNormGuard,
    /// From the moment the run folder is open, an interrupt saves a checkpoint after the
    /// current step instead of ending the process at once.
    _graceful: crate::store::interrupt::Graceful,
}

impl Session {
    /// Every rank starts from rank 0's values of `stores` (a fresh run; a resumed one restores
    /// its checkpoint instead).
    pub fn start(&self, stores: &[&nn::VarStore]) -> Result<()> {
        if self.resume {
            return Ok(());
        }
        self.ranks.broadcast_stores(stores)
    }

    /// Runs `task` in the training loop, resuming from the latest checkpoint when the run
    /// resumes (rank 0 reads it and sends it to the other ranks).
    pub fn run(&self, config: &LoopConfig, task: &mut dyn Task) -> Result<LoopOutcome> {
        crate::train::train_loop::run(config, task, &self.dir, &self.checkpoints, self.resume, &self.ranks)
    }
}
