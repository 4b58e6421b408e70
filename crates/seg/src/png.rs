//! Writing images atomically: encoded in memory, then written through [`crate::atomic`] (a
//! temporary file beside the target, its size checked, then renamed), so that an interrupted run
//! or a full disk never leaves a truncated or empty image behind. PNG (grey, RGB, or palette
//! indices with their colour map) and JPEG.

use std::path::Path;

use crate::data::DataError;

/// Writes `data` (`[H, W, channels]` bytes of `color`) as a PNG at `path`.
pub fn write_png(path: &Path, width: u32, height: u32, color: image::ColorType, data: &[u8]) -> Result<(), DataError> {
    write_image(path, width, height, color, data, image::ImageFormat::Png)
}

/// Writes `[H, W, 3]` RGB bytes as a JPEG (quality 90) at `path`.
pub fn write_jpeg(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), DataError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| DataError::Encode { path: path.to_owned(), message: e.to_string() })?;
    store(path, &bytes)
}

/// Writes encoded `bytes` to `path` atomically, its size checked.
fn store(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    crate::atomic::write_atomic(path, bytes)
        .map_err(|e| DataError::Encode { path: path.to_owned(), message: e.to_string() })
}

fn write_image(
    path: &Path,
    width: u32,
    height: u32,
    color: image::ColorType,
    data: &[u8],
    format: image::ImageFormat,
) -> Result<(), DataError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::write_buffer_with_format(&mut bytes, data, width, height, color, format)
        .map_err(|e| DataError::Encode { path: path.to_owned(), message: e.to_string() })?;
    store(path, bytes.get_ref())
}

/// Writes `[H, W]` indices as an 8-bit palette PNG whose colour map is `palette` (index `i` is
/// `palette[i]`; at most 256 colours), as Pascal VOC stores its labels.
pub fn write_palette_png(
    path: &Path,
    width: u32,
    height: u32,
    indices: &[u8],
    palette: &[[u8; 3]],
) -> Result<(), DataError> {
    assert!(palette.len() <= 256, "a palette has at most 256 colours");
    let mut bytes = Vec::new();
    let encoded = (|| -> Result<(), png::EncodingError> {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(palette.iter().flatten().copied().collect::<Vec<u8>>());
        let mut writer = encoder.write_header()?;
        writer.write_image_data(indices)?;
        writer.finish()
    })();
    encoded.map_err(|e| DataError::Encode { path: path.to_owned(), message: e.to_string() })?;
    store(path, &bytes)
}
