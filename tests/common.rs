//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use seg::data::{generate, SynthConfig, SynthTask};
use tch::{Kind, Tensor};

/// Whether `t` has a gradient that is finite everywhere and not all zero.
pub fn has_useful_gradient(t: &Tensor) -> bool {
    search::smoke::has_useful_gradient(t)
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    f64::try_from((a - b).abs().max().to_kind(Kind::Double)).unwrap()
}

/// Total number of elements of the trainable variables of a store.
pub fn trainable_numel(vs: &tch::nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

// The `search` binary on tiny configs, for the end-to-end tests.

pub fn repo(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel).display().to_string()
}

/// A fresh folder path `adl-test-<pid>-<name>` in the temp folder (removed if there). The first
/// call of a test process also sweeps away the folders earlier test processes left behind.
pub fn temp(name: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| sweep_stale(&std::env::temp_dir()));
    let dir = std::env::temp_dir().join(format!("adl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The prefixes of the tests' temp folders, each followed by the test process's pid.
const TEMP_PREFIXES: [&str; 5] = ["adl-test-", "adl-seg-", "adl-eval-", "adl-config-", "adl-cli-random-"];

/// Removes the tests' temp folders (and files) in `root` whose process is gone (no `/proc/<pid>`): a test
/// that fails, is killed, or does not clean up leaves its data sets and runs behind, and on a
/// machine whose disk CI shares they add up (1.1 GB over one day's runs here). Folders of live
/// processes (this one, a test binary running beside it) are left alone; without `/proc` nothing
/// is removed.
pub fn sweep_stale(root: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = TEMP_PREFIXES.iter().find_map(|p| name.strip_prefix(p)).and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let after = &rest[digits.len()..];
            (!digits.is_empty() && (after.is_empty() || after.starts_with('-'))).then_some(digits)
        });
        if let Some(pid) = pid {
            if !Path::new("/proc").join(&pid).exists() {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let _ = if is_dir { std::fs::remove_dir_all(entry.path()) } else { std::fs::remove_file(entry.path()) };
            }
        }
    }
}

pub fn data(name: &str, train: usize, size: (u32, u32)) -> PathBuf {
    let root = temp(name);
    generate(&root, &SynthConfig { seed: 1, train, val: 2, width: size.0, height: size.1, task: SynthTask::Street })
        .unwrap();
    root
}

pub fn search(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_search")).args(args).output().unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn err(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn tiny_search(root: &Path, out: &Path, extra: &[&str]) -> Output {
    search_with(&repo("configs/tiny-search.toml"), root, out, extra)
}

/// `search run` of the config file `config` on `root` into `out`, one thread on the CPU.
pub fn search_with(config: &str, root: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--threads", "1", "run", "--config", config, "--device", "cpu"];
    let (root, out) = (root.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--data", root, "--out", out]);
    args.extend(extra);
    search(&args)
}

pub fn tiny_train(root: &Path, out: &Path, extra: &[&str]) -> Output {
    tiny_train_arch("paper", root, out, extra)
}

/// [`tiny_train`] of the architecture `arch` (a file or `paper`).
pub fn tiny_train_arch(arch: &str, root: &Path, out: &Path, extra: &[&str]) -> Output {
    let config = repo("configs/tiny-retrain.toml");
    let (root, out) = (root.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["--threads", "1", "train", "--arch", arch, "--config", &config, "--device", "cpu"];
    args.extend(["--data", root, "--out", out]);
    args.extend(extra);
    search(&args)
}

/// `search predict` of the trained network `weights` on `input` into `out`, in `format`, on
/// the CPU.
pub fn predict(weights: &Path, input: &Path, out: &Path, format: &str) -> Output {
    let (weights, input, out) = (weights.to_str().unwrap(), input.to_str().unwrap(), out.to_str().unwrap());
    search(&[
        "predict",
        "--weights",
        weights,
        "--input",
        input,
        "--out",
        out,
        "--output-format",
        format,
        "--device",
        "cpu",
    ])
}

pub fn tensors(path: &Path) -> Vec<(String, tch::Tensor)> {
    let mut t = tch::Tensor::read_safetensors(path).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}
