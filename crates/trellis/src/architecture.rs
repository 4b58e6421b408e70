//! The architecture file: a decoded cell and network path, the format every tool of this
//! project reads and writes (paper §4.3).
//!
//! ```json
//! {"cell": [[[0, "dil_conv_5x5"], [1, "sep_conv_3x3"]], ...], "path": [0, 0, 0, 1, ...]}
//! ```
//! `cell` holds one pair of `[input, "op"]` per block, inputs in DARTS numbering (0 = H^{l-2},
//! 1 = H^{l-1}, `2 + k` = block k); `path` one level per layer (0 = rate 4 ... 3 = rate 32).
//! Other top-level fields are allowed and kept on a round trip.

use std::path::{Path, PathBuf};

use cell::{Genotype, GenotypeError};
use serde::{Deserialize, Serialize};

use crate::path::{NetworkPath, PathError};

/// Why an architecture file could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum ArchitectureError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The JSON is malformed or does not describe a valid architecture.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// The cell does not fit the network.
    #[error("{origin}: {source}")]
    Cell { origin: String, source: GenotypeError },
    /// The path does not fit the network.
    #[error("{origin}: {source}")]
    Path { origin: String, source: PathError },
}

/// A decoded architecture: the cell every layer uses and the level of each layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// The decoded cell.
    pub cell: Genotype,
    /// The decoded network path.
    pub path: NetworkPath,
    /// Any other fields of the file (kept, not interpreted).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Architecture {
    /// The architecture found by Auto-DeepLab on Cityscapes (paper Fig. 3; facts §6).
    pub fn paper() -> Architecture {
        Architecture { cell: Genotype::paper(), path: NetworkPath::paper(), extra: Default::default() }
    }

    /// Parses JSON text; `origin` names the source (a file name) in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Architecture, ArchitectureError> {
        serde_json::from_str(text)
            .map_err(|e| ArchitectureError::Parse { origin: origin.to_owned(), message: e.to_string() })
    }

    /// Reads an architecture file.
    pub fn load(path: &Path) -> Result<Architecture, ArchitectureError> {
        let text =
            seg::limits::read_text(path).map_err(|source| ArchitectureError::Io { path: path.to_owned(), source })?;
        Architecture::from_json(&text, &path.display().to_string())
    }

    /// Pretty JSON text of the architecture.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an architecture always serialises")
    }

    /// Writes the architecture atomically: to a temporary file beside `path`, then renamed.
    pub fn save(&self, path: &Path) -> Result<(), ArchitectureError> {
        seg::atomic::write_atomic(path, (self.to_json() + "\n").as_bytes())
            .map_err(|source| ArchitectureError::Io { path: path.to_owned(), source })
    }

    /// Errors unless the architecture fits a network of `blocks` blocks per cell and `layers`
    /// layers; `origin` names the source in errors.
    pub fn check_shape(&self, blocks: usize, layers: usize, origin: &str) -> Result<(), ArchitectureError> {
        self.cell
            .check_blocks(blocks)
            .map_err(|source| ArchitectureError::Cell { origin: origin.to_owned(), source })?;
        self.path.check_layers(layers).map_err(|source| ArchitectureError::Path { origin: origin.to_owned(), source })
    }
}
