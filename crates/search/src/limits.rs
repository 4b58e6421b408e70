//! The one set of limits, checked before any work starts: values a config or flag may hold
//! that no machine this tool runs on could finish (a 10000-layer supernet, 10^11 random draws,
//! 64 ranks on 2 cores). Each refusal names the key or flag, its value and the limit. File
//! readers have their own, looser bounds on what they parse (`cell::genotype::MAX_BLOCKS`,
//! `trellis::path::MAX_LAYERS`, `seg::limits`).

use anyhow::{bail, Result};

use crate::config::Invalid;

/// Layers L of a network built from a config (the paper: 12). Decoded paths read from files may
/// be longer ([`trellis::path::MAX_LAYERS`]), but no network that deep is built.
pub const MAX_LAYERS: usize = 64;
/// Blocks B of a cell (the paper: 5; the edges, and the supernet's cost, grow as B²).
pub const MAX_BLOCKS: usize = 16;
/// The filter multiplier F (the paper: 8, 20, 48).
pub const MAX_FILTER_MULTIPLIER: i64 = 1024;
/// Classes: train ids are bytes and 255 marks ignored pixels.
pub const MAX_CLASSES: i64 = 255;
/// A side of the training crop, in pixels.
pub const MAX_CROP_SIDE: u32 = 8192;
/// Images per step and rank.
pub const MAX_BATCH: usize = 4096;
/// Loader threads and batches read ahead.
pub const MAX_WORKERS: usize = 256;
/// Random architectures drawn by one command.
pub const MAX_RANDOM_DRAWS: usize = 1_000_000;
/// The least memory one rank needs (a tiny run's resident size is about 300 MiB).
pub const MIB_PER_RANK: u64 = 400;

/// `Err` naming `key` when `value` exceeds `limit`.
pub fn at_most<T: PartialOrd + std::fmt::Display>(key: &str, value: T, limit: T, why: &str) -> Result<(), Invalid> {
    if value > limit {
        return Err(Invalid::new(key, format!("{value} is over the limit of {limit} ({why})")));
    }
    Ok(())
}

/// The model's sizes: layers, blocks, F and classes.
pub fn check_model(layers: usize, blocks: usize, filter_multiplier: i64, classes: i64) -> Result<(), Invalid> {
    at_most("layers", layers, MAX_LAYERS, "the paper searches 12")?;
    at_most("blocks", blocks, MAX_BLOCKS, "the paper's cells have 5")?;
    at_most("filter_multiplier", filter_multiplier, MAX_FILTER_MULTIPLIER, "the paper's widest network has 48")?;
    at_most("classes", classes, MAX_CLASSES, "labels are bytes and 255 marks ignored pixels")
}

/// The data's sizes: crop, batch, workers and prefetch.
pub fn check_data(crop: [u32; 2], batch: usize, workers: usize, prefetch: usize) -> Result<(), Invalid> {
    at_most("transform.crop", crop[0].max(crop[1]), MAX_CROP_SIDE, "pixels per side")?;
    at_most("loader.batch", batch, MAX_BATCH, "images per step and rank")?;
    at_most("loader.workers", workers, MAX_WORKERS, "loader threads")?;
    at_most("loader.prefetch", prefetch, MAX_WORKERS, "batches read ahead")
}

/// Memory this machine has available, in MiB (`MemAvailable`), if known.
fn available_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// `--nproc-per-node n` against this machine: at most one rank per core, and each with
/// [`MIB_PER_RANK`] of the memory available.
pub fn check_ranks(n: usize) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if n > cores {
        bail!(
            "--nproc-per-node {n} is over this machine's {cores} cores: start at most one rank per core \
             (each rank computes with its own threads)"
        );
    }
    if let Some(free) = available_mib() {
        let needed = n as u64 * MIB_PER_RANK;
        if needed > free {
            bail!(
                "--nproc-per-node {n} needs about {needed} MiB ({MIB_PER_RANK} MiB per rank at the least), \
                 and this machine has {free} MiB available"
            );
        }
    }
    Ok(())
}

/// The number of random architectures one command draws.
pub fn check_draws(flag: &str, n: usize) -> Result<()> {
    if n > MAX_RANDOM_DRAWS {
        bail!("{flag} {n} is over the limit of {MAX_RANDOM_DRAWS} random architectures");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_the_key_the_value_and_the_limit() {
        let e = check_model(10000, 5, 8, 19).unwrap_err();
        assert_eq!(e.key, "layers");
        assert!(e.message.contains("10000") && e.message.contains("64"), "{}", e.message);
        assert!(check_model(12, 5, 20, 19).is_ok());
        assert!(check_model(12, 5, 20, 256).is_err());
        let e = check_data([64, 100000], 4, 2, 4).unwrap_err();
        assert_eq!(e.key, "transform.crop");
        assert!(e.message.contains("100000"), "{}", e.message);
        let e = check_ranks(100_000).unwrap_err().to_string();
        assert!(e.contains("--nproc-per-node 100000") && e.contains("cores"), "{e}");
        assert!(check_draws("--n", 99_999_999_999).unwrap_err().to_string().contains("99999999999"));
    }
}
