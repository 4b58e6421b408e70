//! The discrete cell: a genotype, and its decoding from α (paper §4.3; DARTS `genotypes.py`).
//!
//! A genotype lists, for each block, two edges `(input, op)` with inputs in DARTS numbering
//! (0 = H^{l-2}, 1 = H^{l-1}, `2 + k` = block k). In files it is
//! `[[[input, "op"], [input, "op"]], ...]`, one pair per block.
//!
//! Decoding (§4.3): for each block keep the 2 strongest predecessors, where an edge's strength
//! is the largest softmax weight over the ops other than `none`; then for each kept edge take
//! the argmax op excluding `none`. Ties break towards the lower index (input, then op).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::edges::{block_inputs, edge_offset, num_edges};
use crate::primitive::Primitive;

/// Why a genotype or an α matrix was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenotypeError {
    /// A genotype without blocks.
    #[error("a cell genotype needs at least one block, got none")]
    NoBlocks,
    /// More blocks than [`MAX_BLOCKS`].
    #[error("a cell genotype of {found} blocks has more than the {MAX_BLOCKS} allowed")]
    TooManyBlocks { found: usize },
    /// The genotype has a different number of blocks than the network it is used for.
    #[error("the cell genotype has {found} blocks, the network expects {expected}")]
    WrongBlockCount { expected: usize, found: usize },
    /// An edge reads from a state that is not computed before its block.
    #[error(
        "block {block}, edge {slot}: input {input} is not a predecessor of block {block} \
         (valid inputs are 0..={max}: 0 = H^(l-2), 1 = H^(l-1), 2+k = block k)"
    )]
    InputNotPredecessor { block: usize, slot: usize, input: usize, max: usize },
    /// An edge with op `none` (it would contribute nothing).
    #[error("block {block}, edge {slot}: op `none` cannot be an edge of a decoded cell")]
    NoneOp { block: usize, slot: usize },
    /// An α (or softmax(α)) of the wrong shape.
    #[error("α must have {edges} rows of 8 values for a cell of {blocks} blocks, got {rows} rows of {cols}")]
    AlphaShape { blocks: usize, edges: usize, rows: usize, cols: usize },
}

/// A decision margin (see [`Genotype::decision_margin`]) below which a decoded cell is reported
/// as a near tie: one percent of softmax weight.
pub const NEAR_TIE_MARGIN: f64 = 0.01;

/// The most blocks a cell may have (the paper's B is 5): a bound on what a file can ask for.
pub const MAX_BLOCKS: usize = 64;

/// One kept edge of a decoded block: the input it reads and the op it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "(usize, Primitive)", into = "(usize, Primitive)")]
pub struct CellEdge {
    /// DARTS numbering: 0 = H^{l-2}, 1 = H^{l-1}, `2 + k` = block k.
    pub input: usize,
    /// The op applied on this edge (never `none`).
    pub op: Primitive,
}

impl From<(usize, Primitive)> for CellEdge {
    fn from((input, op): (usize, Primitive)) -> Self {
        CellEdge { input, op }
    }
}

impl From<CellEdge> for (usize, Primitive) {
    fn from(edge: CellEdge) -> Self {
        (edge.input, edge.op)
    }
}

/// A decoded cell: two edges per block. Always valid: every input is a predecessor of its
/// block and no op is `none`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<[CellEdge; 2]>", into = "Vec<[CellEdge; 2]>")]
pub struct Genotype {
    blocks: Vec<[CellEdge; 2]>,
}

impl TryFrom<Vec<[CellEdge; 2]>> for Genotype {
    type Error = GenotypeError;

    fn try_from(blocks: Vec<[CellEdge; 2]>) -> Result<Self, Self::Error> {
        Genotype::new(blocks)
    }
}

impl From<Genotype> for Vec<[CellEdge; 2]> {
    fn from(genotype: Genotype) -> Self {
        genotype.blocks
    }
}

impl Genotype {
    /// Validates and wraps the blocks' edges.
    pub fn new(blocks: Vec<[CellEdge; 2]>) -> Result<Genotype, GenotypeError> {
        if blocks.is_empty() {
            return Err(GenotypeError::NoBlocks);
        }
        if blocks.len() > MAX_BLOCKS {
            return Err(GenotypeError::TooManyBlocks { found: blocks.len() });
        }
        for (block, edges) in blocks.iter().enumerate() {
            for (slot, edge) in edges.iter().enumerate() {
                let max = block_inputs(block) - 1;
                if edge.input > max {
                    return Err(GenotypeError::InputNotPredecessor { block, slot, input: edge.input, max });
                }
                if edge.op == Primitive::None {
                    return Err(GenotypeError::NoneOp { block, slot });
                }
            }
        }
        Ok(Genotype { blocks })
    }

