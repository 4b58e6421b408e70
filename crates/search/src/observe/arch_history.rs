//! `arch/history.jsonl` of a search run: one line per epoch with softmax(α), normalised β and
//! their entropies, written by the search (`crate::tasks::search_run`) and read by the pictures
//! (`crate::observe::plots`).

use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};
use trellis::ArchWeights;

use crate::store::rundir::RunDir;

/// One line per epoch in `arch/history.jsonl`: softmax(α) and normalised β, for the pictures.
/// `weights` are the ones decisions are read from (`ArchParams::decision_weights`, at τ = 1),
/// so that the pictures show what decoding, the margins and the metrics' entropies read, not the
/// annealed mixture the supernet trains on (`[arch.temperature]`).
pub fn append(dir: &RunDir, epoch: usize, weights: &ArchWeights) -> Result<()> {
    let to_vec = |t: &Tensor| {
        Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1)).expect("doubles")
    };
    let entropies = weights.entropies();
    let line = serde_json::json!({
        "epoch": epoch,
        "alpha_entropy": entropies.alpha,
        "beta_entropy": entropies.beta,
        "alpha": to_vec(&weights.alpha).chunks(8).map(|c| c.to_vec()).collect::<Vec<_>>(),
        "beta": to_vec(&weights.beta).chunks(12).map(|l| l.chunks(3).map(|c| c.to_vec()).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let path = dir.path("arch/history.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    // Drop a line for this epoch left by a run that died before its checkpoint.
    text = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["epoch"].as_u64()) != Some(epoch as u64)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let recorded: std::collections::BTreeSet<u64> =
        text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["epoch"].as_u64()).collect();
    let missing: Vec<String> = (0..epoch as u64).filter(|e| !recorded.contains(e)).map(|e| e.to_string()).collect();
    if !missing.is_empty() {
        tracing::warn!(
            file = %path.display(),
            "the history lacks epoch(s) {} (removed while the run ran?): it and the pictures drawn from it \
             cover the other epochs only",
            missing.join(", ")
        );
    }
    text.push_str(&format!("{line}\n"));
    seg::atomic::write_atomic(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Reads `arch/history.jsonl` of a run folder.
pub fn read(root: &Path) -> Result<Vec<serde_json::Value>> {
    let path = root.join("arch/history.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines().map(|l| serde_json::from_str(l).with_context(|| format!("parsing {}", path.display()))).collect()
}
