//! Pascal VOC 2012 (M. Everingham et al.; the paper's §5.3) on disk:
//!
//! ```text
//! <root>/JPEGImages/<id>.jpg
//! <root>/SegmentationClass/<id>.png            palette PNGs: indices 0..=20, 255 on boundaries
//! <root>/SegmentationClassAug/<id>.png         the augmented set (SBD), when present
//! <root>/ImageSets/Segmentation/<split>.txt    one id per line (train, val, trainval)
//! <root>/ImageSets/SegmentationAug/<split>.txt the augmented lists (e.g. train_aug)
//! ```
//!
//! `<root>` is `VOC2012` (a `VOCdevkit` holding `VOC2012/` is accepted too). A list line is an
//! id, or the DeepLab form `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png` (the id is
//! taken from the first path). A label is looked for in `SegmentationClass/` first, then in
//! `SegmentationClassAug/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::DataError;
use super::files::{is_file, LabelRef, SampleRef};
use crate::classes::{ClassTable, LabelDecoder};

/// The layout, for errors.
pub const LAYOUT: &str =
    "<root>/ImageSets/Segmentation/<split>.txt listing ids of <root>/JPEGImages/<id>.jpg and SegmentationClass/<id>.png";

/// The `VOC2012` folder of `root`: itself, or `root/VOC2012`.
pub fn voc_root(root: &Path) -> Result<PathBuf, DataError> {
    if !root.is_dir() {
        return Err(DataError::RootMissing { path: root.to_owned() });
    }
    let nested = root.join("VOC2012");
    Ok(if !root.join("JPEGImages").is_dir() && nested.join("JPEGImages").is_dir() { nested } else { root.to_owned() })
}

/// The ids of `split` from its list file, in list order, with their line numbers.
fn read_list(root: &Path, split: &str) -> Result<(PathBuf, Vec<(usize, String)>), DataError> {
    let candidates = [
        root.join("ImageSets/Segmentation").join(format!("{split}.txt")),
        root.join("ImageSets/SegmentationAug").join(format!("{split}.txt")),
    ];
    let Some(list) = candidates.iter().find(|p| p.is_file()) else {
        return Err(DataError::SplitMissing { path: candidates[0].clone(), format: "voc", layout: LAYOUT });
    };
    let text = crate::limits::read_text(list).map_err(DataError::io(list))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(first) = line.split_whitespace().next() else { continue };
        let id = Path::new(first).file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(DataError::BadList {
                path: list.clone(),
                line: n + 1,
                message: format!("`{first}` names no image"),
            });
        }
        ids.push((n + 1, id));
    }
    if ids.is_empty() {
        return Err(DataError::EmptySplit { path: list.clone(), format: "voc", layout: LAYOUT });
    }
    Ok((list.clone(), ids))
}

/// The images of `split`, in list order; every one must exist.
pub fn list_images(root: &Path, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
    let root = voc_root(root)?;
    let (list, ids) = read_list(&root, split)?;
    ids.into_iter()
        .map(|(line, id)| {
            let image = root.join("JPEGImages").join(format!("{id}.jpg"));
            if !is_file(&image)? {
                return Err(DataError::BadList {
                    path: list.clone(),
                    line,
                    message: format!("lists `{id}`, but {} does not exist", image.display()),
                });
            }
            Ok((id, image))
        })
        .collect()
}

/// The labelled samples of `split`.
pub fn list_samples(root: &Path, split: &str, table: &ClassTable) -> Result<Vec<SampleRef>, DataError> {
    let voc = voc_root(root)?;
    let decoder = Arc::new(LabelDecoder::new(table));
    list_images(root, split)?
        .into_iter()
        .map(|(id, image)| {
            let class = voc.join("SegmentationClass").join(format!("{id}.png"));
            let aug = voc.join("SegmentationClassAug").join(format!("{id}.png"));
            let path = if is_file(&class)? {
                class
            } else if is_file(&aug)? {
                aug
            } else {
                return Err(DataError::MissingLabel { image, expected: class });
            };
            Ok(SampleRef { id, image, label: Some(LabelRef { path, decoder: decoder.clone() }) })
        })
        .collect()
}
