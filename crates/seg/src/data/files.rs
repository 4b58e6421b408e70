//! Reading the files of any data set: RGB images (PNG or JPEG, whatever their extension says)
//! and label PNGs, decoded into train ids through the data set's [`LabelDecoder`].
//!
//! A label PNG is read without the decoder's colour conversion (the `png` crate, not `image`):
//! 8-bit grey and palette PNGs give their stored values (a VOC `SegmentationClass` PNG gives its
//! palette indices, as PIL's mode `P` does), RGB PNGs give colours, looked up in the table's
//! palette. Labels are never JPEG: compression changes the values.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::DataError;
use crate::classes::LabelDecoder;

/// A label file and how its values become train ids.
#[derive(Debug, Clone)]
pub struct LabelRef {
    pub path: PathBuf,
    pub decoder: Arc<LabelDecoder>,
}

impl PartialEq for LabelRef {
    fn eq(&self, other: &LabelRef) -> bool {
        self.path == other.path && self.decoder.table == other.decoder.table
    }
}

/// One image of a split, with its label file when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRef {
    /// The image's name in the data set: the prefix of the results format for Cityscapes
    /// (`<city>_<seq>_<frame>`), the path below the split folder without extension for the
    /// folder format, the file stem for VOC and ADE20K. Predictions are named after it.
    pub id: String,
    /// The RGB image (PNG or JPEG).
    pub image: PathBuf,
    /// The label file.
    pub label: Option<LabelRef>,
}

/// A decoded sample: interleaved RGB bytes and one train id per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub id: String,
    pub width: u32,
    pub height: u32,
    /// `[H, W, 3]` RGB, row-major.
    pub image: Vec<u8>,
    /// `[H, W]` train ids (0..classes, 255 = ignore).
    pub label: Vec<u8>,
}

/// True for the extensions of images we read: `png`, `jpg`, `jpeg` (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// Decodes an RGB image, PNG or JPEG: `(width, height, [H, W, 3] bytes)`. A truncated file is
/// an error naming it (the JPEG decoder would otherwise fill the missing rows with grey).
pub fn read_rgb(path: &Path) -> Result<(u32, u32, Vec<u8>), DataError> {
    let decode = |message: String| DataError::Decode { path: path.to_owned(), message };
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    let reader =
        image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format().map_err(DataError::io(path))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        return Err(decode(format!(
            "the JPEG is truncated ({} bytes, no end-of-image marker after its last scan)",
            bytes.len()
        )));
    }
    let image = reader.decode().map_err(|e| decode(e.to_string()))?.into_rgb8();
    Ok((image.width(), image.height(), image.into_raw()))
}

/// Whether a JPEG stream ends its last scan with an end-of-image marker (`FF D9`). Inside a
/// scan's entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so an
/// `FF D9` after the last start-of-scan (`FF DA`) is the real end; a file cut short lacks it.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at + 2..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// The pixels of a label PNG as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelPixels {
    /// `[H, W]` values: 8-bit grey, or palette indices.
    Values(Vec<u8>),
    /// `[H, W, 3]` colours.
    Colors(Vec<u8>),
}

