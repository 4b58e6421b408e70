//! How firmly a search decided (issue 24): the decision margins of softmax(α) and β at τ = 1,
//! read off the weights decoding uses (paper §3.1 decodes the cell by the strongest ops, §3.2 the
//! path by Viterbi over β).
//!
//! - A kept edge's margin is its chosen op's weight minus the next op's (both other than
//!   `none`); uniform α gives 0, a decided edge close to 1.
//! - A node's β margin is its strongest outgoing move's weight minus the next one's.
//!
//! Uniform weights give margins of 0; `cell::Genotype::decision_margin` (the smallest of every
//! choice, input selection included) says whether the decoded cell is a near tie.
//! - A path's margin at layer l is Viterbi's: 1 − P(best path through another node of layer
//!   l) / P(best path) (`crate::viterbi::path_margins`).
//!
//! The path's closest call is read from the path margins, not from the node margins: the stem's
//! move into layer 0 is not a decision β learns (Eq. 7 with batch norm). Each node of layer 0
//! has that one incoming transition, so its β weight scales the node as a whole, and every use
//! of a node begins with a convolution and a batch norm, which cancels a positive scale in
//! training. Its gradient is batch norm's ε's trace, a thousandth of any later layer's, and
//! pushing it changes the loss by a few parts in 10^5 (tests/trellis_search.rs,
//! `the_first_move_is_invisible_to_the_loss`). Its node margin stays near 0 whatever the search
//! learns, while Viterbi chooses that move through the moves after it, which the path margin
//! measures.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::arch::ArchWeights;
use crate::path::NUM_LEVELS;
use crate::space::node_exists;
use crate::Architecture;

/// The decision margins of one set of architecture weights and its decoded architecture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Margins {
    /// Per decoded block, its two kept edges' op margins.
    pub alpha_kept: Vec<[f64; 2]>,
    /// Mean of [`Margins::alpha_kept`]: the mean decision margin per edge.
    pub alpha_mean: f64,
    /// Mean op margin over every edge, kept or not.
    pub alpha_all_mean: f64,
    /// Mean β margin over every node with at least two moves.
    pub beta_mean: f64,
    /// Per layer, the β margin of the node the decoded path leaves from (the stem for layer 0,
    /// whose move β does not learn: see the module documentation).
    pub beta_path: Vec<f64>,
    /// Mean of [`Margins::beta_path`].
    pub beta_path_mean: f64,
    /// Per layer, Viterbi's margin for the decoded path's node there
    /// (`crate::viterbi::path_margins`).
    pub path: Vec<f64>,
    /// `cell::Genotype::decision_margin`: the closest call of the cell's decoding.
    pub closest: f64,
}

fn rows(t: &Tensor, width: usize) -> Vec<Vec<f64>> {
    let flat = Vec::<f64>::try_from(t.detach().to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1))
        .expect("a float tensor");
    flat.chunks(width).map(<[f64]>::to_vec).collect()
}

