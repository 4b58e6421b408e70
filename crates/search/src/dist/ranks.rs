//! How a run's ranks cooperate, as a strategy the training code holds instead of an optional
//! group (burn's training strategies; PyTorch's DDP): one process, or data-parallel ranks that
//! average their gradients before every update. Every collective a step, an evaluation or a
//! run folder needs is a method here, and each is a no-op (or the identity) in one process, so
//! no step, task or evaluation branches on whether it runs distributed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tch::{nn, Tensor};

use super::Group;

/// The ranks of a run.
#[derive(Clone, Default)]
pub enum Ranks {
    /// One process.
    #[default]
    Single,
    /// Data-parallel ranks of a process group (docs/distributed.md).
    DataParallel(Arc<Group>),
}

impl Ranks {
    /// The strategy of an optional group.
    pub fn of(group: Option<Arc<Group>>) -> Ranks {
        group.map_or(Ranks::Single, Ranks::DataParallel)
    }

    /// The process group, when there is one (for the launcher-level records and sync batch
    /// norm).
    pub fn group(&self) -> Option<&Arc<Group>> {
        match self {
            Ranks::Single => None,
            Ranks::DataParallel(group) => Some(group),
        }
    }

    /// Number of ranks (1 in one process).
    pub fn size(&self) -> usize {
        self.group().map_or(1, |g| g.size)
    }

    /// This process's rank (0 in one process).
    pub fn rank(&self) -> usize {
        self.group().map_or(0, |g| g.rank)
    }

    /// Whether more than one process takes part.
    pub fn is_distributed(&self) -> bool {
        self.group().is_some()
    }

    /// Averages `grads` (aligned with `params`) and `loss` across the ranks; the identity in one
    /// process.
    pub fn average(&self, params: &[Tensor], grads: &mut [Option<Tensor>], loss: f64) -> Result<f64> {
        match self.group() {
            None => Ok(loss),
            Some(group) => group.average_gradients(params, grads, loss),
        }
    }

    /// Records that this rank reached `step` (the group's store names a rank that lags).
    pub fn record_progress(&self, step: u64) {
        if let Some(group) = self.group() {
            group.record_progress(step);
        }
    }

    /// Gives every rank rank 0's values of every variable of `stores`.
    pub fn broadcast_stores(&self, stores: &[&nn::VarStore]) -> Result<()> {
        self.group().map_or(Ok(()), |g| g.broadcast_stores(stores))
    }

    /// Gives every rank rank 0's batch-norm statistics of `stores`.
    pub fn broadcast_buffers(&self, stores: &[&nn::VarStore]) -> Result<()> {
        self.group().map_or(Ok(()), |g| g.broadcast_buffers(stores))
    }

    /// Every [`super::CHECK_EVERY_STEPS`] steps, checks that every rank holds rank 0's parameters.
    pub fn check_same_every(&self, stores: &[&nn::VarStore], step: usize) -> Result<()> {
        match self.group() {
            Some(group) if step % super::CHECK_EVERY_STEPS == 0 => group.check_same(stores, step),
            _ => Ok(()),
        }
    }

    /// Sums integer counts (a confusion matrix) across the ranks; the identity in one process.
    pub fn sum_counts(&self, counts: &[u64]) -> Result<Vec<u64>> {
        self.group().map_or_else(|| Ok(counts.to_vec()), |g| g.sum_counts(counts))
    }

    /// This rank's deterministic share of training `items`, as many for every rank
    /// ([`super::shard_even`]); all of them in one process.
    pub fn share_even<T: Clone>(&self, items: &[T]) -> Vec<T> {
        super::shard_even(items, self.rank(), self.size())
    }

