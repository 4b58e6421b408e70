//! The network-level path: one level per layer (paper §3.2, §4.3).
//!
//! Level 0..3 = downsample rate 4, 8, 16, 32. The stem leaves the image at level 0; each layer
//! moves at most one level from the previous one, so layer 0 can be at level 0 or 1.

use serde::{Deserialize, Serialize};

/// Number of levels (downsample rates 4, 8, 16, 32).
pub const NUM_LEVELS: usize = 4;

/// The most layers a path may have (the paper's L is 12): a bound on what a file can ask for.
pub const MAX_LAYERS: usize = 1024;

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A path without layers.
    #[error("a network path needs at least one layer, got none")]
    Empty,
    /// A level outside 0..=3.
    #[error("layer {layer}: level {level} does not exist (levels are 0..=3, downsample rate 4, 8, 16, 32)")]
    LevelOutOfRange { layer: usize, level: u8 },
    /// A move of more than one level between consecutive layers (or from the stem, at level 0).
    #[error("layer {layer}: moves from level {from} to level {to}; a layer moves at most one level (the stem is at level 0)")]
    Jump { layer: usize, from: u8, to: u8 },
    /// More layers than [`MAX_LAYERS`].
    #[error("a network path of {found} layers is longer than the {MAX_LAYERS} allowed")]
    TooLong { found: usize },
    /// The path has a different number of layers than the network.
    #[error("the network path has {found} layers, the network expects {expected}")]
    WrongLength { expected: usize, found: usize },
}

/// A valid path through the trellis: one level per layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct NetworkPath {
    levels: Vec<u8>,
}

impl NetworkPath {
    /// Validates `levels` (see the module documentation).
    pub fn new(levels: Vec<u8>) -> Result<NetworkPath, PathError> {
        if levels.is_empty() {
            return Err(PathError::Empty);
        }
        if levels.len() > MAX_LAYERS {
            return Err(PathError::TooLong { found: levels.len() });
        }
        let mut from = 0u8;
        for (layer, &to) in levels.iter().enumerate() {
            if to as usize >= NUM_LEVELS {
                return Err(PathError::LevelOutOfRange { layer, level: to });
            }
            if from.abs_diff(to) > 1 {
                return Err(PathError::Jump { layer, from, to });
            }
            from = to;
        }
        Ok(NetworkPath { levels })
    }

    /// A path of `layers` layers drawn uniformly from all valid paths (every path equally
    /// likely, not every move): the number of valid continuations of each node is counted from
    /// the last layer back, and each level is drawn in proportion to it.
    pub fn random(layers: usize, rng: &mut impl rand::Rng) -> NetworkPath {
        let layers = layers.max(1);
        // ways[l][j]: valid paths from node (l, j) to the last layer.
        let mut ways = vec![[0f64; NUM_LEVELS]; layers];
        ways[layers - 1] = [1.0; NUM_LEVELS];
        for l in (0..layers - 1).rev() {
            for j in 0..NUM_LEVELS {
                ways[l][j] = (j.saturating_sub(1)..=(j + 1).min(NUM_LEVELS - 1)).map(|k| ways[l + 1][k]).sum();
            }
            // Only the ratios within a layer matter: rescaled, so that long paths (the count
            // grows as 3^L) never overflow to infinity.
            let largest = ways[l].iter().copied().fold(0.0, f64::max);
            ways[l].iter_mut().for_each(|w| *w /= largest);
        }
        let mut levels = Vec::with_capacity(layers);
        let mut from = 0usize;
        for row in &ways {
            let choices: Vec<usize> = (from.saturating_sub(1)..=(from + 1).min(NUM_LEVELS - 1)).collect();
            let total: f64 = choices.iter().map(|&k| row[k]).sum();
            let mut pick = rng.random_range(0.0..total);
            let mut level = *choices.last().expect("at least one move");
            for &k in &choices {
                if pick < row[k] {
                    level = k;
                    break;
                }
                pick -= row[k];
            }
            levels.push(level as u8);
            from = level;
        }
        NetworkPath::new(levels).expect("drawn inside the trellis")
    }

    /// The number of valid paths of `layers` layers: 75025 for L = 12 (the paper's "2.9e4",
    /// §3.2, is 28657, the count for one move fewer; docs/trellis.md).
    pub fn count(layers: usize) -> f64 {
        let mut ways = [1f64; NUM_LEVELS];
        for _ in 0..layers {
            ways = std::array::from_fn(|j| (j.saturating_sub(1)..=(j + 1).min(NUM_LEVELS - 1)).map(|k| ways[k]).sum());
        }
        ways[0]
    }

    /// The path found by Auto-DeepLab on Cityscapes (paper Fig. 3; facts §6).
    pub fn paper() -> NetworkPath {
        NetworkPath::new(vec![0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]).expect("the paper's path is valid")
    }

    /// One level per layer.
    pub fn levels(&self) -> &[u8] {
        &self.levels
    }

    /// Number of layers L.
    pub fn num_layers(&self) -> usize {
        self.levels.len()
    }

    /// Errors unless the path has exactly `expected` layers.
    pub fn check_layers(&self, expected: usize) -> Result<(), PathError> {
        if self.levels.len() == expected {
            Ok(())
        } else {
            Err(PathError::WrongLength { expected, found: self.levels.len() })
        }
    }
}

impl TryFrom<Vec<u8>> for NetworkPath {
    type Error = PathError;

    fn try_from(levels: Vec<u8>) -> Result<Self, Self::Error> {
        NetworkPath::new(levels)
    }
}

impl From<NetworkPath> for Vec<u8> {
    fn from(path: NetworkPath) -> Self {
        path.levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_paths() {
        assert_eq!(NetworkPath::paper().num_layers(), 12);
        assert_eq!(NetworkPath::paper().levels().last(), Some(&1));
        assert_eq!(NetworkPath::new(vec![]), Err(PathError::Empty));
        assert_eq!(NetworkPath::new(vec![2]), Err(PathError::Jump { layer: 0, from: 0, to: 2 }));
        assert_eq!(NetworkPath::new(vec![1, 2, 0]), Err(PathError::Jump { layer: 2, from: 2, to: 0 }));
        assert_eq!(NetworkPath::new(vec![0, 1, 2, 3, 4]), Err(PathError::LevelOutOfRange { layer: 4, level: 4 }));
        assert_eq!(NetworkPath::paper().check_layers(8), Err(PathError::WrongLength { expected: 8, found: 12 }));
    }

    #[test]
    fn long_random_paths_are_drawn_without_overflow() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert!(NetworkPath::count(1000).is_infinite(), "the count overflows f64 at this length");
        let path = NetworkPath::random(MAX_LAYERS, &mut rng);
        assert_eq!(path.num_layers(), MAX_LAYERS);
        assert!(path.levels().iter().any(|&l| l >= 2), "a long uniform path leaves the top levels");
    }
}
