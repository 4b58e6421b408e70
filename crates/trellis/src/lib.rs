//! Network-level search space of Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985,
//! §3.2, §4.1.2, §4.3, §5.2): levels and transitions, β, the search network, Viterbi decoding,
//! the network path, the architecture file and the decoded (deployable) network.

pub mod arch;
pub mod architecture;
pub mod cost;
pub mod cost_table;
pub mod decode;
pub mod decoded;
pub mod execution;
pub mod margins;
pub mod network;
pub mod path;
pub mod progressive;
pub mod recompute;
pub mod space;
pub mod viterbi;

pub use arch::{normalize_beta, normalize_edges, ArchParams, ArchWeights, Entropies};
pub use cost::{Component, Cost, CostError, CostKind, CostModel, CostTable, Expected, RelaxedCell, TableSpec};
pub use cost_table::{build_table, cost_model, Timing};
pub use decode::{decode, decode_file, decode_with_edges, read_raw, DecodeError, RawParams, RawTensors};
pub use decoded::{count_parameters, DecodedNetwork, DecodedNetworkConfig, DropPath, ParameterCount};
pub use execution::Execution;
pub use margins::Margins;
pub use network::{level_sizes, Levels, SearchNetwork, SearchNetworkConfig, PAPER_STEM_CHANNELS};
pub use recompute::{Recompute, RecomputePlan};
pub use space::Transition;
pub use viterbi::viterbi;

pub use architecture::{Architecture, ArchitectureError};
pub use path::{NetworkPath, PathError, NUM_LEVELS};