    /// A cell of `blocks` blocks drawn uniformly from the search space: for each block two
    /// distinct inputs among its predecessors (every pair equally likely) and, on each, one of
    /// the seven ops other than `none` (every op equally likely). The random-architecture
    /// baseline a search is compared with.
    pub fn random(blocks: usize, rng: &mut impl rand::Rng) -> Genotype {
        let ops = &Primitive::ALL[1..];
        let blocks = (0..blocks.max(1))
            .map(|block| {
                let inputs = rand::seq::index::sample(rng, block_inputs(block), 2);
                let mut inputs = [inputs.index(0), inputs.index(1)];
                inputs.sort_unstable();
                inputs.map(|input| CellEdge { input, op: ops[rng.random_range(0..ops.len())] })
            })
            .collect();
        Genotype::new(blocks).expect("drawn inside the search space")
    }

    /// The cell found by Auto-DeepLab on Cityscapes (paper Fig. 3; facts §6), DARTS numbering.
    pub fn paper() -> Genotype {
        use Primitive::*;
        let e = |input, op| CellEdge { input, op };
        Genotype::new(vec![
            [e(0, DilConv5x5), e(1, SepConv3x3)],
            [e(0, SepConv3x3), e(1, DilConv3x3)],
            [e(0, SepConv3x3), e(3, SepConv3x3)],
            [e(2, SepConv5x5), e(4, SepConv5x5)],
            [e(3, SepConv5x5), e(5, DilConv5x5)],
        ])
        .expect("the paper's genotype is valid")
    }

    /// Number of blocks B.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The two edges of every block, in the order they were given.
    pub fn blocks(&self) -> &[[CellEdge; 2]] {
        &self.blocks
    }

    /// Errors unless the genotype has exactly `expected` blocks.
    pub fn check_blocks(&self, expected: usize) -> Result<(), GenotypeError> {
        if self.blocks.len() == expected {
            Ok(())
        } else {
            Err(GenotypeError::WrongBlockCount { expected, found: self.blocks.len() })
        }
    }

    /// Decodes softmax(α), given as one row of 8 weights per edge in [`Primitive`] order, for
    /// a cell of `blocks` blocks (see the module documentation for the rule).
    pub fn decode(weights: &[[f64; Primitive::COUNT]], blocks: usize) -> Result<Genotype, GenotypeError> {
        let edges = num_edges(blocks);
        if blocks == 0 {
            return Err(GenotypeError::NoBlocks);
        }
        if weights.len() != edges {
            return Err(GenotypeError::AlphaShape { blocks, edges, rows: weights.len(), cols: Primitive::COUNT });
        }
        // The strongest op other than `none`: (weight, op), first index on ties.
        let best_op = |row: &[f64; Primitive::COUNT]| -> (f64, Primitive) {
            Primitive::ALL
                .iter()
                .filter(|p| **p != Primitive::None)
                .fold(None, |best: Option<(f64, Primitive)>, &p| match best {
                    Some((w, _)) if w >= row[p.index()] => best,
                    _ => Some((row[p.index()], p)),
                })
                .expect("seven candidate ops")
        };
        let decoded = (0..blocks)
            .map(|block| {
                let mut candidates: Vec<(usize, f64, Primitive)> = (0..block_inputs(block))
                    .map(|input| {
                        let (strength, op) = best_op(&weights[edge_offset(block) + input]);
                        (input, strength, op)
                    })
                    .collect();
                // Stable sort: equal strengths keep the lower input first.
                candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
                let mut kept = [candidates[0], candidates[1]];
                kept.sort_by_key(|c| c.0);
                kept.map(|(input, _, op)| CellEdge { input, op })
            })
            .collect();
        Genotype::new(decoded)
    }

