//! TensorBoard event files, written directly in their documented format so that `tensorboard
//! --logdir runs/` plots a run: a TFRecord file (`events.out.tfevents.<time>.<host>`) of
//! `Event` protocol buffers, each holding a wall time, a step and a `Summary` of scalar values
//! or of PNG images (a few predictions at each evaluation).
//!
//! TFRecord framing: length as u64 little-endian, masked CRC-32C of the length, the data, masked
//! CRC-32C of the data; masked CRC = ((crc >> 15) | (crc << 17)) + 0xa282ead8. Protocol
//! buffers used (tensorflow/core/util/event.proto, framework/summary.proto): Event { double
//! wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; } and Summary {
//! repeated Value value = 1; } with Value { string tag = 1; float simple_value = 2; }. The test
//! `tensorboard_events_read_back` reads a run's files with the `tensorboard` Python package.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A picture for TensorBoard: (tag or name, height, width, PNG bytes).
pub type Picture = (String, u32, u32, Vec<u8>);

/// Appends events to one event file.
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One `Event` with the given wall time and step, and either a file version or a summary.
fn event(wall_time: f64, step: i64, file_version: Option<&str>, scalars: &[(String, f32)]) -> Vec<u8> {
    event_with(wall_time, step, file_version, &summary_of_scalars(scalars))
}

/// `Summary` values of scalars.
fn summary_of_scalars(scalars: &[(String, f32)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in scalars {
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        varint(2 << 3 | 5, &mut v);
        v.extend_from_slice(&value.to_le_bytes());
        bytes_field(1, &v, &mut summary);
    }
    summary
}

/// `Summary` values of images: `Value { tag = 1; Image image = 4; }` with `Image { int32
/// height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }`.
fn summary_of_images(images: &[Picture]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, height, width, png) in images {
        let mut image = Vec::new();
        for (field, value) in [(1u64, *height as u64), (2, *width as u64), (3, 3)] {
            varint(field << 3, &mut image);
            varint(value, &mut image);
        }
        bytes_field(4, png, &mut image);
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        bytes_field(4, &image, &mut v);
        bytes_field(1, &v, &mut summary);
    }
    summary
}

fn event_with(wall_time: f64, step: i64, file_version: Option<&str>, summary: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(1 << 3 | 1, &mut out);
    out.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut out);
    varint(step as u64, &mut out);
    if let Some(version) = file_version {
        bytes_field(3, version.as_bytes(), &mut out);
    }
    if !summary.is_empty() {
        bytes_field(5, summary, &mut out);
    }
    out
}

/// A TFRecord holding `data`.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// A new event file in `dir` (created), starting with the file-version event.
    pub fn create(dir: &Path, host: &str) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let wall = now();
        let path = dir.join(format!("events.out.tfevents.{}.{host}.{}", wall as u64, std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut writer = EventWriter { path, file };
        writer.write(&event(wall, 0, Some("brain.Event:2"), &[]))?;
        Ok(writer)
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.file.write_all(&record(data)).with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush().with_context(|| format!("writing {}", self.path.display()))
    }

    /// Images `(tag, height, width, PNG bytes)` at `step`.
    pub fn images(&mut self, step: i64, images: &[Picture]) -> Result<()> {
        if images.is_empty() {
            return Ok(());
        }
        self.write(&event_with(now(), step, None, &summary_of_images(images)))
    }

    /// Scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: i64, scalars: &[(String, f32)]) -> Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        self.write(&event(now(), step, None, scalars))
    }
}

/// The numbers of a metrics row as TensorBoard scalars: `<kind>/<field>` for numbers, with
/// `/<index>` or `/<key>` appended inside arrays and objects (per-class IoU, per-edge entropy);
/// `time`, `kind`, `step` and non-numbers are left out.
pub fn scalars_of(row: &serde_json::Value) -> Vec<(String, f32)> {
    fn walk(tag: String, value: &serde_json::Value, out: &mut Vec<(String, f32)>) {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(v) = n.as_f64().filter(|v| v.is_finite()) {
                    out.push((tag, v as f32));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(format!("{tag}/{i}"), item, out);
                }
            }
            serde_json::Value::Object(fields) => {
                for (key, item) in fields {
                    walk(format!("{tag}/{key}"), item, out);
                }
            }
            _ => {}
        }
    }
    let kind = row["kind"].as_str().unwrap_or("metrics");
    let mut out = Vec::new();
    if let Some(fields) = row.as_object() {
        for (key, value) in fields {
            // Fields whose numbers are indices (the decoded cell's inputs, the path's levels, the
            // block a progressive decision fixed), not measurements, are not plotted.
            if !["time", "kind", "step", "epoch", "batch", "path", "cell", "decided_blocks"].contains(&key.as_str()) {
                walk(format!("{kind}/{key}"), value, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_protobufs_follow_the_format() {
        // CRC-32C of "123456789" is 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let r = record(b"abc");
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        // step 300 as a varint: 0xAC 0x02.
        let e = event(1.5, 300, None, &[]);
        assert_eq!(&e[9..], &[0x10, 0xAC, 0x02]);
        let row = serde_json::json!({"time": "x", "kind": "eval", "step": 3, "val_miou": 0.5,
                                     "val_iou": {"road": 0.25, "sky": null}, "alpha_entropy_per_edge": [1.0, 0.5]});
        let tags: Vec<String> = scalars_of(&row).into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            tags,
            ["eval/val_miou", "eval/val_iou/road", "eval/alpha_entropy_per_edge/0", "eval/alpha_entropy_per_edge/1"]
        );
    }
}
