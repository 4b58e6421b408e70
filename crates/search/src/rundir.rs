//! The run folder (`runs/<name>/`): the resolved config, an environment record, the human log,
//! `metrics.jsonl`, decoded architectures and checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::env::EnvReport;

/// An open run folder.
pub struct RunDir {
    root: PathBuf,
}

/// Writes `bytes` to `path` atomically ([`seg::atomic`]), with the path in the error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    seg::atomic::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The environment record of a run.
#[derive(Debug, Serialize)]
struct EnvRecord {
    #[serde(flatten)]
    libtorch: EnvReport,
    device: String,
    git_commit: Option<String>,
    command: Vec<String>,
    started: String,
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl RunDir {
    /// Creates a new run folder at `root` (which must not hold a run yet), writes the resolved
    /// config (`config.toml`) and the environment record (`env.json`), and starts the log.
    pub fn create(root: &Path, config: &impl Serialize, device: tch::Device) -> Result<RunDir> {
        if root.join("config.toml").exists() {
            anyhow::bail!("{} already holds a run; choose another --out or name, or --resume it", root.display());
        }
        for sub in ["", "arch", "checkpoints"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        let dir = RunDir { root: root.to_owned() };
        let toml = toml::to_string_pretty(config).context("serialising the resolved config")?;
        write_file(&dir.path("config.toml"), toml.as_bytes())?;
        dir.write_env(device)?;
        crate::logging::log_to_file(&dir.path("log.txt")).context("opening log.txt")?;
        Ok(dir)
    }

    /// Opens an existing run folder to resume it.
    pub fn open(root: &Path, device: tch::Device) -> Result<RunDir> {
        if !root.join("config.toml").is_file() {
            anyhow::bail!("{} is not a run folder (no config.toml)", root.display());
        }
        let dir = RunDir { root: root.to_owned() };
        dir.write_env(device)?;
        crate::logging::log_to_file(&dir.path("log.txt")).context("opening log.txt")?;
        Ok(dir)
    }

    fn write_env(&self, device: tch::Device) -> Result<()> {
        let record = EnvRecord {
            libtorch: EnvReport::collect(),
            device: format!("{device:?}"),
            git_commit: git_commit(),
            command: std::env::args().collect(),
            started: format!("{:?}", std::time::SystemTime::now()),
        };
        write_file(&self.path("env.json"), serde_json::to_string_pretty(&record)?.as_bytes())
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the folder.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Appends one JSON object to `metrics.jsonl`.
    pub fn metric(&self, record: &serde_json::Value) -> Result<()> {
        let path = self.path("metrics.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{record}").with_context(|| format!("writing {}", path.display()))
    }
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
