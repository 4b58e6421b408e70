//! The full-disk faults (docs/reliability.md), on a small file system this test mounts (a 2 MiB
//! tmpfs; skipped with a printed reason where it cannot: not root, or no mount in the sandbox).
//! A full disk is an error naming the file, never an exit 0 over 0-byte files, and it never
//! replaces a good file with a broken one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{data, err, ok, search, temp, tiny_train};

/// A tmpfs of `mib` MiB mounted at a fresh folder, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(name: &str, mib: u32) -> Result<SmallDisk, String> {
        let dir = temp(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs", dir.to_str().unwrap()])
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(SmallDisk(dir))
    }

    /// Fills the disk, leaving `keep` bytes free at most.
    fn fill(&self, keep: u64) {
        let filler = self.0.join("filler");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            let free = free_bytes(&self.0);
            if free <= keep {
                break;
            }
            let n = (free - keep).min(chunk.len() as u64) as usize;
            if std::io::Write::write_all(&mut file, &chunk[..n]).is_err() {
                break;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df").args(["--output=avail", "-B1", path.to_str().unwrap()]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or(0)
}

/// Every file under `dir` with its size.
fn sizes(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push((path.clone(), std::fs::metadata(&path).unwrap().len()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_full_disk_is_an_error_and_never_leaves_broken_files() {
    let disk = match SmallDisk::mount("diskfull", 2) {
        Ok(disk) => disk,
        Err(reason) => {
            println!("skipped: no small file system to fill ({reason})");
            return;
        }
    };
    let root = data("diskfull-data", 6, (64, 48));
    let run = temp("diskfull-run");
    ok(&tiny_train(&root, &run, &[]));
    let images = root.join("leftImg8bit/val");
    // Predictions written while there is room, then again on the full disk: an error naming
    // ENOSPC, and the previous predictions are kept whole.
    let out = disk.0.join("pred");
    for format in ["labelids", "color"] {
        ok(&common::predict(&run, &images, &out, format));
    }
    let before = sizes(&out);
    assert!(before.iter().all(|(_, n)| *n > 0));
    disk.fill(0);
    for format in ["labelids", "color", "logits"] {
        let e = err(&common::predict(&run, &images, &out, format));
        assert!(e.contains("No space left") || e.contains("disk full") || e.contains("0 bytes"), "{format}: {e}");
    }
    let after: Vec<_> = sizes(&out).into_iter().filter(|(p, _)| !p.to_string_lossy().ends_with(".npy")).collect();
    assert_eq!(after, before, "the previous predictions are kept, byte counts and all");
    // A data set written to the full disk: exit 1 and no empty file.
    let voc = disk.0.join("voc");
    let e = err(&search(&[
        "synth",
        "--format",
        "voc",
        "--train",
        "4",
        "--val",
        "2",
        "--size",
        "64x48",
        "--out",
        voc.to_str().unwrap(),
    ]));
    assert!(!e.is_empty());
    if voc.exists() {
        assert!(sizes(&voc).iter().all(|(_, n)| *n > 0), "no 0-byte file: {:?}", sizes(&voc));
    }
    // An export to the full disk is refused before it writes (libtorch would abort).
    let exported = disk.0.join("exported");
    let e = err(&search(&[
        "export",
        "--weights",
        run.to_str().unwrap(),
        "--output-format",
        "torchscript",
        "--out",
        exported.to_str().unwrap(),
    ]));
    assert!(e.contains("free") && e.contains("needs about"), "{e}");
    assert!(!exported.exists() && !disk.0.join("exported.tmp").exists(), "nothing partial is left");
    std::fs::remove_dir_all(&run).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

/// The tests' temp folders and files of processes that are gone are swept away (a dead pid above any
/// pid_max), those of live processes and other folders are kept.
#[test]
fn stale_test_folders_are_swept() {
    let root = temp("sweep");
    let dead = root.join("adl-test-999999999-run");
    let dead_bare = root.join("adl-config-999999999");
    let live = root.join(format!("adl-eval-{}-data", std::process::id()));
    let other = root.join("adl-test-notapid-x");
    for dir in [&dead, &dead_bare, &live, &other] {
        std::fs::create_dir_all(dir.join("inside")).unwrap();
    }
    let dead_file = root.join("adl-test-999999999-table.json");
    std::fs::write(&dead_file, "{}").unwrap();
    common::sweep_stale(&root);
    assert!(!dead.exists() && !dead_bare.exists(), "the dead process's folders are removed");
    assert!(!dead_file.exists(), "and its files");
    assert!(live.exists() && other.exists(), "a live process's folder and a foreign one are kept");
    let _ = std::fs::remove_dir_all(root);
}
