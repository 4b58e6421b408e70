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
        let file = ["arch.json", "arch/final.json"].map(|f| path.join(f)).into_iter().find(|f| f.is_file());
        let file = file.ok_or_else(|| ArchitectureError::Parse {
            origin: path.display().to_string(),
            message: "a folder without arch.json (a retraining) or arch/final.json (a finished search)".into(),
        })?;
        Architecture::load(&file)
    } else {
        Architecture::load(path)
    }
}
