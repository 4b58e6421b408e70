//! The folder format: any data set as images and label PNGs in two mirrored trees,
//!
//! ```text
//! <root>/classes.toml                 the class table (or `data.classes` in the config)
//! <root>/images/<split>/<any/sub/folders>/<name>.{png,jpg,jpeg}
//! <root>/labels/<split>/<any/sub/folders>/<name>.png
//! ```
//!
//! matched by the path below the split folder without extension (that path is the sample's
//! id). Labels are grey or palette PNGs of stored values, or RGB PNGs in the table's colours.
//! Every image needs its label and every label its image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::DataError;
use super::files::{is_image_file, LabelRef, SampleRef};
use crate::classes::{ClassTable, LabelDecoder};

/// The layout, for errors.
pub const LAYOUT: &str = "<root>/images/<split>/**/<name>.{png,jpg,jpeg} and <root>/labels/<split>/**/<name>.png";

/// The id of `path` below `dir`: the relative path without extension, `/`-separated.
fn id_of(path: &Path, dir: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path).with_extension("");
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// The images of `split`, sorted by id.
pub fn list_images(root: &Path, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
    if !root.is_dir() {
        return Err(DataError::RootMissing { path: root.to_owned() });
    }
    let dir = root.join("images").join(split);
    if !dir.is_dir() {
        return Err(DataError::SplitMissing { path: dir, format: "folder", layout: LAYOUT });
    }
    let mut images: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in crate::walk::files(&dir, None, is_image_file)? {
        let id = id_of(&path, &dir);
        if let Some(first) = images.insert(id, path.clone()) {
            return Err(DataError::DuplicateImage { first, second: path });
        }
    }
    if images.is_empty() {
        return Err(DataError::EmptySplit { path: dir, format: "folder", layout: LAYOUT });
    }
    Ok(images.into_iter().collect())
}

/// The labelled samples of `split`.
pub fn list_samples(root: &Path, split: &str, table: &ClassTable) -> Result<Vec<SampleRef>, DataError> {
    let images = list_images(root, split)?;
    let label_dir = root.join("labels").join(split);
    if !label_dir.is_dir() {
        return Err(DataError::SplitMissing { path: label_dir, format: "folder", layout: LAYOUT });
    }
    let mut labels: BTreeMap<String, PathBuf> =
        crate::walk::files(&label_dir, None, |p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))?
            .into_iter()
            .map(|path| (id_of(&path, &label_dir), path))
            .collect();
    let decoder = Arc::new(LabelDecoder::new(table));
    let samples = images
        .into_iter()
        .map(|(id, image)| match labels.remove(&id) {
            Some(path) => Ok(SampleRef { id, image, label: Some(LabelRef { path, decoder: decoder.clone() }) }),
            None => Err(DataError::MissingLabel { image, expected: label_dir.join(format!("{id}.png")) }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((id, label)) = labels.into_iter().next() {
        let expected = format!("{}.{{png,jpg,jpeg}}", root.join("images").join(split).join(&id).display());
        return Err(DataError::OrphanLabel { label, expected });
    }
    Ok(samples)
}
