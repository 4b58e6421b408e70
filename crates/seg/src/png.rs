//! Writing PNGs atomically: to a temporary file beside the target, then renamed, so that an
//! interrupted run never leaves a truncated image behind.

use std::path::Path;

use crate::data::DataError;

/// Writes `data` (`[H, W, channels]` bytes of `color`) as a PNG at `path`.
pub fn write_png(path: &Path, width: u32, height: u32, color: image::ColorType, data: &[u8]) -> Result<(), DataError> {
    crate::atomic::write_atomic_with(path, |tmp| {
        image::save_buffer_with_format(tmp, data, width, height, color, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
    .map_err(|e| DataError::Encode { path: path.to_owned(), message: e.to_string() })
}
