//! Build script shared by every crate of the workspace that links libtorch (each names it
//! with `build = "../torch-link.rs"`). See docs/setup.md.
//!
//! - Adds an rpath to the libtorch that torch-sys built against, so the `search` binary and
//!   every test executable run without `LD_LIBRARY_PATH`.
//! - Keeps `libtorch_cuda.so` as a needed library. Nothing in our code references a symbol of
//!   it, so the default `--as-needed` link would drop it and CUDA would silently be
//!   unavailable on a GPU machine (tch-rs issues 177, 329, 907, 980).
//! - Exports `ADL_LIBTORCH_VERSION` (from `torch/version.py`) and `ADL_TCH_VERSION` (from
//!   Cargo.lock) for `search env`, and `ADL_GIT_COMMIT` (the commit built, "unknown" outside a
//!   clone) for the provenance records of runs.

use std::path::Path;

pub fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not export its libtorch directory: depend on torch-sys directly");
    let lib_dir = Path::new(&lib);
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }

    let version_py = lib_dir.join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let libtorch_version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("__version__ = ").map(|v| v.trim().trim_matches('\'').trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ADL_LIBTORCH_VERSION={libtorch_version}");
    println!("cargo:rustc-env=ADL_LIBTORCH_LIB={lib}");

    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let lock = Path::new(&manifest).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let tch_version = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line.trim() == "name = \"tch\"" {
                    return lines
                        .next()
                        .and_then(|v| v.trim().strip_prefix("version = ").map(|v| v.trim_matches('"').to_owned()));
                }
            }
            None
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ADL_TCH_VERSION={tch_version}");

    // The commit the binary is built from, for the provenance records of runs (git's files are
    // watched so that a new commit rebuilds it; "unknown" outside a clone).
    let git = Path::new(&manifest).join("../../.git");
    for watched in ["HEAD", "index"] {
        println!("cargo:rerun-if-changed={}", git.join(watched).display());
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&manifest)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ADL_GIT_COMMIT={commit}");
}