/// The top weight minus the next one, `row` sorted in place.
fn top_gap(mut row: Vec<f64>) -> f64 {
    row.sort_by(|a, b| b.total_cmp(a));
    row[0] - row.get(1).copied().unwrap_or(0.0)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// The closest call of a decoded path from its per-layer path margins ([`Margins::path`]): the
/// layer with the smallest, and that margin (the first such layer on ties); `None` for no layers.
pub fn path_closest(path: &[f64]) -> Option<(usize, f64)> {
    path.iter().copied().enumerate().min_by(|a, b| a.1.total_cmp(&b.1))
}

impl Margins {
    /// [`path_closest`] of this path.
    pub fn path_closest(&self) -> Option<(usize, f64)> {
        path_closest(&self.path)
    }

    /// The margins of `weights` (read at τ = 1: `ArchParams::decision_weights`) for the
    /// architecture decoded from them.
    pub fn of(weights: &ArchWeights, decoded: &Architecture) -> Margins {
        let alpha = rows(&weights.decoding(), cell::Primitive::COUNT);
        let op_gap = |row: &[f64]| top_gap(row[1..].to_vec());
        let alpha_kept: Vec<[f64; 2]> = decoded
            .cell
            .blocks()
            .iter()
            .enumerate()
            .map(|(b, edges)| (*edges).map(|e| op_gap(&alpha[cell::edges::edge_offset(b) + e.input])))
            .collect();
        let alpha_rows: Vec<[f64; cell::Primitive::COUNT]> =
            alpha.iter().map(|r| r.as_slice().try_into().expect("rows of 8")).collect();
        let closest = cell::Genotype::decision_margin(&alpha_rows, decoded.cell.num_blocks());
        let beta = rows(&weights.beta, NUM_LEVELS * 3);
        let node = |l: usize, i: usize| beta[l][3 * i..3 * i + 3].to_vec();
        let beta_nodes = (0..beta.len()).flat_map(|l| {
            (0..NUM_LEVELS)
                .filter(move |&i| node_exists(l.checked_sub(1), i))
                .map(move |i| (l, i))
                .filter(|&(l, i)| node(l, i).iter().filter(|&&w| w > 0.0).count() >= 2)
                .collect::<Vec<_>>()
        });
        let beta_mean = mean(beta_nodes.map(|(l, i)| top_gap(node(l, i))));
        let levels = decoded.path.levels();
        let beta_path: Vec<f64> = (0..levels.len().min(beta.len()))
            .map(|l| top_gap(node(l, if l == 0 { 0 } else { levels[l - 1] as usize })))
            .collect();
        let layers = crate::viterbi::beta_layers(&weights.beta);
        let path = if layers.len() == levels.len() {
            crate::viterbi::path_margins(&layers, &decoded.path)
        } else {
            Vec::new()
        };
        Margins {
            alpha_mean: mean(alpha_kept.iter().flatten().copied()),
            alpha_all_mean: mean(alpha.iter().map(|r| op_gap(r))),
            alpha_kept,
            beta_mean,
            beta_path_mean: mean(beta_path.iter().copied()),
            beta_path,
            path,
            closest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::normalize_beta;

    /// Uniform weights decide nothing; one-hot α and a sharp β decide everything.
    #[test]
    fn margins_are_zero_when_uniform_and_large_when_decided() {
        let (blocks, layers) = (2, 2);
        let edges = cell::edges::num_edges(blocks) as i64;
        let uniform = |alpha: Tensor, beta: Tensor| {
            let weights = ArchWeights { cell: alpha.shallow_clone(), alpha, beta, edges: None };
            let decoded = Architecture {
                cell: cell::Genotype::decode_weights(&weights.alpha, blocks).unwrap(),
                path: crate::viterbi(&crate::viterbi::beta_layers(&weights.beta)),
                extra: Default::default(),
            };
            Margins::of(&weights, &decoded)
        };
        let m = uniform(
            Tensor::full([edges, 8], 0.125, (Kind::Double, Device::Cpu)),
            normalize_beta(&Tensor::zeros([layers, 4, 3], (Kind::Double, Device::Cpu))),
        );
        assert!(m.alpha_mean.abs() < 1e-12 && m.beta_mean.abs() < 1e-12 && m.closest.abs() < 1e-12, "{m:?}");
        let mut logits = vec![0.0f64; (edges * 8) as usize];
        for e in 0..edges as usize {
            logits[e * 8 + 3] = 30.0;
        }
        let alpha = Tensor::from_slice(&logits).view([edges, 8]).softmax(-1, Kind::Double);
        let beta = normalize_beta(&(Tensor::from_slice(&[0.0f64, 30.0, 0.0]).repeat([layers, 4, 1])));
        let m = uniform(alpha, beta);
        assert!(m.alpha_mean > 0.99 && m.alpha_all_mean > 0.99, "{m:?}");
        assert!(m.beta_path_mean > 0.99 && m.beta_mean > 0.99, "{m:?}");
        assert!(m.path.len() == layers as usize && m.path.iter().all(|&p| p > 0.99), "{m:?}");
        assert_eq!(m.alpha_kept.len(), blocks);
    }

    /// The path's closest call is its smallest path margin, with the first layer on ties.
    #[test]
    fn the_path_closest_call_is_its_smallest_path_margin() {
        assert_eq!(path_closest(&[0.3, 0.005, 0.2, 0.005]), Some((1, 0.005)));
        assert_eq!(path_closest(&[]), None);
    }
}
