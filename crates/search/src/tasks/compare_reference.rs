//! `search compare --random-from DIR`: a comparison that takes over another comparison's
//! finished retrainings of the random draws instead of running them again (issue 24's protocol:
//! the random reference, 8 draws × 2 seeds, is the same for every searched network measured on
//! one data set with one recipe, so it is retrained once).
//!
//! Taking over is sound only when the runs would be the same: the same space (B, L), the same
//! draw seed, so the same architectures under the same names (checked file by file against the
//! reference's `architectures/`), and the same retraining config, data root included. Anything
//! else is refused, naming the keys that differ. The result files are copied into this
//! comparison's `results/` (atomically, never over one already there), so that the comparison
//! stays whole without the reference and resumes like any other; `plan.json` records where they
//! came from.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tracing::info;
use trellis::Architecture;

use crate::tasks::compare::{ComparePlan, Entry, EntryKind, UnitResult};

/// The plan of the comparison in `dir`, checked.
pub fn read_plan(dir: &Path) -> Result<ComparePlan> {
    let path = dir.join("plan.json");
    let text = seg::limits::read_text(&path).with_context(|| {
        format!("--random-from {}: reading {} (is it a comparison folder?)", dir.display(), path.display())
    })?;
    let plan: ComparePlan = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    plan.validate().with_context(|| format!("checking {}", path.display()))?;
    Ok(plan)
}

/// Refuses a reference whose random draws' retrainings would not be this plan's: another space,
/// draw seed or retraining config (the differing keys named).
pub fn check(plan: &ComparePlan, reference: &ComparePlan, dir: &Path) -> Result<()> {
    let name = dir.display();
    if (plan.blocks, plan.layers) != (reference.blocks, reference.layers) {
        bail!(
            "--random-from {name}: its space has B = {} and L = {}, this comparison's B = {} and L = {}",
            reference.blocks,
            reference.layers,
            plan.blocks,
            plan.layers
        );
    }
    if plan.draw_seed != reference.draw_seed {
        bail!(
            "--random-from {name}: its random architectures were drawn with --seed {}, this comparison's with --seed {}",
            reference.draw_seed,
            plan.draw_seed
        );
    }
    let keys = differing_keys(&serde_json::to_value(&plan.retrain)?, &serde_json::to_value(&reference.retrain)?);
    if !keys.is_empty() {
        bail!(
            "--random-from {name}: its retraining config differs in {}; its runs would not be this comparison's \
             (give the same --retrain-config, --set-retrain and --data, or retrain the random draws here)",
            keys.join(", ")
        );
    }
    Ok(())
}

/// The dotted keys at which `a` and `b` differ (`data.root`, `iterations`), in `a`'s order and
/// then `b`'s.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
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

/// Copies the reference's finished retrainings of the random `entries` (`<name>-seed<k>.json`
/// for the seeds `plan` has) into `results`, each after checking that the reference's
/// `architectures/<name>.json` holds the same cell and path; a result already in `results` is
/// kept. A draw or seed the reference lacks is left to retrain.
pub fn import_random(reference: &Path, results: &Path, entries: &[Entry], plan: &ComparePlan) -> Result<()> {
    let randoms: Vec<&Entry> = entries.iter().filter(|e| e.kind == EntryKind::Random).collect();
    let file = |e: &Entry, k: usize| results.join(format!("{}-seed{k}.json", e.name));
    let seeds = plan.random_seeds();
    if randoms.iter().all(|e| (0..seeds).all(|k| file(e, k).is_file())) {
        return Ok(());
    }
    check(plan, &read_plan(reference)?, reference)?;
    let (mut taken, mut missing) = (0usize, 0usize);
    for e in randoms {
        let theirs = reference.join("architectures").join(format!("{}.json", e.name));
        if !theirs.is_file() {
            missing += seeds;
            continue;
        }
        let text = seg::limits::read_text(&theirs)?;
        let saved = Architecture::from_json(&text, &theirs.display().to_string())?;
        if (&saved.cell, &saved.path) != (&e.architecture.cell, &e.architecture.path) {
            bail!(
                "--random-from {}: {} holds another cell or path than this comparison draws for `{}`",
                reference.display(),
                theirs.display(),
                e.name
            );
        }
        for k in 0..seeds {
            let (src, dst) = (reference.join("results").join(format!("{}-seed{k}.json", e.name)), file(e, k));
            if dst.is_file() {
                continue;
            }
            let Ok(text) = seg::limits::read_text(&src) else {
                missing += 1;
                continue;
            };
            let result: UnitResult =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", src.display()))?;
            if result.name != e.name || result.seed != k as u64 {
                bail!("{} is not `{}`'s retraining with seed offset {k}", src.display(), e.name);
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
