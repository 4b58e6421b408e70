//! Writing files (and checkpoint folders) atomically: into a temporary path beside the target,
//! then renamed over it, so that an interrupted run never leaves a truncated file behind and a
//! failed write never damages the previous version. The one helper every crate uses; it lives
//! here, in the crate that owns the project's file I/O, below `trellis` and `search`.

use std::io;
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

/// Creates `path` through `write`, which is given the temporary path to fill (a file, or a
/// folder it creates). On success the result replaces `path` (a folder replaces a folder); on
/// failure the temporary path is removed and `path` is left as it was.
pub fn write_atomic_with<E: From<io::Error>>(path: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), E> {
    let tmp = temporary(path);
    remove(&tmp)?;
    if let Err(e) = write(&tmp) {
        let _ = remove(&tmp);
        return Err(e);
    }
    if tmp.is_dir() && path.is_dir() {
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |tmp| std::fs::write(tmp, bytes))
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
