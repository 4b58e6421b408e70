//! Checkpoints: `checkpoints/step_NNNNNNNN/` folders holding named tensor files (safetensors),
//! `state.json` and `checksums.json` (the CRC-32 and size of every other file). A checkpoint is
//! written into a temporary folder and renamed into place, so a crash never leaves a
//! half-written one; the last `keep_last` are kept, and the best one (named in
//! `checkpoints/best`) is never removed. Before a checkpoint is resumed its checksums are
//! verified ([`Checkpoints::latest_verified`]): a damaged one is reported by name and the one
//! before it is used.

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
    /// False on the ranks of a distributed run other than 0, which read checkpoints only.
    writer: bool,
}

/// Named tensors of a store, sorted by name, on the CPU.
pub fn store_tensors(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect()
}

/// Writes named tensors as a safetensors file, atomically, its size checked against the size its
/// header declares (libtorch's writer does not report every failed write).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    seg::atomic::write_atomic_with(path, |tmp| -> Result<()> {
        Tensor::write_safetensors(&refs, tmp)?;
        check_safetensors_size(tmp)
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Checks that a safetensors file is as long as its header says: 8 bytes, the header, and the
/// end of the last tensor's data.
pub fn check_safetensors_size(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut head = vec![0u8; 8];
    file.read_exact(&mut head).with_context(|| format!("{}: {size} bytes, not a safetensors file", path.display()))?;
    let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    anyhow::ensure!(len <= size.saturating_sub(8), "{}: truncated ({size} bytes, header of {len})", path.display());
    head.resize(8 + len as usize, 0);
    file.read_exact(&mut head[8..])?;
    check_declared_size(path, &head, size)
}

/// Checks that a safetensors file of `size` bytes, which starts with `head` (its 8-byte length
/// and at least its header), is as long as that header declares.
fn check_declared_size(path: &Path, head: &[u8], size: u64) -> Result<()> {
    let len = head.get(..8).map_or(0, |l| u64::from_le_bytes(l.try_into().expect("8 bytes")));
    let header = head
        .get(8..8usize.saturating_add(len as usize))
        .with_context(|| format!("{}: truncated ({size} bytes, header of {len})", path.display()))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .with_context(|| format!("{}: the safetensors header is not JSON", path.display()))?;
    let end = header.values().filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64()).max().unwrap_or(0);
    anyhow::ensure!(
        size == 8 + len + end,
        "{}: {size} bytes where its header declares {} (truncated or damaged)",
        path.display(),
        8 + len + end
    );
    Ok(())
}

/// The metadata key of a weights file's checksum: the CRC-32 (8 hex digits) of the whole file
/// as written with this value set to `00000000`, so that it covers the header and every tensor.
pub const CHECKSUM_KEY: &str = "checksum_crc32";
pub const CHECKSUM_PLACEHOLDER: &str = "00000000";

/// Where the checksum's 8 hex digits sit in a weights file's bytes, if it carries one.
fn checksum_position(bytes: &[u8]) -> Option<usize> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = bytes.get(8..8usize.checked_add(len)?)?;
    let needle = format!("\"{CHECKSUM_KEY}\":\"");
    let at = header.windows(needle.len()).position(|w| w == needle.as_bytes())?;
    let start = 8 + at + needle.len();
    (bytes.len() >= start + 8).then_some(start)
}

fn checksum_of(bytes: &[u8], position: usize) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..position]);
    hasher.update(CHECKSUM_PLACEHOLDER.as_bytes());
    hasher.update(&bytes[position + 8..]);
    hasher.finalize()
}

/// Verifies the checksum of a weights file that carries one (the weights a retraining writes;
/// a file without one, from elsewhere, is accepted as it is), and its size against its header.
pub fn verify_checksum(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    check_declared_size(path, &bytes, bytes.len() as u64)?;
    let Some(position) = checksum_position(&bytes) else { return Ok(()) };
    let stored =
        std::str::from_utf8(&bytes[position..position + 8]).ok().and_then(|hex| u32::from_str_radix(hex, 16).ok());
    let found = checksum_of(&bytes, position);
    if stored != Some(found) {
        anyhow::bail!(
            "{} does not match its checksum (crc32 {found:08x}, recorded {}): the file is damaged; use a checkpoint \
             of the run (checkpoints/) or retrain",
            path.display(),
            String::from_utf8_lossy(&bytes[position..position + 8])
        );
    }
    Ok(())
}

