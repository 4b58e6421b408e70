//! `--arch FILE|RUN|paper`: where a command gets its architecture.

use std::path::Path;

use trellis::{Architecture, ArchitectureError};

/// The architecture named by an `--arch` argument: `paper` for the one found by Auto-DeepLab on
/// Cityscapes (paper Fig. 3), a run folder (a retraining's `arch.json`, else a search's
/// `arch/final.json`), anything else an architecture JSON file.
pub fn resolve(spec: &str) -> Result<Architecture, ArchitectureError> {
    let path = Path::new(spec);
    if spec == "paper" {
        Ok(Architecture::paper())
    } else if path.is_dir() {
        let retrained = path.join("arch.json");
        Architecture::load(&if retrained.is_file() { retrained } else { path.join("arch/final.json") })
    } else {
        Architecture::load(path)
    }
}
