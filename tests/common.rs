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

pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
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