/// Writes the checksum into the bytes of a weights file whose metadata holds
/// [`CHECKSUM_KEY`] = [`CHECKSUM_PLACEHOLDER`].
pub fn stamp_checksum(bytes: &mut [u8]) {
    let position = checksum_position(bytes).expect("the checksum placeholder is in the header");
    let sum = format!("{:08x}", checksum_of(bytes, position));
    bytes[position..position + 8].copy_from_slice(sum.as_bytes());
}

/// Reads a safetensors file into a map.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect())
}

/// Copies the tensors of `path` into the variables of `vs` (every variable must be there, with
/// its shape). A file that carries a checksum in its metadata (the weights a retraining writes)
/// is verified first; every value read must be finite.
pub fn load_store(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    if !path.is_file() {
        anyhow::bail!("{}: no such file", path.display());
    }
    verify_checksum(path)?;
    vs.load(path).with_context(|| format!("loading {} (is it from a network of this shape?)", path.display()))?;
    for (name, tensor) in vs.variables() {
        anyhow::ensure!(
            tensor.isfinite().all().int64_value(&[]) != 0,
            "{}: tensor `{name}` holds NaN or infinite values",
            path.display()
        );
    }
    Ok(())
}

impl Checkpoints {
    /// The checkpoints under `dir` (created by the first save).
    pub fn new(dir: PathBuf, keep_last: usize) -> Result<Checkpoints> {
        Ok(Checkpoints { dir, keep_last: keep_last.max(1), writer: true })
    }

    /// These checkpoints, read but never written (a distributed rank other than 0).
    pub fn reading_only(self) -> Checkpoints {
        Checkpoints { writer: false, ..self }
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
        if !self.writer {
            return Ok(target);
        }
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let state = serde_json::to_string_pretty(state)?;
        seg::atomic::write_atomic_with(&target, |tmp| -> Result<()> {
            std::fs::create_dir(tmp)?;
            let mut names = vec!["state.json".to_owned()];
            for (file, tensors) in files {
                let name = format!("{file}.safetensors");
                write_tensors(&tmp.join(&name), tensors)?;
                names.push(name);
            }
            seg::atomic::write_inside(&tmp.join("state.json"), state.as_bytes())?;
            let sums: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|name| Ok((name.clone(), serde_json::to_value(FileSum::of(&tmp.join(name))?)?)))
                .collect::<Result<_>>()?;
            Ok(seg::atomic::write_inside(&tmp.join(CHECKSUMS), serde_json::to_string_pretty(&sums)?.as_bytes())?)
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

    /// The most recent checkpoint whose files match their checksums. A damaged one is named in a
    /// warning and skipped for the one before it; an error when none is intact.
    pub fn latest_verified(&self) -> Result<Option<PathBuf>> {
        let steps = self.steps()?;
        for (i, &step) in steps.iter().enumerate().rev() {
            let path = self.dir.join(Self::name(step));
            match verify(&path) {
                Ok(()) => return Ok(Some(path)),
                Err(e) if i > 0 => {
                    tracing::warn!(checkpoint = %path.display(), "damaged checkpoint ({e:#}); falling back to the one before it")
                }
                Err(e) => return Err(e.context(format!("no intact checkpoint in {}", self.dir.display()))),
            }
        }
        Ok(None)
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

/// The file of a checkpoint that holds the checksums of the others.
pub const CHECKSUMS: &str = "checksums.json";

/// The CRC-32 and size of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
struct FileSum {
    crc32: u32,
    bytes: u64,
}

impl FileSum {
    fn of(path: &Path) -> Result<FileSum> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(FileSum { crc32: crc32fast::hash(&data), bytes: data.len() as u64 })
    }
}

/// Checks every file of `checkpoint` against its `checksums.json`.
pub fn verify(checkpoint: &Path) -> Result<()> {
    let path = checkpoint.join(CHECKSUMS);
    let text = seg::limits::read_text(&path).with_context(|| format!("reading {}", path.display()))?;
    let sums: HashMap<String, FileSum> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(!sums.is_empty(), "{} lists no file", path.display());
    for (name, expected) in sums {
        let file = checkpoint.join(&name);
        let found = FileSum::of(&file)?;
        anyhow::ensure!(
            found == expected,
            "{} does not match its checksum (crc32 {:08x} of {} bytes, expected {:08x} of {})",
            file.display(),
            found.crc32,
            found.bytes,
            expected.crc32,
            expected.bytes
        );
    }
    Ok(())
}

/// Reads `state.json` of a checkpoint.
pub fn read_state<T: DeserializeOwned>(checkpoint: &Path) -> Result<T> {
    let path = checkpoint.join("state.json");
    let text = seg::limits::read_text(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
