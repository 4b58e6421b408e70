//! `search compare --random-from DIR`: a comparison that takes over another comparison's
//! finished retrainings of the random draws instead of running them again (issue 24's protocol:
//! the random reference, 8 draws × 2 seeds, is the same for every searched network measured on
//! one data set with one recipe, so it is retrained once).
//!
//! Taking over is sound only when the runs would be the same: the same space (B, L), the same
//! draw seed, so the same architectures under the same names (checked file by file against the
//! reference's `architectures/`), and the same retraining config, data root included. Anything
//! else is refused, naming the keys that differ (`ComparePlan::check_reference`, with
//! [`differing_keys`]; this module names nothing of `tasks::compare`). The result files are copied into this
//! comparison's `results/` (atomically, never over one already there), so that the comparison
//! stays whole without the reference and resumes like any other; `plan.json` records where they
//! came from.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tracing::info;
use trellis::Architecture;

/// The dotted keys at which `a` and `b` differ (`data.root`, `iterations`), in `a`'s order and
/// then `b`'s.
pub fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    fn walk(a: Option<&serde_json::Value>, b: Option<&serde_json::Value>, key: &str, out: &mut Vec<String>) {
        match (a, b) {
            (Some(serde_json::Value::Object(x)), Some(serde_json::Value::Object(y))) => {
                let names = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
                for k in names {
                    let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                    walk(x.get(k), y.get(k), &sub, out);
                }
            }
            (x, y) if x != y => out.push(key.to_owned()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(Some(a), Some(b), "", &mut out);
    out
}

/// Copies the finished retrainings of `draws` (name, architecture) in the comparison folder
/// `reference` (`results/<name>-seed<k>.json`, k below `seeds`) into `results`, each draw after
/// checking that the reference's `architectures/<name>.json` holds the same cell and path, each
/// file after checking that it names that draw and seed; a result already in `results` is kept,
/// and a draw or seed the reference lacks is left to retrain. The caller checks the plans first.
pub fn take_over(reference: &Path, results: &Path, draws: &[(&str, &Architecture)], seeds: usize) -> Result<()> {
    let (mut taken, mut missing) = (0usize, 0usize);
    for &(name, architecture) in draws {
        let theirs = reference.join("architectures").join(format!("{name}.json"));
        if !theirs.is_file() {
            missing += seeds;
            continue;
        }
        let text = seg::limits::read_text(&theirs)?;
        let saved = Architecture::from_json(&text, &theirs.display().to_string())?;
        if (&saved.cell, &saved.path) != (&architecture.cell, &architecture.path) {
            bail!(
                "--random-from {}: {} holds another cell or path than this comparison draws for `{name}`",
                reference.display(),
                theirs.display()
            );
        }
        for k in 0..seeds {
            let file = format!("{name}-seed{k}.json");
            let (src, dst) = (reference.join("results").join(&file), results.join(&file));
            if dst.is_file() {
                continue;
            }
            let Ok(text) = seg::limits::read_text(&src) else {
                missing += 1;
                continue;
            };
            let result: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", src.display()))?;
            let (n, seed, miou) = (result["name"].as_str(), result["seed"].as_u64(), result["val_miou"].as_f64());
            if n != Some(name) || seed != Some(k as u64) || !miou.is_some_and(|m| (0.0..=1.0).contains(&m)) {
                bail!("{} is not `{name}`'s retraining with seed offset {k} and a val mIoU", src.display());
            }
            seg::atomic::write_atomic(&dst, text.as_bytes()).with_context(|| format!("writing {}", dst.display()))?;
            taken += 1;
        }
    }
    info!(reference = %reference.display(), taken, to_retrain = missing, "compare: random draws' retrainings taken over");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_that_differ_are_named() {
        let a = serde_json::json!({"iterations": 300, "data": {"root": "/a", "crop": "80x80"}, "lr": 0.05});
        let b = serde_json::json!({"iterations": 600, "data": {"root": "/b", "crop": "80x80"}, "extra": 1, "lr": 0.05});
        assert_eq!(differing_keys(&a, &b), ["iterations", "data.root", "extra"]);
        assert!(differing_keys(&a, &a).is_empty());
    }
}
