//! The Cityscapes data set on disk (facts §8): listing its samples.
//!
//! Layout: `leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png` paired with
//! `gtFine/<split>/<city>/<stem>_gtFine_labelIds.png` (or `gtCoarse/…_gtCoarse_labelIds.png`).
//! Label ids are decoded through the class table (the built-in Cityscapes one unless the
//! config gives another); where only the preprocessed `*_labelTrainIds.png` exists, it is read
//! as train ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::files::{is_file, sorted_entries, LabelRef, SampleRef};
use crate::classes::{ClassTable, LabelDecoder};

/// The layout, for errors.
pub const LAYOUT: &str =
    "<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png";

/// Which annotation set labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Annotation {
    /// `gtFine` (train, val, test).
    #[default]
    Fine,
    /// `gtCoarse` (train, train_extra, val).
    Coarse,
}

impl Annotation {
    fn folder(self) -> &'static str {
        match self {
            Annotation::Fine => "gtFine",
            Annotation::Coarse => "gtCoarse",
        }
    }
}

const IMAGE_SUFFIX: &str = "_leftImg8bit.png";

/// Lists the images of `split` under `root`, sorted by city then file name.
pub fn list_images(root: &Path, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
    if !root.is_dir() {
        return Err(DataError::RootMissing { path: root.to_owned() });
    }
    let split_dir = root.join("leftImg8bit").join(split);
    if !split_dir.is_dir() {
        return Err(DataError::SplitMissing { path: split_dir, format: "cityscapes", layout: LAYOUT });
    }
    let mut images = Vec::new();
    for city in sorted_entries(&split_dir)? {
        if !city.is_dir() {
            continue;
        }
        for file in sorted_entries(&city)? {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(id) = name.strip_suffix(IMAGE_SUFFIX) {
                images.push((id.to_owned(), file.clone()));
            }
        }
    }
    if images.is_empty() {
        return Err(DataError::EmptySplit { path: split_dir, format: "cityscapes", layout: LAYOUT });
    }
    Ok(images)
}

/// Lists the labelled samples of `split` with the built-in Cityscapes table.
pub fn list_samples(root: &Path, split: &str, annotation: Annotation) -> Result<Vec<SampleRef>, DataError> {
    list_samples_with(root, split, annotation, &ClassTable::cityscapes())
}

/// Lists the labelled samples of `split`: every image must have a label file in
/// `<annotation>/<split>/<city>/`, as label ids (decoded through `table`) or else as train ids.
pub fn list_samples_with(
    root: &Path,
    split: &str,
    annotation: Annotation,
    table: &ClassTable,
) -> Result<Vec<SampleRef>, DataError> {
    let label_ids_decoder = Arc::new(LabelDecoder::new(table));
    let train_ids_decoder = Arc::new(LabelDecoder::train_ids(table));
    list_images(root, split)?
        .into_iter()
        .map(|(id, image)| {
            let city = image.parent().and_then(|p| p.file_name()).expect("images sit in city folders");
            let dir = root.join(annotation.folder()).join(split).join(city);
            let gt = annotation.folder();
            let label_ids = dir.join(format!("{id}_{gt}_labelIds.png"));
            let train_ids = dir.join(format!("{id}_{gt}_labelTrainIds.png"));
            let label = if is_file(&label_ids)? {
                LabelRef { path: label_ids, decoder: label_ids_decoder.clone() }
            } else if is_file(&train_ids)? {
                LabelRef { path: train_ids, decoder: train_ids_decoder.clone() }
            } else {
                return Err(DataError::MissingLabel { image, expected: label_ids });
            };
            Ok(SampleRef { id, image, label: Some(label) })
        })
        .collect()
}
