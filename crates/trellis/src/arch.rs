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

/// How far the architecture weights are from uniform: the entropy of each distribution
/// divided by its maximum (1 = uniform, 0 = one choice). A search that learns drives these
/// down; α and β that stay near 1 decode to a near coin toss.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entropies {
    /// Per edge: entropy of softmax(α) over the 8 ops / ln 8.
    pub alpha: Vec<f64>,
    /// Per layer and source level: entropy of the node's outgoing β / ln(valid moves); `None`
    /// where the node does not exist.
    pub beta: Vec<[Option<f64>; NUM_LEVELS]>,
}

impl Entropies {
    /// Mean over the edges.
    pub fn alpha_mean(&self) -> f64 {
        self.alpha.iter().sum::<f64>() / self.alpha.len().max(1) as f64
    }

    /// Mean over the existing nodes.
    pub fn beta_mean(&self) -> f64 {
        let values: Vec<f64> = self.beta.iter().flatten().flatten().copied().collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    }
}

impl ArchWeights {
    /// The normalised entropies of these weights.
    pub fn entropies(&self) -> Entropies {
        let entropy = |p: &[f64]| -> f64 {
            let valid = p.iter().filter(|&&x| x > 0.0).count();
            if valid < 2 {
                return 0.0;
            }
            -p.iter().filter(|&&x| x > 0.0).map(|&x| x * x.ln()).sum::<f64>() / (valid as f64).ln()
        };
        let to_vec = |t: &Tensor| -> Vec<f64> {
            Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1)).expect("doubles")
        };
        let alpha: Vec<f64> = to_vec(&self.alpha).chunks(cell::Primitive::COUNT).map(entropy).collect();
        let beta = to_vec(&self.beta)
            .chunks(NUM_LEVELS * 3)
            .enumerate()
            .map(|(l, layer)| {
                std::array::from_fn(|i| {
                    let moves = &layer[i * 3..i * 3 + 3];
                    crate::space::node_exists(l.checked_sub(1), i).then(|| entropy(moves))
                })
            })
            .collect();
        Entropies { alpha, beta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropies_are_one_when_uniform_and_zero_when_decided() {
        let alpha = Tensor::stack(
            &[
                Tensor::full([8], 0.125, (Kind::Float, Device::Cpu)),
                Tensor::from_slice(&[1.0f32, 0., 0., 0., 0., 0., 0., 0.]),
            ],
            0,
        );
        let beta = normalize_beta(&Tensor::zeros([2, 4, 3], (Kind::Float, Device::Cpu)));
        let e = ArchWeights { alpha, beta }.entropies();
        assert!((e.alpha[0] - 1.0).abs() < 1e-6 && e.alpha[1].abs() < 1e-12, "{e:?}");
        // Layer 0: only the stem (level 0) exists, with two moves; layer 1: levels 0 and 1.
        assert_eq!(e.beta[0][1], None);
        assert!((e.beta[0][0].unwrap() - 1.0).abs() < 1e-6);
        assert!((e.beta[1][1].unwrap() - 1.0).abs() < 1e-6 && e.beta[1][2].is_none());
        assert!((e.beta_mean() - 1.0).abs() < 1e-6);
    }
}
