//! The architecture parameters: α (cell, [`cell::Alpha`]) and β (network, paper §3.2, Eq. 6-7),
//! kept together in the architecture VarStore, and their normalised form [`ArchWeights`],
//! computed once per forward pass.
//!
//! β is one tensor of raw logits `[L, 4, 3]`: `beta[l][i][d]` is the transition from level i of
//! layer l - 1 (the stem for l = 0) into layer l at level i + d - 1 (d = 0 finer, 1 same,
//! 2 coarser). Eq. 7 normalises it with a softmax over the valid outgoing transitions of each
//! source node (two at levels 0 and 3, three elsewhere); invalid entries are 0. There is no
//! further scaling.

use cell::Alpha;
use tch::{nn, Device, Kind, Tensor};

use crate::path::NUM_LEVELS;
use crate::space::{transition_valid, Transition};

/// Standard deviation of β's initialisation: 1e-3 * N(0, 1) (paper §4.2).
pub const BETA_INIT_STD: f64 = 1e-3;

/// `[L, 4, 3]` mask of the valid transitions (1.0) as floats on `device`.
pub fn beta_mask(layers: usize, device: Device) -> Tensor {
    let mask: Vec<f32> = (0..layers)
        .flat_map(|l| {
            (0..NUM_LEVELS)
                .flat_map(move |i| Transition::ALL.map(|t| if transition_valid(l, i, t) { 1.0 } else { 0.0 }))
        })
        .collect();
    Tensor::from_slice(&mask).view([layers as i64, NUM_LEVELS as i64, 3]).to_device(device)
}

/// Normalises raw β logits `[L, 4, 3]` (Eq. 7): softmax over each source node's valid moves,
/// 0 for invalid entries. Differentiable; rows of absent source nodes are all 0.
pub fn normalize_beta(logits: &Tensor) -> Tensor {
    let layers = logits.size()[0] as usize;
    let mask = beta_mask(layers, logits.device());
    // A large finite fill (not -inf): rows without valid moves stay finite, then are zeroed.
    let filled = logits.to_kind(Kind::Float).masked_fill(&mask.eq(0.0), -1e9);
    filled.softmax(-1, Kind::Float) * mask
}

/// α and β, in the architecture VarStore.
#[derive(Debug)]
pub struct ArchParams {
    /// The cell's α, `[edges, 8]`.
    pub alpha: Alpha,
    /// β's raw logits, `[L, 4, 3]`.
    pub beta: Tensor,
}

impl ArchParams {
    /// Creates α (for cells of `blocks` blocks) and β (for `layers` layers) under `p`, a path
    /// of the architecture VarStore.
    pub fn new(p: &nn::Path, blocks: usize, layers: usize) -> ArchParams {
        let alpha = Alpha::new(p, blocks);
        let beta =
            p.var("beta", &[layers as i64, NUM_LEVELS as i64, 3], nn::Init::Randn { mean: 0.0, stdev: BETA_INIT_STD });
        ArchParams { alpha, beta }
    }

    /// softmax(α) and normalised β, computed once and passed to the whole network.
    pub fn weights(&self) -> ArchWeights {
        ArchWeights { alpha: self.alpha.weights(), beta: normalize_beta(&self.beta) }
    }
}

/// Normalised architecture weights for one forward pass.
#[derive(Debug)]
pub struct ArchWeights {
    /// softmax(α) per edge, `[edges, 8]`.
    pub alpha: Tensor,
    /// Normalised β, `[L, 4, 3]` (0 for invalid transitions).
    pub beta: Tensor,
}
