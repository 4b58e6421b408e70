//! Errors of the data sets, each naming the file or folder at fault.

use std::path::PathBuf;

/// Why a data set could not be listed or a sample could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data root does not exist.
    #[error("data root {path} does not exist")]
    RootMissing { path: PathBuf },
    /// The split's folder or list does not exist.
    #[error("split {path} does not exist (the {format} layout: {layout})")]
    SplitMissing { path: PathBuf, format: &'static str, layout: &'static str },
    /// The split holds no images.
    #[error("split {path} holds no images (the {format} layout: {layout})")]
    EmptySplit { path: PathBuf, format: &'static str, layout: &'static str },
    /// An image has no label file.
    #[error("image {image} has no label: expected {expected}")]
    MissingLabel { image: PathBuf, expected: PathBuf },
    /// A label file without its image.
    #[error("label {label} has no image: expected {expected}")]
    OrphanLabel { label: PathBuf, expected: String },
    /// Two images with the same name (and so the same label).
    #[error("{first} and {second} are one image twice (same name, different extensions): keep one")]
    DuplicateImage { first: PathBuf, second: PathBuf },
    /// A line of a split list that names no image.
    #[error("{path}: line {line}: {message}")]
    BadList { path: PathBuf, line: usize, message: String },
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A PNG could not be decoded (unreadable, truncated, not a PNG).
    #[error("{path}: cannot decode image: {message}")]
    Decode { path: PathBuf, message: String },
    /// A label PNG that is neither values (grey or palette, up to 8 bits) nor 8-bit colours.
    #[error("{path}: a label PNG must be 8-bit grey, palette indices or 8-bit RGB colours, this one is {color}")]
    LabelChannels { path: PathBuf, color: String },
    /// Image and label of different sizes.
    #[error("{label}: label is {label_size:?} but its image {image} is {image_size:?} (width, height)")]
    SizeMismatch { image: PathBuf, label: PathBuf, image_size: (u32, u32), label_size: (u32, u32) },
    /// A label value outside the class table.
    #[error("{path}: pixel ({x}, {y}) holds {what} {value}, which is not in the {table} class table ({valid})")]
    BadLabel { path: PathBuf, x: u32, y: u32, value: u8, what: &'static str, table: String, valid: String },
    /// A label colour outside the class table's palette.
    #[error("{path}: pixel ({x}, {y}) has the colour {rgb:?}, which is not in the {table} class table's palette")]
    BadColor { path: PathBuf, x: u32, y: u32, rgb: [u8; 3], table: String },
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
