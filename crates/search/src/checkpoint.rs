//! Checkpoints: `checkpoints/step_NNNNNNNN/` folders holding named tensor files (safetensors)
//! and `state.json`. A checkpoint is written into a temporary folder and renamed into place, so
//! a crash never leaves a half-written one; the last `keep_last` are kept, and the best one
//! (named in `checkpoints/best`) is never removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::{nn, Device, Tensor};

/// The checkpoints of one run.
pub struct Checkpoints {
    dir: PathBuf,
    keep_last: usize,
}

/// Named tensors of a store, sorted by name, on the CPU.
pub fn store_tensors(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect()
}

/// Writes named tensors as a safetensors file, atomically.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    seg::atomic::write_atomic_with(path, |tmp| Tensor::write_safetensors(&refs, tmp).map_err(std::io::Error::other))
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a safetensors file into a map.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect())
}

/// Copies the tensors of `path` into the variables of `vs` (every variable must be there, with
/// its shape).
pub fn load_store(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    vs.load(path).with_context(|| format!("loading {} (is it from a network of this shape?)", path.display()))
}

impl Checkpoints {
    /// The checkpoints under `dir` (created by the first save).
    pub fn new(dir: PathBuf, keep_last: usize) -> Result<Checkpoints> {
        Ok(Checkpoints { dir, keep_last: keep_last.max(1) })
    }

    fn name(step: usize) -> String {
        format!("step_{step:08}")
    }

    /// Writes checkpoint `step`: one `<file>.safetensors` per entry of `files`, and
    /// `state.json`. `best` marks it as the best so far.
    pub fn save(
        &self,
        step: usize,
        files: &[(&str, Vec<(String, Tensor)>)],
        state: &impl Serialize,
        best: bool,
    ) -> Result<PathBuf> {
        let target = self.dir.join(Self::name(step));
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let state = serde_json::to_string_pretty(state)?;
        seg::atomic::write_atomic_with(&target, |tmp| -> Result<()> {
            std::fs::create_dir(tmp)?;
            for (file, tensors) in files {
                write_tensors(&tmp.join(format!("{file}.safetensors")), tensors)?;
            }
            Ok(std::fs::write(tmp.join("state.json"), &state)?)
        })
        .with_context(|| format!("writing checkpoint {}", target.display()))?;
        if best {
            let best = self.dir.join("best");
            seg::atomic::write_atomic(&best, Self::name(step).as_bytes())
                .with_context(|| format!("writing {}", best.display()))?;
        }
        self.prune()?;
        Ok(target)
    }

    fn steps(&self) -> Result<Vec<usize>> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let mut steps: Vec<usize> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("step_")?.parse().ok())
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    fn prune(&self) -> Result<()> {
        let best = self.best();
        let steps = self.steps()?;
        for &step in steps.iter().rev().skip(self.keep_last) {
            let path = self.dir.join(Self::name(step));
            if Some(&path) != best.as_ref() {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// The most recent checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        Ok(self.steps()?.last().map(|&s| self.dir.join(Self::name(s))))
    }

    /// The best checkpoint, if one was marked.
    pub fn best(&self) -> Option<PathBuf> {
        let name = std::fs::read_to_string(self.dir.join("best")).ok()?;
        let path = self.dir.join(name.trim());
        path.is_dir().then_some(path)
    }
}

/// Reads `state.json` of a checkpoint.
pub fn read_state<T: DeserializeOwned>(checkpoint: &Path) -> Result<T> {
    let path = checkpoint.join("state.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
