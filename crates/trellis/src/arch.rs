//! The architecture parameters: α (cell, [`cell::Alpha`]) and β (network, paper §3.2, Eq. 6-7),
//! kept together in the architecture VarStore, and their normalised form [`ArchWeights`],
//! computed once per forward pass.
//!
//! β is one tensor of raw logits `[L, 4, 3]`: `beta[l][i][d]` is the transition from level i of
//! layer l - 1 (the stem for l = 0) into layer l at level i + d - 1 (d = 0 finer, 1 same,
//! 2 coarser). Eq. 7 normalises it with a softmax over the valid outgoing transitions of each
//! source node (two at levels 0 and 3, three elsewhere); invalid entries are 0. There is no
//! further scaling.
//!
//! Optionally (PC-DARTS, Xu et al., ICLR 2020, §3.3, edge normalisation) a learnable weight per
//! cell edge, `[edges]`: the edges into each block are weighted by the softmax of their
//! weights over that block's inputs, in the forward pass (each edge's mixed op output scaled by
//! it) and in decoding (each edge's op weights scaled by it before the top-2 choice). And
//! optionally (DARTS-, Chu et al., ICLR 2021) an auxiliary skip connection on every edge with
//! a coefficient the search decays: a constant added to the `skip_connect` weight of every
//! edge, outside the softmax, so that it gives α no gradient.

use cell::edges::{block_inputs, edge_offset, num_edges};
use cell::{Alpha, Primitive};
use tch::{nn, Device, Kind, Tensor};

use crate::path::NUM_LEVELS;
use crate::space::{transition_valid, Transition};

/// Standard deviation of β's initialisation: 1e-3 * N(0, 1) (paper §4.2).
pub const BETA_INIT_STD: f64 = 1e-3;

/// The smallest weight a valid move gets in the search network's mixture
/// ([`ArchParams::weights_with`]). A move decided against (`crate::progressive::project_path`:
/// logits 20 against 0) weighs e^-20 at τ = 1 but e^-100 at τ = 0.2, below float32's normal
/// range, and a node scaled into denormals made batch norm's backward pass produce NaN
/// gradients (a shape search with path decisions, at its last epoch). The floor keeps such a
/// node at 1e-12 of its cell's output: nothing to the mixture, normal numbers to the arithmetic.
/// Decisions are unaffected: at τ = 1 a decided-against move weighs e^-20, far above the floor.
pub const BETA_FLOOR: f64 = 1e-12;

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
    // Double stays double (for finite-difference checks); anything else is computed in fp32.
    let kind = cell::alpha::float_or_double(logits.kind());
    let filled = logits.to_kind(kind).masked_fill(&mask.eq(0.0), -1e9);
    filled.softmax(-1, kind) * mask.to_kind(kind)
}

/// α and β, in the architecture VarStore.
#[derive(Debug)]
pub struct ArchParams {
    /// The cell's α, `[edges, 8]`.
    pub alpha: Alpha,
    /// β's raw logits, `[L, 4, 3]`.
    pub beta: Tensor,
    /// PC-DARTS edge weights' raw logits, `[edges]`, when they are searched.
    pub edges: Option<Tensor>,
    /// DARTS-'s auxiliary skip coefficient that [`ArchParams::weights`] applies (0: none); the
    /// search sets it by its schedule before each step.
    pub aux_skip: std::cell::Cell<f64>,
    /// The softmax temperature τ of α and β in [`ArchParams::weights`] (1: the paper's plain
    /// softmax); the search anneals it by `[arch.temperature]`. Decoding, entropies and margins
    /// always read the logits at τ = 1 ([`ArchParams::decision_weights`]).
    pub temperature: std::cell::Cell<f64>,
}

