//! Architectures drawn at random from the search space: the baseline a search has to beat
//! (a NAS method is only worth its cost if it picks better networks than chance from the same
//! space). Each architecture has the space's B and L; each block two distinct predecessor
//! inputs with a non-`none` op on each (`cell::Genotype::random`), and the path is uniform over
//! all valid paths (`trellis::NetworkPath::random`). The same seed draws the same
//! architectures.

use std::path::Path;

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use trellis::{Architecture, NetworkPath, SearchNetworkConfig};

/// `n` architectures of `space`'s shape (its `blocks` and `layers`), drawn from `seed`.
pub fn draw(space: &SearchNetworkConfig, n: usize, seed: u64) -> Vec<Architecture> {
    draws(space, seed).take(n).collect()
}

/// The endless sequence of draws [`draw`] takes its first `n` from.
pub fn draws(space: &SearchNetworkConfig, seed: u64) -> impl Iterator<Item = Architecture> + '_ {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    std::iter::from_fn(move || {
        let cell = cell::Genotype::random(space.blocks, &mut rng);
        let path = NetworkPath::random(space.layers, &mut rng);
        Some(Architecture { cell, path, extra: Default::default() })
    })
}

/// Writes `architectures` as `random_000.json`, `random_001.json`, … into `out`, one at a time
/// (memory stays flat however many are drawn), calling `written` with each path.
pub fn write(
    out: &Path,
    architectures: impl IntoIterator<Item = Architecture>,
    mut written: impl FnMut(&Path),
) -> Result<usize> {
    std::fs::create_dir_all(out)?;
    let mut count = 0;
    for (i, architecture) in architectures.into_iter().enumerate() {
        let path = out.join(format!("random_{i:03}.json"));
        architecture.save(&path)?;
        written(&path);
        count += 1;
    }
    Ok(count)
}

/// Mean and sample standard deviation (n - 1; 0 for one value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths are uniform over the trellis: with L = 2 there are 5 paths from the stem
    /// ([0,0], [0,1], [1,0], [1,1], [1,2]); each comes up about a fifth of the time. Cells use
    /// two distinct inputs and every op but none.
    #[test]
    fn draws_are_uniform_and_inside_the_space() {
        assert_eq!(NetworkPath::count(2), 5.0);
        // With layer 1 free to start at rate 4 or 8, L = 12 gives 75025 paths; the paper's
        // "2.9e4" is 28657, the count with one move fewer (docs/trellis.md).
        assert_eq!((NetworkPath::count(12), NetworkPath::count(11)), (75025.0, 28657.0));
        let space = SearchNetworkConfig { layers: 2, blocks: 3, ..Default::default() };
        let drawn = draw(&space, 5000, 7);
        let mut counts = std::collections::HashMap::new();
        let mut ops = std::collections::HashSet::new();
        for a in &drawn {
            *counts.entry(a.path.levels().to_vec()).or_insert(0) += 1;
            for block in a.cell.blocks() {
                assert_ne!(block[0].input, block[1].input, "two distinct inputs");
                ops.extend(block.iter().map(|e| e.op));
            }
        }
        assert_eq!(counts.len(), 5);
        for (path, count) in &counts {
            assert!((*count as f64 - 1000.0).abs() < 120.0, "{path:?} drawn {count} times of 5000");
        }
        assert_eq!(ops.len(), 7, "every op but none");
        assert!(!ops.contains(&cell::Primitive::None));
        assert_eq!(draw(&space, 3, 7), drawn[..3], "the same seed draws the same architectures");
    }
}
