//! Bounds on what is read from files: a text file (a config, an architecture, raw α and β) is
//! refused past [`MAX_TEXT_BYTES`] before it is read, so that a damaged or hostile file cannot
//! make the tool allocate without limit. Shapes read from files have their own bounds where they
//! are parsed (`cell::genotype::MAX_BLOCKS`, `trellis::path::MAX_LAYERS`).

use std::io;
use std::path::Path;

/// The largest text file read: 16 MiB (the largest legitimate one, raw α and β of a deep
/// trellis as JSON, is a few hundred KiB).
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// Reads `path` as UTF-8 text, refusing files over [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path) -> io::Result<String> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_TEXT_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes; text files over {MAX_TEXT_BYTES} bytes are refused"),
        ));
    }
    std::fs::read_to_string(path)
}
