//! α, the cell-level architecture parameters (paper §3.1, Eq. 1; DARTS §2.2).
//!
//! One tensor of raw logits of shape `[edges, 8]` (20 x 8 for B = 5), shared by every cell of
//! every layer and level. It lives in the architecture VarStore, never in the weights' one;
//! cells take its row-wise softmax as an argument.

use tch::{nn, Kind, Tensor};

use crate::edges::num_edges;
use crate::primitive::Primitive;

/// Standard deviation of α's initialisation: 1e-3 * N(0, 1) (paper §4.2).
pub const ALPHA_INIT_STD: f64 = 1e-3;

/// The cell architecture parameters α: raw logits `[edges, 8]`.
#[derive(Debug)]
pub struct Alpha {
    logits: Tensor,
    blocks: usize,
}

impl Alpha {
    /// Creates α for cells of `blocks` blocks as variable `alpha` under `p`, which should be
    /// a path of the architecture VarStore.
    pub fn new(p: &nn::Path, blocks: usize) -> Alpha {
        let shape = [num_edges(blocks) as i64, Primitive::COUNT as i64];
        let logits = p.var("alpha", &shape, nn::Init::Randn { mean: 0.0, stdev: ALPHA_INIT_STD });
        Alpha { logits, blocks }
    }

    /// Raw logits, `[edges, 8]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// Number of blocks of the cells this α parameterises.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Row-wise softmax over the 8 ops, `[edges, 8]`: the mixing weights of every edge.
    /// Computed once per forward pass and handed to every cell.
    pub fn weights(&self) -> Tensor {
        self.logits.softmax(-1, float_or_double(self.logits.kind()))
    }
}

/// The kind architecture weights and losses are computed in: double stays double (the
/// finite-difference checks of the architecture gradient run the whole network in double),
/// anything else (fp32, or fp16/bf16 under autocast) is computed in fp32.
pub fn float_or_double(kind: Kind) -> Kind {
    if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}
