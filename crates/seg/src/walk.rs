//! Listing the files under a folder, as `search predict` and `search eval --pred` do: recursive,
//! following symlinked folders (a data set is often a tree of links) but each real folder only
//! once, so a link loop ends instead of spinning; and skipping one folder (the output folder
//! when it lies inside the input one, so that a run never reads its own outputs).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::data::DataError;

/// The files under `root` whose path `keep` accepts, sorted; `skip` (if it exists) and
/// everything under it are left out.
pub fn files(root: &Path, skip: Option<&Path>, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let skip = skip.and_then(|s| std::fs::canonicalize(s).ok());
    let mut visited = HashSet::new();
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let real = std::fs::canonicalize(&dir).map_err(DataError::io(&dir))?;
        if Some(&real) == skip.as_ref() || !visited.insert(real) {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(DataError::io(&dir))? {
            let path = entry.map_err(DataError::io(&dir))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if keep(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_loops_end_and_the_skipped_folder_is_left_out() {
        let root = std::env::temp_dir().join(format!("adl-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a/out")).unwrap();
        std::fs::write(root.join("a/x.png"), b"").unwrap();
        std::fs::write(root.join("a/out/y.png"), b"").unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/self")).unwrap();
        let png = |p: &Path| p.extension().is_some_and(|e| e == "png");
        let all = files(&root, None, png).unwrap();
        assert_eq!(all.len(), 2, "each real file once: {all:?}");
        let skipped = files(&root, Some(&root.join("a/out")), png).unwrap();
        assert_eq!(skipped, [root.join("a/x.png")]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
