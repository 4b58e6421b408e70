//! `--arch FILE|paper`: where a command gets its architecture.

use std::path::Path;

use trellis::{Architecture, ArchitectureError};

/// The architecture named by an `--arch` argument: `paper` for the one found by Auto-DeepLab on
/// Cityscapes (paper Fig. 3), anything else an architecture JSON file.
pub fn resolve(spec: &str) -> Result<Architecture, ArchitectureError> {
    if spec == "paper" {
        Ok(Architecture::paper())
    } else {
        Architecture::load(Path::new(spec))
    }
}
