//! Writing files (and checkpoint folders) atomically: into a temporary path beside the target,
//! then renamed over it, so that an interrupted run never leaves a truncated file behind and a
//! failed write never damages the previous version. The one helper every crate uses; it lives
//! here, in the crate that owns the project's file I/O, below `trellis` and `search`.
//!
//! Every write is checked before the rename: the data is flushed to the disk (`fsync`, which is
//! where a full disk shows on file systems that allocate late), and the file's size is compared
//! with what was written ([`write_atomic`]), or, for files a library writes itself
//! ([`write_atomic_with`]), every file must hold at least one byte. So a full disk is an error
//! naming the file, never a 0-byte file in place of a good one.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary path of `path`: `<path>.tmp`, in the same folder (so the rename is atomic).
fn temporary(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The temporary paths being written now, so that a process ending on a signal can remove them
/// ([`remove_unfinished`]) instead of leaving half a file on the disk.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Marks `tmp` as being written while alive.
struct Unfinished(PathBuf);

impl Unfinished {
    fn mark(tmp: &Path) -> Unfinished {
        UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).push(tmp.to_owned());
        Unfinished(tmp.to_owned())
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let mut list = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = list.iter().rposition(|p| *p == self.0) {
            list.remove(at);
        }
    }
}

/// Set once the process is about to exit on a signal: no new write starts.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Writes in progress (a folder and the files written inside it count once each).
static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One write in progress, from before its temporary path exists until after its rename.
struct InFlight;

impl InFlight {
    fn begin() -> io::Result<InFlight> {
        use std::sync::atomic::Ordering::SeqCst;
        IN_FLIGHT.fetch_add(1, SeqCst);
        if STOPPING.load(SeqCst) {
            IN_FLIGHT.fetch_sub(1, SeqCst);
            return Err(io::Error::new(io::ErrorKind::Interrupted, "the process is stopping on a signal"));
        }
        Ok(InFlight)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// For a process about to exit on a signal: no new write starts, the writes in progress are
/// given up to `wait` to finish (each then stands complete under its own name), and the
/// temporary paths of any still unfinished are removed; returns how many were removed.
pub fn stop_writes(wait: std::time::Duration) -> usize {
    use std::sync::atomic::Ordering::SeqCst;
    STOPPING.store(true, SeqCst);
    let start = std::time::Instant::now();
    while IN_FLIGHT.load(SeqCst) > 0 && start.elapsed() < wait {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    remove_unfinished()
}

/// Removes every temporary path being written now (for a process about to exit on a signal);
/// returns how many there were.
fn remove_unfinished() -> usize {
    let list = match UNFINISHED.try_lock() {
        Ok(list) => list.clone(),
        Err(_) => return 0,
    };
    for path in &list {
        let _ = remove(path);
    }
    list.len()
}

/// Flushes `path` (a file, or every file of a folder) to the disk and checks that no file is
/// empty: a library that writes through a buffer it never flushes with a check (image
/// encoders, libtorch) leaves 0 bytes on a full disk and reports nothing.
fn settle(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            settle(&entry?.path())?;
        }
        return Ok(());
    }
    std::fs::File::open(path)?.sync_all()?;
    if std::fs::metadata(path)?.len() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("{} was written with 0 bytes (is the disk full?)", path.display()),
        ));
    }
    Ok(())
}

/// Creates `path` through `write`, which is given the temporary path to fill (a file, or a
/// folder it creates). The result is flushed to the disk and must hold no empty file; then it
/// replaces `path` (a folder replaces a folder). On failure the temporary path is removed and
/// `path` is left as it was.
pub fn write_atomic_with<E: From<io::Error>>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let _in_flight = InFlight::begin()?;
    ensure_parent(path)?;
    let tmp = temporary(path);
    remove(&tmp)?;
    let _unfinished = Unfinished::mark(&tmp);
    if let Err(e) = write(&tmp) {
        let _ = remove(&tmp);
        return Err(e);
    }
    if let Err(e) = settle(&tmp) {
        let _ = remove(&tmp);
        return Err(e.into());
    }
    if tmp.is_dir() && path.is_dir() {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates the folder `path` goes into when it is missing: a run folder whose parts were
/// removed while it ran (`arch/`, `checkpoints/`) gets its layout back instead of losing the
/// file being written.
fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `file` at `path`, flushes them to the disk and checks the file's size.
fn write_checked(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let written = std::fs::metadata(path)?.len();
    if written != bytes.len() as u64 {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("{} holds {written} bytes after writing {} (is the disk full?)", path.display(), bytes.len()),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, its size checked after the write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _in_flight = InFlight::begin()?;
    ensure_parent(path)?;
    let tmp = temporary(path);
    remove(&tmp)?;
    let _unfinished = Unfinished::mark(&tmp);
    if let Err(e) = write_checked(&tmp, bytes) {
        let _ = remove(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` as a file inside a folder being filled by [`write_atomic_with`], its size
/// checked after the write (no temporary path of its own: the folder is the unit).
pub fn write_inside(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_checked(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_files_and_folders_and_keeps_the_old_on_failure() {
        let dir = std::env::temp_dir().join(format!("adl-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let failed: io::Result<()> = write_atomic_with(&file, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"two", "a failed write leaves the old file");
        assert!(!temporary(&file).exists(), "and no temporary file");
        let folder = dir.join("checkpoint");
        for content in [b"x", b"y"] {
            write_atomic_with(&folder, |tmp| {
                std::fs::create_dir(tmp)?;
                std::fs::write(tmp.join("state.json"), content)
            })
            .unwrap();
        }
        assert_eq!(std::fs::read(folder.join("state.json")).unwrap(), b"y");
        let empty: io::Result<()> = write_atomic_with(&file, |tmp| std::fs::write(tmp, b""));
        assert!(empty.unwrap_err().to_string().contains("0 bytes"), "an empty file is an error");
        assert_eq!(std::fs::read(&file).unwrap(), b"two", "and keeps the old file");
        let empty_inside: io::Result<()> = write_atomic_with(&folder, |tmp| {
            std::fs::create_dir(tmp)?;
            std::fs::write(tmp.join("state.json"), b"")
        });
        assert!(empty_inside.is_err(), "an empty file inside a folder is an error");
        assert_eq!(std::fs::read(folder.join("state.json")).unwrap(), b"y");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