    /// How close the decoding of `weights` (softmax(α), one row per edge) came to choosing
    /// otherwise: the smallest difference, in softmax weight, between a choice it made and the
    /// runner-up (the second kept input against the best dropped one in each block, the chosen
    /// op against the next op on each kept edge). Below [`NEAR_TIE_MARGIN`] the decoded cell is
    /// close to a coin toss.
    pub fn decision_margin(weights: &[[f64; Primitive::COUNT]], blocks: usize) -> f64 {
        (0..blocks.min(weights.len())).map(|block| Genotype::block_margin(weights, block)).fold(f64::INFINITY, f64::min)
    }

    /// [`Genotype::decision_margin`] of one block: how close its two inputs and their ops came
    /// to another choice (`weights` as there; rows missing from it are left out).
    pub fn block_margin(weights: &[[f64; Primitive::COUNT]], block: usize) -> f64 {
        let mut margin = f64::INFINITY;
        let mut strengths: Vec<(f64, f64)> = (0..block_inputs(block))
            .filter_map(|input| weights.get(edge_offset(block) + input))
            .map(|row| {
                let mut ops: Vec<f64> = Primitive::ALL[1..].iter().map(|p| row[p.index()]).collect();
                ops.sort_by(|a, b| b.total_cmp(a));
                (ops[0], ops[0] - ops[1])
            })
            .collect();
        strengths.sort_by(|a, b| b.0.total_cmp(&a.0));
        for kept in strengths.iter().take(2) {
            margin = margin.min(kept.1);
        }
        if let (Some(second), Some(dropped)) = (strengths.get(1), strengths.get(2)) {
            margin = margin.min(second.0 - dropped.0);
        }
        margin
    }

    /// Decodes raw α logits `[edges, 8]` (any float kind, any device): softmax per row, then
    /// [`Genotype::decode`].
    pub fn decode_logits(alpha: &Tensor, blocks: usize) -> Result<Genotype, GenotypeError> {
        let weights =
            alpha.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Double).softmax(-1, tch::Kind::Double);
        Genotype::decode_weights(&weights, blocks)
    }

    /// [`Genotype::decode`] of a `[edges, 8]` tensor of op weights (softmax(α), possibly
    /// scaled per edge), any float kind, any device.
    pub fn decode_weights(weights: &Tensor, blocks: usize) -> Result<Genotype, GenotypeError> {
        let weights = weights.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Double);
        Genotype::decode(&tensor_rows(&weights, blocks)?, blocks)
    }
}

