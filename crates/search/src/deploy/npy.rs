//! NumPy `.npy` files of float32 arrays (format version 1.0), for logits that leave the tool:
//! `search predict --output-format logits` writes them, NumPy reads them (`numpy.load`).

use std::path::Path;

use anyhow::{bail, Context, Result};

const MAGIC: &[u8] = b"\x93NUMPY\x01\x00";

/// The bytes of a C-order little-endian float32 array of `shape`.
pub fn encode_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "shape and values disagree");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (8) + length (2) + header, padded with spaces to a multiple of 64, ending in '\n'.
    let unpadded = MAGIC.len() + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(MAGIC.len() + 2 + header.len() + 4 * values.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Writes a float32 array atomically.
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    seg::atomic::write_atomic(path, &encode_f32(shape, values)).with_context(|| format!("writing {}", path.display()))
}

/// Reads a float32 array written by [`write_f32`] (or NumPy, C order): `(shape, values)`.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        bail!("{}: not a version 1.0 .npy file", path.display());
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + len).context("truncated header")?)?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        bail!("{}: only C-order float32 arrays are read, the header is {header}", path.display());
    }
    let shape_text = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).context("no shape")?;
    let shape: Vec<usize> =
        shape_text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>()?;
    let data = &bytes[10 + len..];
    if data.len() != 4 * shape.iter().product::<usize>() {
        bail!("{}: {} data bytes for shape {shape:?}", path.display(), data.len());
    }
    Ok((shape, data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aligned_header() {
        let bytes = encode_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!((bytes.len() - 24) % 64, 0, "data starts on a 64-byte boundary");
        let dir = std::env::temp_dir().join(format!("adl-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        write_f32(&path, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        assert_eq!(read_f32(&path).unwrap(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