impl ArchParams {
    /// Creates α (for cells of `blocks` blocks) and β (for `layers` layers) under `p`, a path
    /// of the architecture VarStore.
    pub fn new(p: &nn::Path, blocks: usize, layers: usize) -> ArchParams {
        let alpha = Alpha::new(p, blocks);
        let beta =
            p.var("beta", &[layers as i64, NUM_LEVELS as i64, 3], nn::Init::Randn { mean: 0.0, stdev: BETA_INIT_STD });
        ArchParams {
            alpha,
            beta,
            edges: None,
            aux_skip: std::cell::Cell::new(0.0),
            temperature: std::cell::Cell::new(1.0),
        }
    }

    /// As [`ArchParams::new`], with PC-DARTS edge weights (variable `edges`, `[edges]`,
    /// initialised like α) when `edge_normalization` is set.
    pub fn for_search(p: &nn::Path, blocks: usize, layers: usize, edge_normalization: bool) -> ArchParams {
        let mut params = ArchParams::new(p, blocks, layers);
        if edge_normalization {
            let shape = [num_edges(blocks) as i64];
            params.edges =
                Some(p.var("edges", &shape, nn::Init::Randn { mean: 0.0, stdev: cell::alpha::ALPHA_INIT_STD }));
        }
        params
    }

    /// softmax(α), normalised β and the cells' weights, computed once and passed to the whole
    /// network.
    pub fn weights(&self) -> ArchWeights {
        self.weights_with(self.aux_skip.get(), self.temperature.get())
    }

    /// The weights decisions are read from: softmax(α) and β at τ = 1, without the auxiliary
    /// skip (decoding, entropies and margins).
    pub fn decision_weights(&self) -> ArchWeights {
        self.weights_with(0.0, 1.0)
    }

    /// [`ArchParams::weights`] with DARTS-'s auxiliary skip connection at coefficient
    /// `aux_skip` (0: none) and α and β's softmax at temperature `temperature` (> 0).
    pub fn weights_with(&self, aux_skip: f64, temperature: f64) -> ArchWeights {
        let (alpha, beta) = if temperature == 1.0 {
            (self.alpha.weights(), normalize_beta(&self.beta))
        } else {
            let kind = cell::alpha::float_or_double(self.alpha.logits().kind());
            ((self.alpha.logits() / temperature).softmax(-1, kind), normalize_beta(&(&self.beta / temperature)))
        };
        let beta = beta.clamp_min(BETA_FLOOR) * beta_mask(beta.size()[0] as usize, beta.device()).to_kind(beta.kind());
        let edges = self.edges.as_ref().map(|logits| normalize_edges(logits, self.alpha.blocks()));
        let mut cell = match &edges {
            Some(e) => &alpha * e.unsqueeze(1),
            None => alpha.shallow_clone(),
        };
        if aux_skip != 0.0 {
            let mut skip = [0.0f32; Primitive::COUNT];
            skip[Primitive::SkipConnect as usize] = aux_skip as f32;
            cell = &cell + Tensor::from_slice(&skip).to_device(alpha.device());
        }
        ArchWeights { alpha, beta, cell, edges }
    }
}

/// What decoding weighs the ops by: softmax(α) `[edges, 8]`, each row scaled by its edge's
/// normalised PC-DARTS weight (`[edges]`) when those are searched.
pub fn decoding_weights(alpha_weights: &Tensor, edges: Option<&Tensor>) -> Tensor {
    match edges {
        Some(edges) => alpha_weights * edges.to_kind(alpha_weights.kind()).unsqueeze(1),
        None => alpha_weights.shallow_clone(),
    }
}

/// PC-DARTS edge normalisation: raw edge logits `[edges]` to the softmax over each block's
/// inputs, `[edges]` (each block's entries sum to 1).
pub fn normalize_edges(logits: &Tensor, blocks: usize) -> Tensor {
    let parts: Vec<Tensor> = (0..blocks)
        .map(|b| {
            let kind = cell::alpha::float_or_double(logits.kind());
            logits.narrow(0, edge_offset(b) as i64, block_inputs(b) as i64).to_kind(kind).softmax(0, kind)
        })
        .collect();
    Tensor::cat(&parts, 0)
}

