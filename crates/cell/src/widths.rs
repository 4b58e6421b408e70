//! Channel counts of Auto-DeepLab's networks (paper §3.1, §4.1.1; facts §2, §7): the one place
//! where the filter multiplier F and the blocks per cell B become channels. The search network,
//! its ASPP heads, the decoded network and `search summary` all ask this type.
//!
//! A level l sits at downsample rate s = 4 * 2^l; a block there has F * s / 4 = F * 2^l
//! channels and a cell's output (the concatenation of its B blocks) B times that.

use serde::{Deserialize, Serialize};

/// F and B, and the channels they give at each level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Widths {
    /// Filter multiplier F (8 in the search; 20 / 32 / 48 for Auto-DeepLab-S / M / L).
    pub filter_multiplier: i64,
    /// Blocks per cell B.
    pub blocks: i64,
}

impl Widths {
    /// The widths of cells of `blocks` blocks with filter multiplier `filter_multiplier`.
    pub fn new(filter_multiplier: i64, blocks: usize) -> Widths {
        Widths { filter_multiplier, blocks: blocks as i64 }
    }

    /// Downsample rate s of `level` (0 = rate 4 … 3 = rate 32).
    pub fn rate(level: usize) -> i64 {
        4 << level
    }

    /// Channels of one block at `level`: F * s / 4.
    pub fn block(&self, level: usize) -> i64 {
        self.filter_multiplier * Self::rate(level) / 4
    }

    /// Channels of a cell's output at `level`: B * F * s / 4.
    pub fn cell(&self, level: usize) -> i64 {
        self.blocks * self.block(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_double_with_each_level() {
        let w = Widths::new(8, 5);
        assert_eq!((0..4).map(|l| w.block(l)).collect::<Vec<_>>(), [8, 16, 32, 64]);
        assert_eq!((0..4).map(|l| w.cell(l)).collect::<Vec<_>>(), [40, 80, 160, 320]);
        assert_eq!((0..4).map(Widths::rate).collect::<Vec<_>>(), [4, 8, 16, 32]);
    }
}
