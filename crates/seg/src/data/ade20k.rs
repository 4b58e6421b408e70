//! ADE20K SceneParsing (B. Zhou et al., CVPR 2017; the paper's §5.4) on disk:
//!
//! ```text
//! <root>/images/{training,validation}/ADE_<split>_<n>.jpg
//! <root>/annotations/{training,validation}/ADE_<split>_<n>.png   grey: 0 other (ignored), 1..=150
//! ```
//!
//! `<root>` is `ADEChallengeData2016` (a folder holding it is accepted too); the splits may be
//! named `train` and `val`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::DataError;
use super::files::{is_file, is_image_file, sorted_entries, LabelRef, SampleRef};
use crate::classes::{ClassTable, LabelDecoder};

/// The layout, for errors.
pub const LAYOUT: &str = "<root>/images/<training|validation>/*.jpg and <root>/annotations/<training|validation>/*.png";

/// The `ADEChallengeData2016` folder of `root` and the split's folder name.
fn locate(root: &Path, split: &str) -> Result<(PathBuf, &'static str), DataError> {
    if !root.is_dir() {
        return Err(DataError::RootMissing { path: root.to_owned() });
    }
    let nested = root.join("ADEChallengeData2016");
    let root = if !root.join("images").is_dir() && nested.join("images").is_dir() { nested } else { root.to_owned() };
    let folder = match split {
        "train" | "training" => "training",
        "val" | "validation" => "validation",
        other => {
            return Err(DataError::SplitMissing {
                path: root.join("images").join(other),
                format: "ade20k",
                layout: "splits are training (train) and validation (val)",
            })
        }
    };
    Ok((root, folder))
}

/// The images of `split`, sorted by name.
pub fn list_images(root: &Path, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
    let (root, folder) = locate(root, split)?;
    let dir = root.join("images").join(folder);
    if !dir.is_dir() {
        return Err(DataError::SplitMissing { path: dir, format: "ade20k", layout: LAYOUT });
    }
    let images: Vec<(String, PathBuf)> = sorted_entries(&dir)?
        .into_iter()
        .filter(|p| is_image_file(p))
        .map(|p| (p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), p))
        .collect();
    if images.is_empty() {
        return Err(DataError::EmptySplit { path: dir, format: "ade20k", layout: LAYOUT });
    }
    Ok(images)
}

/// The labelled samples of `split`.
pub fn list_samples(root: &Path, split: &str, table: &ClassTable) -> Result<Vec<SampleRef>, DataError> {
    let images = list_images(root, split)?;
    let (root, folder) = locate(root, split)?;
    let decoder = Arc::new(LabelDecoder::new(table));
    images
        .into_iter()
        .map(|(id, image)| {
            let path = root.join("annotations").join(folder).join(format!("{id}.png"));
            if !is_file(&path)? {
                return Err(DataError::MissingLabel { image, expected: path });
            }
            Ok(SampleRef { id, image, label: Some(LabelRef { path, decoder: decoder.clone() }) })
        })
        .collect()
}
