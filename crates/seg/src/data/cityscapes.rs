//! The Cityscapes data set on disk (facts §8): listing and reading samples.
//!
//! Layout: `leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png` paired with
//! `gtFine/<split>/<city>/<stem>_gtFine_labelIds.png` (or `gtCoarse/…_gtCoarse_labelIds.png`).
//! Label ids are mapped to the 19 train ids on load, everything else to 255. Where only the
//! preprocessed `*_labelTrainIds.png` exists, it is read as train ids.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::DataError;
use crate::labels::{self, IGNORE, MAX_LABEL_ID, NUM_CLASSES};

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

/// How a label file encodes classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelEncoding {
    /// Cityscapes label ids 0..=33 (`*_labelIds.png`).
    LabelIds,
    /// Train ids 0..19 and 255 (`*_labelTrainIds.png`).
    TrainIds,
}

/// One image of a split, with its label file when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    /// `<city>_<seq>_<frame>`, the prefix the results format uses.
    pub id: String,
    /// The RGB image.
    pub image: PathBuf,
    /// The label file and its encoding.
    pub label: Option<(PathBuf, LabelEncoding)>,
}

/// A decoded sample: interleaved RGB bytes and one train id per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub id: String,
    pub width: u32,
    pub height: u32,
    /// `[H, W, 3]` RGB, row-major.
    pub image: Vec<u8>,
    /// `[H, W]` train ids (0..19, 255 = ignore).
    pub label: Vec<u8>,
}

const IMAGE_SUFFIX: &str = "_leftImg8bit.png";

/// Lists the images of `split` under `root`, sorted by city then file name.
pub fn list_images(root: &Path, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
    if !root.is_dir() {
        return Err(DataError::RootMissing { path: root.to_owned() });
    }
    let split_dir = root.join("leftImg8bit").join(split);
    if !split_dir.is_dir() {
        return Err(DataError::SplitMissing { path: split_dir });
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
        return Err(DataError::EmptySplit { path: split_dir });
    }
    Ok(images)
}

/// Lists the labelled samples of `split`: every image must have a label file in
/// `<annotation>/<split>/<city>/`, as label ids or else as train ids.
pub fn list_samples(root: &Path, split: &str, annotation: Annotation) -> Result<Vec<SampleRef>, DataError> {
    list_images(root, split)?
        .into_iter()
        .map(|(id, image)| {
            let city = image.parent().and_then(|p| p.file_name()).expect("images sit in city folders");
            let dir = root.join(annotation.folder()).join(split).join(city);
            let gt = annotation.folder();
            let label_ids = dir.join(format!("{id}_{gt}_labelIds.png"));
            let train_ids = dir.join(format!("{id}_{gt}_labelTrainIds.png"));
            // A label folder that cannot be read is an I/O error, not a missing label.
            let present = |path: &Path| match std::fs::metadata(path) {
                Ok(meta) => Ok(meta.is_file()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(DataError::Io { path: path.to_owned(), source: e }),
            };
            let label = if present(&label_ids)? {
                (label_ids, LabelEncoding::LabelIds)
            } else if present(&train_ids)? {
                (train_ids, LabelEncoding::TrainIds)
            } else {
                return Err(DataError::MissingLabel { image, expected: label_ids });
            };
            Ok(SampleRef { id, image, label: Some(label) })
        })
        .collect()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(DataError::io(dir)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Decodes an RGB image: `(width, height, [H, W, 3] bytes)`.
pub fn read_rgb(path: &Path) -> Result<(u32, u32, Vec<u8>), DataError> {
    let decode = |message: String| DataError::Decode { path: path.to_owned(), message };
    let image = image::ImageReader::open(path)
        .map_err(DataError::io(path))?
        .with_guessed_format()
        .map_err(DataError::io(path))?
        .decode()
        .map_err(|e| decode(e.to_string()))?
        .into_rgb8();
    Ok((image.width(), image.height(), image.into_raw()))
}

/// Decodes a single-channel 8-bit PNG: `(width, height, [H, W] bytes)`.
pub fn read_gray(path: &Path) -> Result<(u32, u32, Vec<u8>), DataError> {
    let image = image::ImageReader::open(path)
        .map_err(DataError::io(path))?
        .with_guessed_format()
        .map_err(DataError::io(path))?
        .decode()
        .map_err(|e| DataError::Decode { path: path.to_owned(), message: e.to_string() })?;
    match image {
        image::DynamicImage::ImageLuma8(gray) => Ok((gray.width(), gray.height(), gray.into_raw())),
        other => Err(DataError::LabelChannels { path: path.to_owned(), color: format!("{:?}", other.color()) }),
    }
}

/// Reads a label file into train ids, rejecting values outside the Cityscapes table.
pub fn read_label(path: &Path, encoding: LabelEncoding) -> Result<(u32, u32, Vec<u8>), DataError> {
    let (width, height, mut values) = read_gray(path)?;
    let bad = |index: usize, value: u8, what, valid| DataError::BadLabel {
        path: path.to_owned(),
        x: (index % width as usize) as u32,
        y: (index / width as usize) as u32,
        value,
        what,
        valid,
    };
    match encoding {
        LabelEncoding::LabelIds => {
            if let Some(i) = values.iter().position(|&v| v > MAX_LABEL_ID) {
                return Err(bad(i, values[i], "label id", "0..=33"));
            }
            for v in &mut values {
                *v = labels::LABEL_TO_TRAIN[*v as usize];
            }
        }
        LabelEncoding::TrainIds => {
            if let Some(i) = values.iter().position(|&v| v as usize >= NUM_CLASSES && v != IGNORE) {
                return Err(bad(i, values[i], "train id", "0..=18 or 255"));
            }
        }
    }
    Ok((width, height, values))
}

/// Reads an image and its label, checking that their sizes agree.
pub fn read_sample(sample: &SampleRef) -> Result<Sample, DataError> {
    let (width, height, image) = read_rgb(&sample.image)?;
    let (label_path, encoding) = sample.label.as_ref().expect("read_sample needs a labelled sample");
    let (lw, lh, label) = read_label(label_path, *encoding)?;
    if (lw, lh) != (width, height) {
        return Err(DataError::SizeMismatch {
            image: sample.image.clone(),
            label: label_path.clone(),
            image_size: (width, height),
            label_size: (lw, lh),
        });
    }
    Ok(Sample { id: sample.id.clone(), width, height, image, label })
}
