//! Cell-level search space of Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985, §3.1,
//! §4.1.1, §4.3), following DARTS (H. Liu et al., ICLR 2019).
//!
//! - [`Primitive`]: the 8 candidate ops in α's column order.
//! - [`ops`]: the ops as modules, in search-time and deployed definitions.
//! - [`MixedOp`]: the softmax-weighted sum over the ops of every edge leaving one state (the
//!   one implementation; [`reference`] holds the per-edge form the tests compare it with).
//! - [`SearchCell`]: a cell of B blocks built from mixed ops.
//! - [`Widths`]: F and B to channels, for every network.
//! - [`Alpha`]: the `[edges, 8]` architecture parameters shared by every cell.
//! - [`Genotype`]: the decoded cell, and [`FixedCell`], the deployable cell built from it.

pub mod alpha;
pub mod cell;
pub mod conv;
pub mod edges;
pub mod fixed;
pub mod genotype;
pub mod mixed;
pub mod ops;
pub mod partial;
pub mod primitive;
pub mod reference;
pub mod widths;

pub use alpha::Alpha;
pub use cell::{SearchCell, SearchCellConfig};
pub use conv::{count_multiply_adds, Conv2d};
pub use fixed::{FixedCell, FixedCellConfig};
pub use genotype::{CellEdge, Genotype, GenotypeError};
pub use mixed::MixedOp;
pub use ops::{Op, OpConfig, OpStyle, ReluConvBn};
pub use primitive::{Primitive, SearchOp, UnknownPrimitive};
pub use reference::{ReferenceCell, ReferenceMixedOp};
pub use widths::Widths;
