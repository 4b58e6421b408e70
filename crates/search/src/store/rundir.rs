//! The run folder (`runs/<name>/`): the resolved config, an environment record, the human log,
//! `metrics.jsonl`, decoded architectures and checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::observe::env::EnvReport;

/// An open run folder, locked for this process while it is open.
pub struct RunDir {
    root: PathBuf,
    _lock: Option<RunLock>,
    /// False on the ranks of a distributed run other than 0: they read the folder (a resumed
    /// checkpoint) but write nothing.
    writer: bool,
    /// TensorBoard event file the metrics rows are also written to, when enabled.
    tensorboard: std::sync::Mutex<Option<crate::observe::tensorboard::EventWriter>>,
}

/// `run.lock` in a run folder: the pid and host of the process that has the folder open, so
/// that two processes never write one run at once. Removed when the process lets go of the
/// folder; a lock left by a dead process on this host (killed, crashed) is taken over.
struct RunLock {
    path: PathBuf,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()))
}

impl RunLock {
    fn acquire(root: &Path) -> Result<RunLock> {
        let path = root.join("run.lock");
        let me = format!("{} {}", std::process::id(), host_name());
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(me.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let (pid, host) = holder.trim().split_once(' ').unwrap_or((holder.trim(), ""));
                    let alive = host != host_name() || Path::new("/proc").join(pid).exists();
                    if alive && !pid.is_empty() {
                        anyhow::bail!(
                            "{} is in use by process {pid} on host {host} (its run.lock); wait for it to finish, \
                             or remove run.lock if that process is gone",
                            root.display()
                        );
                    }
                    tracing::warn!(lock = %path.display(), holder = %holder.trim(), "taking over the lock of a process that is gone");
                    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        anyhow::bail!("{}: could not take the run lock", root.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a run writes into its folder (a run that stopped before its first checkpoint is
/// restarted by removing these).
const RUN_FILES: [&str; 9] = [
    "config.toml",
    "env",
    "log.txt",
    "metrics.jsonl",
    "arch",
    "arch.json",
    "checkpoints",
    "weights.safetensors",
    "tensorboard",
];

/// Whether `root/checkpoints` holds a finished checkpoint (a half-written `.tmp` one does not
/// count).
fn has_checkpoint(root: &Path) -> bool {
    crate::store::checkpoint::Checkpoints::new(root.join("checkpoints"), 1)
        .and_then(|c| c.latest())
        .is_ok_and(|latest| latest.is_some())
}

/// Writes `bytes` to `path` atomically ([`seg::atomic`]), with the path in the error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    seg::atomic::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The provenance record of one invocation on a run folder (`env/NNN.json`).
#[derive(Debug, Serialize)]
struct EnvRecord {
    #[serde(flatten)]
    libtorch: EnvReport,
    device: String,
    /// The commit the binary was built from (embedded at build time).
    git_commit: &'static str,
    /// The command line and the folder it ran in.
    command: Vec<String>,
    working_directory: Option<PathBuf>,
    host: String,
    pid: u32,
    /// RFC 3339, UTC.
    started: String,
}

/// Now, RFC 3339 in UTC to the second (the time of `metrics.jsonl` rows and records).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl RunDir {
    /// Creates a new run folder at `root` (which must not hold a run yet), writes the resolved
    /// config (`config.toml`) and the environment record (`env.json`), and starts the log.
    /// A folder that holds a run which stopped before its first checkpoint is started again in
    /// place.
    pub fn create(root: &Path, config: &impl Serialize, device: tch::Device) -> Result<RunDir> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let lock = RunLock::acquire(root)?;
        if root.join("config.toml").exists() {
            if has_checkpoint(root) {
                anyhow::bail!("{} already holds a run; choose another --out or name, or --resume it", root.display());
            }
            tracing::warn!(run = %root.display(), "the run in this folder stopped before its first checkpoint: starting it again");
            for name in RUN_FILES {
                let path = root.join(name);
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if let Err(e) = removed {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(e).with_context(|| format!("removing {}", path.display()));
                    }
                }
            }
        }
        for sub in ["arch", "checkpoints"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        let dir = RunDir { root: root.to_owned(), _lock: Some(lock), writer: true, tensorboard: Default::default() };
        let toml = toml::to_string(config).context("serialising the resolved config")?;
        write_file(&dir.path("config.toml"), toml.as_bytes())?;
        dir.write_env(device)?;
        crate::observe::logging::log_to_file(&dir.path("log.txt")).context("opening log.txt")?;
        Ok(dir)
    }

    /// Opens an existing run folder to resume it.
    pub fn open(root: &Path, device: tch::Device) -> Result<RunDir> {
        if !root.join("config.toml").is_file() {
            anyhow::bail!("{} is not a run folder (no config.toml)", root.display());
        }
        let dir = RunDir {
            root: root.to_owned(),
            _lock: Some(RunLock::acquire(root)?),
            writer: true,
            tensorboard: Default::default(),
        };
        dir.write_env(device)?;
        crate::observe::logging::log_to_file(&dir.path("log.txt")).context("opening log.txt")?;
        Ok(dir)
    }

    /// Writes this invocation's record as the next `env/NNN.json` (earlier ones are kept: the
    /// first holds the command that started the run).
    fn write_env(&self, device: tch::Device) -> Result<()> {
        let record = EnvRecord {
            libtorch: EnvReport {
                tensor_allocator: Some(crate::runtime::tensor_allocator().to_owned()),
                ..EnvReport::collect()
            },
            device: format!("{device:?}"),
            git_commit: env!("ADL_GIT_COMMIT"),
            command: std::env::args().collect(),
            working_directory: std::env::current_dir().ok(),
            host: host_name(),
            pid: std::process::id(),
            started: now_rfc3339(),
        };
        let dir = self.path("env");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let next = (0..).find(|n| !dir.join(format!("{n:03}.json")).exists()).expect("a free number");
        write_file(&dir.join(format!("{next:03}.json")), serde_json::to_string_pretty(&record)?.as_bytes())
    }

    /// The run folder as a rank other than 0 of a distributed run sees it: read, never written
    /// (rank 0 writes the config, logs, metrics, pictures and checkpoints).
    pub fn follower(root: &Path) -> RunDir {
        // Its full log goes beside rank 0's when this machine sees the run folder (best effort:
        // a rank on another machine may not).
        if let Some(rank) = crate::observe::logging::rank().filter(|&r| r > 0) {
            if std::fs::create_dir_all(root).is_ok() {
                let _ = crate::observe::logging::log_to_file(&root.join(format!("log.rank{rank}.txt")));
            }
        }
        RunDir { root: root.to_owned(), _lock: None, writer: false, tensorboard: Default::default() }
    }

    /// The folder of a search or retraining and its checkpoints: created (or opened, to
    /// `resume`) by the single process or rank 0 of a distributed run, which also records the
    /// run's distributed layout; read-only for the other ranks.
    pub fn for_run(
        out: &Path,
        config: &impl Serialize,
        device: tch::Device,
        resume: bool,
        ranks: &crate::dist::Ranks,
        per_rank_batch: usize,
        keep_last: usize,
    ) -> Result<(RunDir, crate::store::checkpoint::Checkpoints)> {
        let dir = match resume {
            _ if ranks.rank() != 0 => RunDir::follower(out),
            true => RunDir::open(out, device)?,
            false => RunDir::create(out, config, device)?,
        };
        let mut checkpoints = crate::store::checkpoint::Checkpoints::new(dir.path("checkpoints"), keep_last)?;
        if dir.is_writer() {
            record_layout(&dir, ranks, per_rank_batch, resume)?;
        } else {
            checkpoints = checkpoints.reading_only();
        }
        Ok((dir, checkpoints))
    }

    /// Whether this process writes the folder.
    pub fn is_writer(&self) -> bool {
        self.writer
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Drops the rows of `metrics.jsonl` that a resumed run will write again: those of steps
    /// after `step` and of epochs from `epoch` on (the checkpoint's position), a final
    /// evaluation (a run resumed at its end evaluates again), and the rows the checkpoint left
    /// pending, which the resumed run writes first (`redo`: the evaluation row at `step`, the
    /// row of epoch `epoch - 1`).
    pub fn forget_metrics_after(&self, step: usize, epoch: usize, redo: (bool, bool)) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        let path = self.path("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
        let (redo_eval, redo_epoch) = redo;
        let kept: String = text
            .lines()
            .filter(|line| {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { return false };
                match (v["kind"].as_str(), v["step"].as_u64(), v["epoch"].as_u64()) {
                    (_, _, _) if v["final"] == true => false,
                    (Some("epoch"), _, Some(e)) => (e as usize) < epoch && !(redo_epoch && e as usize + 1 == epoch),
                    (Some("eval"), Some(s), _) if redo_eval && s as usize == step => false,
                    (_, Some(s), _) => s as usize <= step,
                    _ => true,
                }
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_file(&path, kept.as_bytes())
    }

    /// Also writes every metrics row's numbers as TensorBoard scalars, into a new event file in
    /// `tensorboard/` (`tensorboard --logdir <run>/tensorboard`).
    pub fn enable_tensorboard(&self) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        let writer = crate::observe::tensorboard::EventWriter::create(&self.path("tensorboard"), &host_name())?;
        *self.tensorboard.lock().expect("tensorboard lock") = Some(writer);
        Ok(())
    }

    /// Whether metrics also go to TensorBoard.
    pub fn tensorboard_enabled(&self) -> bool {
        self.tensorboard.lock().expect("tensorboard lock").is_some()
    }

    /// Writes `images` (tag, height, width, PNG) to TensorBoard at `step`, when enabled.
    pub fn tensorboard_images(&self, step: usize, images: &[crate::observe::tensorboard::Picture]) -> Result<()> {
        match self.tensorboard.lock().expect("tensorboard lock").as_mut() {
            Some(writer) => writer.images(step as i64, images),
            None => Ok(()),
        }
    }

    /// Appends one JSON object to `metrics.jsonl`, with its `time` (RFC 3339) first.
    pub fn metric(&self, record: &serde_json::Value) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        let mut row = serde_json::Map::new();
        row.insert("time".into(), serde_json::json!(now_rfc3339()));
        if let Some(fields) = record.as_object() {
            row.extend(fields.clone());
        }
        let record = serde_json::Value::Object(row);
        let path = self.path("metrics.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{record}").with_context(|| format!("writing {}", path.display()))?;
        if let Some(writer) = self.tensorboard.lock().expect("tensorboard lock").as_mut() {
            let step = record["step"].as_i64().unwrap_or(0);
            writer.scalars(step, &crate::observe::tensorboard::scalars_of(&record))?;
        }
        Ok(())
    }
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The world size a run folder last ran with (1 when it never ran distributed).
fn last_world_size(dir: &RunDir) -> u64 {
    std::fs::read_to_string(dir.path("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "distributed")
        .and_then(|v| v["world_size"].as_u64())
        .unwrap_or(1)
}

/// Records the distributed layout of a run in `metrics.jsonl` (rank 0, or the single process
/// after a distributed one), and on resume says when the number of ranks changed: the run goes
/// on, but each rank's share of the data and the global batch are then other ones.
pub fn record_layout(dir: &RunDir, ranks: &crate::dist::Ranks, per_rank_batch: usize, resume: bool) -> Result<()> {
    let group = ranks.group();
    let size = ranks.size() as u64;
    let before = if resume { last_world_size(dir) } else { 1 };
    if resume && before != size {
        tracing::warn!(
            before,
            now = size,
            "resuming on another number of ranks: the run goes on, but the data order (each rank's share and \
             the global batch) changes, so it will not match an uninterrupted run"
        );
    }
    if group.is_none() && before == 1 {
        return Ok(());
    }
    dir.metric(&serde_json::json!({
        "kind": "distributed", "world_size": size,
        "engine": group.map_or("none".to_owned(), |g| format!("{:?}", g.engine()).to_lowercase()),
        "per_rank_batch": per_rank_batch, "global_batch": per_rank_batch * size as usize,
    }))
}