/// Normalised architecture weights for one forward pass.
#[derive(Debug)]
pub struct ArchWeights {
    /// softmax(α) per edge, `[edges, 8]`.
    pub alpha: Tensor,
    /// Normalised β, `[L, 4, 3]` (0 for invalid transitions).
    pub beta: Tensor,
    /// What the cells weight their edges' ops with, `[edges, 8]`: softmax(α), times the
    /// normalised edge weights when searched, plus the auxiliary skip coefficient on
    /// `skip_connect`.
    pub cell: Tensor,
    /// Normalised PC-DARTS edge weights, `[edges]`, when searched.
    pub edges: Option<Tensor>,
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
    /// The weights decoding chooses by ([`decoding_weights`]), `[edges, 8]`.
    pub fn decoding(&self) -> Tensor {
        decoding_weights(&self.alpha, self.edges.as_ref())
    }

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
        let e = ArchWeights { cell: alpha.shallow_clone(), alpha, beta, edges: None }.entropies();
        assert!((e.alpha[0] - 1.0).abs() < 1e-6 && e.alpha[1].abs() < 1e-12, "{e:?}");
        // Layer 0: only the stem (level 0) exists, with two moves; layer 1: levels 0 and 1.
        assert_eq!(e.beta[0][1], None);
        assert!((e.beta[0][0].unwrap() - 1.0).abs() < 1e-6);
        assert!((e.beta[1][1].unwrap() - 1.0).abs() < 1e-6 && e.beta[1][2].is_none());
        assert!((e.beta_mean() - 1.0).abs() < 1e-6);
    }

    /// The temperature sharpens the mixture the network uses (softmax(α / τ), β / τ) and never
    /// what decisions read (τ = 1).
    #[test]
    fn the_temperature_sharpens_the_mixture_not_the_decisions() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let arch = ArchParams::new(&vs.root(), 2, 2);
        let plain = arch.weights();
        arch.temperature.set(0.25);
        let sharp = arch.weights();
        let expected = (arch.alpha.logits() * 4.0).softmax(-1, Kind::Float);
        assert!(sharp.alpha.allclose(&expected, 1e-6, 1e-7, false));
        assert!(sharp.beta.allclose(&normalize_beta(&(&arch.beta * 4.0)), 1e-6, 1e-7, false));
        assert!(arch.decision_weights().alpha.equal(&plain.alpha));
        assert!(arch.decision_weights().beta.equal(&plain.beta));
        let max = |t: &Tensor| f64::try_from(t.max()).unwrap();
        assert!(max(&sharp.alpha) > max(&plain.alpha), "a lower τ puts more weight on the strongest op");
    }

    /// A move decided against keeps a normal floating-point weight at any temperature: at
    /// τ = 0.2 its e^-100 is raised to the floor, the valid moves still sum to 1 within 1e-11,
    /// and impossible moves stay 0. At τ = 1 nothing is floored.
    #[test]
    fn a_decided_against_move_keeps_a_normal_weight_under_annealing() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let arch = ArchParams::new(&vs.root(), 2, 2);
        tch::no_grad(|| {
            arch.beta.get(0).get(0).copy_(&Tensor::from_slice(&[0.0f32, 20.0, 0.0]));
        });
        arch.temperature.set(0.2);
        let beta = arch.weights().beta;
        let row = Vec::<f64>::try_from(beta.get(0).get(0).to_kind(Kind::Double)).unwrap();
        assert_eq!(row[0], 0.0, "an impossible move (finer than level 0) stays 0");
        assert!(row[2] >= BETA_FLOOR * (1.0 - 1e-6) && row[2] < 2.0 * BETA_FLOOR, "{row:?}");
        assert!((row[1] + row[2] - 1.0).abs() < 1e-11, "{row:?}");
        let valid = beta.masked_select(&beta_mask(2, Device::Cpu).ne(0.0));
        assert!(f64::try_from(valid.min()).unwrap() >= BETA_FLOOR * (1.0 - 1e-6));
        assert!(arch.decision_weights().beta.allclose(&normalize_beta(&arch.beta), 1e-12, 0.0, false));
    }
}
