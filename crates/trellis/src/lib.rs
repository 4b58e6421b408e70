//! Network-level search space of Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985,
//! §3.2, §4.3): levels, the network path and the architecture file.
//!
//! The supernet, β, Viterbi decoding and the decoded backbone are to come (see the issues).

pub mod architecture;
pub mod path;

pub use architecture::{Architecture, ArchitectureError};
pub use path::{NetworkPath, PathError, NUM_LEVELS};
