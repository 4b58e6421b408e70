//! The network-level search space: levels, layers and transitions (paper §3.2, Fig. 1 right).
//!
//! Level 0..3 = downsample rate 4, 8, 16, 32. There are L layers of cells after the stem, which
//! sits at level 0. A node (layer l, level j) exists when j <= min(l + 1, 3): layer 0 has levels
//! {0, 1}, layer 1 {0, 1, 2}, later layers all four. Each node has up to three incoming
//! transitions, from levels j - 1, j and j + 1 of the layer before.

use serde::{Deserialize, Serialize};

use crate::path::NUM_LEVELS;

/// A move between consecutive layers, seen from the source node: into a finer level (d = 0,
/// level i - 1), the same level (d = 1) or a coarser level (d = 2, level i + 1). Its index is
/// the last axis of β.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// To level i - 1 (twice the resolution): bilinear upsampling then a 1x1 conv.
    Finer = 0,
    /// To level i.
    Same = 1,
    /// To level i + 1 (half the resolution): a stride-2 conv.
    Coarser = 2,
}

impl Transition {
    /// The three transitions in β's order.
    pub const ALL: [Transition; 3] = [Transition::Finer, Transition::Same, Transition::Coarser];

    /// Index in β's last axis.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The target level of this move from `source`, if it exists.
    pub fn target(self, source: usize) -> Option<usize> {
        let target = (source + self.index()).checked_sub(1)?;
        (target < NUM_LEVELS).then_some(target)
    }

    /// The source level of this move into `target`, if it exists.
    pub fn source(self, target: usize) -> Option<usize> {
        let source = (target + 1).checked_sub(self.index())?;
        (source < NUM_LEVELS).then_some(source)
    }
}

/// Downsample rate of `level`: 4, 8, 16, 32.
pub fn downsample(level: usize) -> i64 {
    cell::Widths::rate(level)
}

/// Highest level of layer `layer` (0-based): min(layer + 1, 3).
pub fn max_level(layer: usize) -> usize {
    (layer + 1).min(NUM_LEVELS - 1)
}

/// Whether node (layer, level) exists. Layer `-1` is the stem, which exists at level 0 only;
/// pass it as `None`.
pub fn node_exists(layer: Option<usize>, level: usize) -> bool {
    match layer {
        None => level == 0,
        Some(l) => level <= max_level(l),
    }
}

/// Whether β[layer][source][transition] is a valid move: its source node (in layer - 1, the stem
/// for layer 0) exists and its target level exists.
pub fn transition_valid(layer: usize, source: usize, transition: Transition) -> bool {
    let source_layer = layer.checked_sub(1);
    node_exists(source_layer, source) && transition.target(source).is_some_and(|t| t <= max_level(layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_reach_their_levels() {
        assert_eq!((0..5).map(max_level).collect::<Vec<_>>(), [1, 2, 3, 3, 3]);
        assert_eq!([0, 1, 2, 3].map(downsample), [4, 8, 16, 32]);
        // Layer 0: only the stem (level 0) is a source, to levels 0 and 1.
        let valid: Vec<(usize, Transition)> = (0..4)
            .flat_map(|i| Transition::ALL.into_iter().map(move |t| (i, t)))
            .filter(|&(i, t)| transition_valid(0, i, t))
            .collect();
        assert_eq!(valid, [(0, Transition::Same), (0, Transition::Coarser)]);
        // Later layers: 2 moves at the edge levels, 3 in between.
        let count = |l, i| Transition::ALL.iter().filter(|&&t| transition_valid(l, i, t)).count();
        assert_eq!([count(5, 0), count(5, 1), count(5, 2), count(5, 3)], [2, 3, 3, 2]);
        // Layer 1: sources at levels 0 and 1 only.
        assert_eq!([count(1, 0), count(1, 1), count(1, 2), count(1, 3)], [2, 3, 0, 0]);
        assert_eq!(Transition::Finer.source(2), Some(3));
        assert_eq!(Transition::Coarser.source(0), None);
    }
}