    /// Rank 0's `bytes` on every rank (rank 0 passes what it read, the others anything): how
    /// the ranks get a file only rank 0 reads (the run's config and checkpoint on resume), so
    /// that no rank but 0 needs the run folder. When rank 0's read failed, every rank fails:
    /// rank 0 with its error, the others saying so.
    pub fn from_rank0(&self, bytes: Result<Vec<u8>>) -> Result<Vec<u8>> {
        let Some(group) = self.group() else { return bytes };
        let length = match (&bytes, group.rank) {
            (Ok(b), 0) => b.len() as i64,
            (Err(_), 0) => -1,
            _ => 0,
        };
        let header = Tensor::from_slice(&[length]).to_device(group.device);
        group.broadcast(&[&header], 0)?;
        let length = i64::try_from(header.to_device(tch::Device::Cpu))?;
        if length < 0 {
            return match bytes {
                Err(e) if group.rank == 0 => Err(e),
                _ => anyhow::bail!("rank {}: rank 0 could not read what it shares (see its log)", group.rank),
            };
        }
        let data = match (&bytes, group.rank) {
            (Ok(b), 0) => Tensor::from_slice(b),
            _ => Tensor::zeros([length], (tch::Kind::Uint8, tch::Device::Cpu)),
        }
        .to_device(group.device);
        group.broadcast(&[&data], 0)?;
        Ok(Vec::<u8>::try_from(data.to_device(tch::Device::Cpu))?)
    }

    /// The checkpoint folder `find` gives on rank 0, readable on every rank: rank 0's own
    /// folder there, a copy of its files in a temporary folder on the others (sent from rank 0,
    /// [`Ranks::from_rank0`]; remove it with [`Ranks::done_with`] once restored).
    pub fn share_folder(&self, find: impl FnOnce() -> Result<PathBuf>) -> Result<PathBuf> {
        if self.rank() == 0 {
            let folder = find();
            let packed = folder.as_ref().map_err(|e| anyhow::anyhow!("{e:#}")).and_then(|f| pack(f));
            self.from_rank0(packed)?;
            return folder;
        }
        let packed = self.from_rank0(Ok(Vec::new()))?;
        let copy = std::env::temp_dir().join(format!("adl-shared-{}-rank{}", std::process::id(), self.rank()));
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).with_context(|| format!("creating {}", copy.display()))?;
        unpack(&packed, &copy)?;
        Ok(copy)
    }

    /// Removes the copy [`Ranks::share_folder`] made on this rank (nothing on rank 0).
    pub fn done_with(&self, folder: &Path) {
        if self.rank() != 0 {
            let _ = std::fs::remove_dir_all(folder);
        }
    }

    /// This rank's share of evaluation `items` (every item someone's, [`super::shard`]).
    pub fn share<T: Clone>(&self, items: &[T]) -> Vec<T> {
        super::shard(items, self.rank(), self.size())
    }
}

/// The files of `folder` (not its sub-folders) as one byte string: per file, its name's length
/// (u32, little endian), the name, its length (u64) and its bytes.
fn pack(folder: &Path) -> Result<Vec<u8>> {
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(folder).with_context(|| format!("listing {}", folder.display()))? {
        let path = entry?.path();
        if path.is_file() {
            names.push(path);
        }
    }
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Writes the files [`pack`] packed into `folder`.
fn unpack(mut packed: &[u8], folder: &Path) -> Result<()> {
    let mut take = |n: usize| -> Result<&[u8]> {
        anyhow::ensure!(packed.len() >= n, "a shared folder arrived truncated");
        let (head, rest) = packed.split_at(n);
        packed = rest;
        Ok(head)
    };
    loop {
        let Ok(length) = take(4) else { return Ok(()) };
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
        let name = String::from_utf8(take(length)?.to_vec()).context("a shared file's name")?;
        anyhow::ensure!(!name.contains('/') && name != ".." && !name.is_empty(), "a shared file named {name:?}");
        let size = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
        let bytes = take(size)?;
        std::fs::write(folder.join(&name), bytes)
            .with_context(|| format!("writing {}", folder.join(&name).display()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_folder_unpacks_to_the_same_files() {
        let root = std::env::temp_dir().join(format!("adl-pack-{}", std::process::id()));
        let (from, to) = (root.join("from"), root.join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join("a.json"), b"{\"x\": 1}").unwrap();
        std::fs::write(from.join("b.bin"), [0u8, 255, 7]).unwrap();
        std::fs::write(from.join("empty"), b"").unwrap();
        let packed = pack(&from).unwrap();
        unpack(&packed, &to).unwrap();
        for name in ["a.json", "b.bin", "empty"] {
            assert_eq!(std::fs::read(from.join(name)).unwrap(), std::fs::read(to.join(name)).unwrap(), "{name}");
        }
        assert!(!to.join("sub").exists(), "files only");
        assert!(unpack(&packed[..packed.len() - 1], &root.join("to")).is_err(), "truncated");
        std::fs::remove_dir_all(root).unwrap();
    }
}