/// Reads a `[edges, 8]` tensor into rows, checking its shape against `blocks`.
fn tensor_rows(t: &Tensor, blocks: usize) -> Result<Vec<[f64; Primitive::COUNT]>, GenotypeError> {
    let edges = num_edges(blocks);
    let size = t.size();
    let (rows, cols) = match size.as_slice() {
        [r, c] => (*r as usize, *c as usize),
        _ => (0, size.iter().product::<i64>() as usize),
    };
    if size.len() != 2 || rows != edges || cols != Primitive::COUNT {
        return Err(GenotypeError::AlphaShape { blocks, edges, rows, cols });
    }
    let flat = Vec::<f64>::try_from(t.flatten(0, -1)).expect("a double tensor converts to Vec<f64>");
    Ok(flat.chunks_exact(Primitive::COUNT).map(|c| c.try_into().expect("chunks of 8")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Primitive::*;

    #[test]
    fn decision_margin_measures_the_closest_call() {
        let mut weights = uniform(2);
        assert_eq!(Genotype::decision_margin(&weights, 2), 0.0, "uniform: a coin toss");
        // Block 0 (edges 0, 1): both inputs kept; the ops win by 0.3 and 0.2.
        weights[0] = [0.0, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
        weights[1] = [0.0, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2];
        // Block 1 (edges 2, 3, 4): strengths 0.5, 0.45, 0.2: the second kept beats the dropped by 0.25.
        weights[2] = [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        weights[3] = [0.0, 0.45, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0];
        weights[4] = [0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!((Genotype::decision_margin(&weights, 2) - 0.1).abs() < 1e-12, "edge 1's op wins by 0.1");
    }

    fn uniform(blocks: usize) -> Vec<[f64; 8]> {
        vec![[0.125; 8]; num_edges(blocks)]
    }

    #[test]
    fn decode_keeps_the_two_strongest_inputs_and_their_best_ops() {
        let mut w = uniform(2);
        // Block 0: input 1 strong via sep_conv_5x5, input 0 weaker via max_pool.
        w[0] = [0.1, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
        w[1] = [0.0, 0.1, 0.1, 0.1, 0.1, 0.5, 0.1, 0.0];
        // Block 1 (edges 2, 3, 4): inputs 2 and 0 beat input 1.
        w[2] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6];
        w[3] = [0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.0, 0.0];
        w[4] = [0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.3];
        let g = Genotype::decode(&w, 2).unwrap();
        let e = |input, op| CellEdge { input, op };
        assert_eq!(g.blocks(), &[[e(0, MaxPool3x3), e(1, SepConv5x5)], [e(0, DilConv5x5), e(2, SkipConnect)]]);
    }

    #[test]
    fn none_is_ignored_for_strength_and_for_the_op() {
        let mut w = uniform(2);
        // Edge 2 (block 1, input 0) has by far the largest weight on `none`, and a tiny max
        // over the other ops: it must lose to inputs 1 and 2 although its `none` is largest.
        w[2] = [0.93, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01];
        w[3] = [0.40, 0.05, 0.05, 0.05, 0.05, 0.30, 0.05, 0.05];
        w[4] = [0.50, 0.02, 0.02, 0.02, 0.40, 0.02, 0.01, 0.01];
        // Block 0: `none` is the argmax of edge 0, which is kept (only two inputs): the op
        // must be the best other one, avg_pool.
        w[0] = [0.6, 0.05, 0.2, 0.05, 0.025, 0.025, 0.025, 0.025];
        let g = Genotype::decode(&w, 2).unwrap();
        assert_eq!(g.blocks()[0][0], CellEdge { input: 0, op: AvgPool3x3 });
        assert_eq!(g.blocks()[1], [CellEdge { input: 1, op: SepConv5x5 }, CellEdge { input: 2, op: SepConv3x3 }]);
    }

    #[test]
    fn ties_break_towards_the_lower_index() {
        let g = Genotype::decode(&uniform(3), 3).unwrap();
        for block in g.blocks() {
            assert_eq!(block, &[CellEdge { input: 0, op: MaxPool3x3 }, CellEdge { input: 1, op: MaxPool3x3 }]);
        }
    }

    #[test]
    fn decode_rejects_a_wrong_shape() {
        let err = Genotype::decode(&uniform(4), 5).unwrap_err();
        assert_eq!(err, GenotypeError::AlphaShape { blocks: 5, edges: 20, rows: 14, cols: 8 });
    }

    #[test]
    fn decode_logits_applies_the_softmax() {
        // Logits whose argmax is `none` on every edge but with dil_conv_3x3 second.
        let mut logits = vec![0f32; 20 * 8];
        for edge in 0..20 {
            logits[edge * 8] = 5.0;
            logits[edge * 8 + DilConv3x3.index()] = 1.0 + edge as f32 * 0.01;
        }
        let t = Tensor::from_slice(&logits).view([20, 8]);
        let g = Genotype::decode_logits(&t, 5).unwrap();
        // Strength grows with the edge index, so each block keeps its last two inputs.
        for (block, edges) in g.blocks().iter().enumerate() {
            assert_eq!(edges[0].input, block);
            assert_eq!(edges[1].input, block + 1);
            assert!(edges.iter().all(|e| e.op == DilConv3x3));
        }
        assert!(matches!(
            Genotype::decode_logits(&Tensor::zeros([20, 7], (tch::Kind::Float, tch::Device::Cpu)), 5),
            Err(GenotypeError::AlphaShape { cols: 7, .. })
        ));
    }

    #[test]
    fn invalid_genotypes_are_rejected() {
        let e = |input, op| CellEdge { input, op };
        assert_eq!(Genotype::new(vec![]), Err(GenotypeError::NoBlocks));
        assert_eq!(
            Genotype::new(vec![[e(0, SkipConnect), e(2, SkipConnect)]]),
            Err(GenotypeError::InputNotPredecessor { block: 0, slot: 1, input: 2, max: 1 })
        );
        assert_eq!(
            Genotype::new(vec![[e(0, SkipConnect), e(1, SkipConnect)], [e(1, None), e(2, SkipConnect)]]),
            Err(GenotypeError::NoneOp { block: 1, slot: 0 })
        );
        assert_eq!(Genotype::paper().check_blocks(4), Err(GenotypeError::WrongBlockCount { expected: 4, found: 5 }));
    }
}