/// Reads a label PNG: `(width, height, pixels)`. Grey and palette PNGs of 1 to 8 bits give
/// values, 8-bit RGB and RGBA give colours (alpha dropped); anything else is refused.
pub fn read_label_pixels(path: &Path) -> Result<(u32, u32, LabelPixels), DataError> {
    let decode = |message: String| DataError::Decode { path: path.to_owned(), message };
    let file = std::fs::File::open(path).map_err(DataError::io(path))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| decode(format!("{e} (labels must be PNG files: lossy formats change the values)")))?;
    let size = reader.output_buffer_size().ok_or_else(|| decode("the image is too large".into()))?;
    let mut buffer = vec![0u8; size];
    let info = reader.next_frame(&mut buffer).map_err(|e| decode(e.to_string()))?;
    let (width, height) = (info.width, info.height);
    let (w, h) = (width as usize, height as usize);
    let depth = info.bit_depth as u8;
    let channels_error = || DataError::LabelChannels {
        path: path.to_owned(),
        color: format!("{:?} with {depth}-bit samples", info.color_type),
    };
    use png::ColorType;
    let pixels = match info.color_type {
        ColorType::Grayscale | ColorType::Indexed if depth <= 8 => {
            let per_byte = 8 / depth as usize;
            let mask = ((1u16 << depth) - 1) as u8;
            let mut values = Vec::with_capacity(w * h);
            for row in buffer.chunks(info.line_size).take(h) {
                values.extend((0..w).map(|x| {
                    let byte = row[x / per_byte];
                    let shift = 8 - depth as usize * (x % per_byte + 1);
                    (byte >> shift) & mask
                }));
            }
            LabelPixels::Values(values)
        }
        ColorType::Rgb | ColorType::Rgba if depth == 8 => {
            let channels = if info.color_type == ColorType::Rgb { 3 } else { 4 };
            let mut colors = Vec::with_capacity(3 * w * h);
            for row in buffer.chunks(info.line_size).take(h) {
                for px in row[..w * channels].chunks_exact(channels) {
                    colors.extend_from_slice(&px[..3]);
                }
            }
            LabelPixels::Colors(colors)
        }
        _ => return Err(channels_error()),
    };
    Ok((width, height, pixels))
}

/// Reads a label PNG into train ids through `decoder`, refusing any value or colour the table
/// does not know (the error names the file, the pixel and the value).
pub fn read_label(path: &Path, decoder: &LabelDecoder) -> Result<(u32, u32, Vec<u8>), DataError> {
    let (width, height, pixels) = read_label_pixels(path)?;
    let at = |i: usize| ((i % width as usize) as u32, (i / width as usize) as u32);
    let train = match pixels {
        LabelPixels::Values(values) => {
            let mut train = Vec::with_capacity(values.len());
            for (i, &v) in values.iter().enumerate() {
                match decoder.value(v) {
                    Some(t) => train.push(t),
                    None => {
                        let (x, y) = at(i);
                        return Err(DataError::BadLabel {
                            path: path.to_owned(),
                            x,
                            y,
                            value: v,
                            what: decoder.value_name,
                            table: decoder.table.clone(),
                            valid: decoder.valid.clone(),
                        });
                    }
                }
            }
            train
        }
        LabelPixels::Colors(colors) => {
            let mut train = Vec::with_capacity(colors.len() / 3);
            for (i, px) in colors.chunks_exact(3).enumerate() {
                let rgb = [px[0], px[1], px[2]];
                match decoder.color(rgb) {
                    Some(t) => train.push(t),
                    None => {
                        let (x, y) = at(i);
                        return Err(DataError::BadColor {
                            path: path.to_owned(),
                            x,
                            y,
                            rgb,
                            table: decoder.table.clone(),
                        });
                    }
                }
            }
            train
        }
    };
    Ok((width, height, train))
}

/// Reads an image and its label, checking that their sizes agree.
pub fn read_sample(sample: &SampleRef) -> Result<Sample, DataError> {
    let (width, height, image) = read_rgb(&sample.image)?;
    let label = sample.label.as_ref().expect("read_sample needs a labelled sample");
    let (lw, lh, train) = read_label(&label.path, &label.decoder)?;
    if (lw, lh) != (width, height) {
        return Err(DataError::SizeMismatch {
            image: sample.image.clone(),
            label: label.path.clone(),
            image_size: (width, height),
            label_size: (lw, lh),
        });
    }
    Ok(Sample { id: sample.id.clone(), width, height, image, label: train })
}

/// The entries of `dir`, sorted.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(DataError::io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(DataError::io(dir)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Whether `path` is a file: `Ok(false)` when it does not exist, an error when it cannot be
/// looked at (a label folder that cannot be read is an I/O error, not a missing label).
pub(crate) fn is_file(path: &Path) -> Result<bool, DataError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.is_file()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DataError::Io { path: path.to_owned(), source: e }),
    }
}
