//! Errors of the data sets, each naming the file or folder at fault.

use std::path::PathBuf;

/// Why a data set could not be listed or a sample could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data root does not exist.
    #[error("data root {path} does not exist")]
    RootMissing { path: PathBuf },
    /// The split's image folder does not exist.
    #[error("split folder {path} does not exist (expected <root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png)")]
    SplitMissing { path: PathBuf },
    /// The split holds no images.
    #[error("split folder {path} holds no *_leftImg8bit.png images")]
    EmptySplit { path: PathBuf },
    /// An image has no label file.
    #[error("image {image} has no label: expected {expected}")]
    MissingLabel { image: PathBuf, expected: PathBuf },
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A PNG could not be decoded (unreadable, truncated, not a PNG).
    #[error("{path}: cannot decode image: {message}")]
    Decode { path: PathBuf, message: String },
    /// A label PNG with more than one channel.
    #[error("{path}: a label PNG must have a single 8-bit channel, this one is {color}")]
    LabelChannels { path: PathBuf, color: String },
    /// Image and label of different sizes.
    #[error("{label}: label is {label_size:?} but its image {image} is {image_size:?} (width, height)")]
    SizeMismatch { image: PathBuf, label: PathBuf, image_size: (u32, u32), label_size: (u32, u32) },
    /// A label value outside the Cityscapes table.
    #[error("{path}: pixel ({x}, {y}) holds {what} {value}, which is not in the Cityscapes table ({valid})")]
    BadLabel { path: PathBuf, x: u32, y: u32, value: u8, what: &'static str, valid: &'static str },
    /// Examples of different sizes in one batch (evaluation of images of different sizes).
    #[error("{id} is {size:?} (width, height) after transforms but its batch is {batch:?}; use batch 1 for images of different sizes")]
    BatchSizes { id: String, size: (u32, u32), batch: (u32, u32) },
    /// A PNG could not be written.
    #[error("{path}: cannot write image: {message}")]
    Encode { path: PathBuf, message: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}
