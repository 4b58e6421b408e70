//! What a trained network is, carried with its weights: the architecture, width, class table,
//! input convention, training data, val mIoU and the commit that trained it. Every
//! `weights.safetensors` a retraining writes holds it in its header metadata (one string per
//! key, JSON where structured), `search export` copies it into `model.json` and the ONNX
//! file's `metadata_props`, so that a folder of exported files describes itself.

use std::collections::BTreeMap;
use std::path::Path;

use crate::store::checkpoint::{stamp_checksum, CHECKSUM_KEY, CHECKSUM_PLACEHOLDER};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// How images are given to the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputConvention {
    /// Channel order of the image.
    pub channels: String,
    /// Resize factor applied to an image before the network (`data.transform.base_scale`).
    pub base_scale: f32,
    /// Per-channel mean and standard deviation, in 0..255 units: the network's input is
    /// `(rgb - mean) / std` (an exported network does this itself and takes 0..255 RGB).
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl ModelCard {
    /// The card of a network retrained with `config` on `architecture`, ending at `val_miou`.
    pub fn for_retraining(
        config: &crate::run_config::RetrainConfig,
        architecture: &trellis::Architecture,
        val_miou: Option<f64>,
    ) -> Result<ModelCard> {
        let data = &config.data;
        let t = &data.transform;
        Ok(ModelCard {
            architecture: architecture.clone(),
            filter_multiplier: config.model.filter_multiplier,
            stem_channels: config.model.stem_channels,
            class_table: data.class_table().map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?,
            input: InputConvention { channels: "RGB".into(), base_scale: t.base_scale, mean: t.mean, std: t.std },
            training_data: Some(TrainingData {
                format: data.format.to_string(),
                root: data.root.display().to_string(),
                train_split: data.train_split.clone(),
                val_split: data.val_split.clone(),
            }),
            val_miou,
            commit: env!("ADL_GIT_COMMIT").into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
        })
    }
}

/// Where the network was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    pub format: String,
    pub root: String,
    pub train_split: String,
    pub val_split: String,
}

/// The description of a trained network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The decoded architecture.
    pub architecture: trellis::Architecture,
    pub filter_multiplier: i64,
    /// The stem's channels (cards written before they were recorded: the paper's).
    #[serde(default = "trellis::network::paper_stem_channels")]
    pub stem_channels: [i64; 3],
    /// The class table: output channel `i` is `class_table.class[i]`.
    pub class_table: seg::ClassTable,
    pub input: InputConvention,
    pub training_data: Option<TrainingData>,
    /// The val mIoU of the weights, when a training measured it.
    pub val_miou: Option<f64>,
    /// The commit of the tool that trained them.
    pub commit: String,
    /// The tool's version.
    pub tool_version: String,
}

/// The metadata key that marks our safetensors files.
const MARK: &str = "autodeeplab";

impl ModelCard {
    /// The card as safetensors header metadata: one string per field, JSON where structured.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        fn json<T: Serialize>(value: &T) -> String {
            serde_json::to_string(value).expect("serialisable")
        }
        let mut m = BTreeMap::new();
        m.insert(MARK.into(), "1".into());
        m.insert("architecture".into(), json(&self.architecture));
        m.insert("filter_multiplier".into(), self.filter_multiplier.to_string());
        m.insert("stem_channels".into(), json(&self.stem_channels));
        m.insert("classes".into(), self.class_table.len().to_string());
        m.insert("class_table".into(), json(&self.class_table));
        m.insert("mean".into(), json(&self.input.mean));
        m.insert("std".into(), json(&self.input.std));
        m.insert("input".into(), json(&self.input));
        if let Some(data) = &self.training_data {
            m.insert("training_data".into(), json(data));
        }
        if let Some(miou) = self.val_miou {
            m.insert("val_miou".into(), miou.to_string());
        }
        m.insert("commit".into(), self.commit.clone());
        m.insert("tool_version".into(), self.tool_version.clone());
        m
    }

    /// The card from safetensors header metadata written by [`ModelCard::to_metadata`]; `None`
    /// when the metadata is not ours.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<Option<ModelCard>> {
        if !m.contains_key(MARK) {
            return Ok(None);
        }
        let get = |k: &str| m.get(k).with_context(|| format!("the metadata has no `{k}`"));
        let parse = |k: &str| -> Result<serde_json::Value> {
            serde_json::from_str(get(k)?).with_context(|| format!("metadata `{k}` is not JSON"))
        };
        Ok(Some(ModelCard {
            architecture: trellis::Architecture::from_json(get("architecture")?, "metadata `architecture`")?,
            filter_multiplier: get("filter_multiplier")?.parse().context("metadata `filter_multiplier`")?,
            stem_channels: match m.get("stem_channels") {
                Some(text) => serde_json::from_str(text).context("metadata `stem_channels`")?,
                None => trellis::PAPER_STEM_CHANNELS,
            },
            class_table: serde_json::from_value(parse("class_table")?).context("metadata `class_table`")?,
            input: serde_json::from_value(parse("input")?).context("metadata `input`")?,
            training_data: m.get("training_data").map(|t| serde_json::from_str(t)).transpose()?,
            val_miou: m.get("val_miou").map(|v| v.parse()).transpose().context("metadata `val_miou`")?,
            commit: get("commit")?.clone(),
            tool_version: get("tool_version")?.clone(),
        }))
    }
}

/// The largest safetensors header read: 100 MiB (the format's own limit).
const MAX_HEADER: u64 = 100 << 20;

/// The `__metadata__` of a safetensors file (empty when it has none).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        bail!("{}: a safetensors header of {len} bytes (over {MAX_HEADER})", path.display());
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).with_context(|| format!("{}: truncated safetensors header", path.display()))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .with_context(|| format!("{}: the safetensors header is not JSON", path.display()))?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default())
}

/// Writes named tensors as a safetensors file with `metadata` in its header, atomically:
/// libtorch writes the tensors, then the header is rewritten with `__metadata__` added, which
/// includes the file's checksum ([`CHECKSUM_KEY`]).
pub fn write_with_metadata(
    path: &Path,
    tensors: &[(String, tch::Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let plain = path.with_extension("plain.tmp");
    crate::store::checkpoint::write_tensors(&plain, tensors)?;
    let bytes = std::fs::read(&plain).with_context(|| format!("reading {}", plain.display()))?;
    std::fs::remove_file(&plain).with_context(|| format!("removing {}", plain.display()))?;
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + len])?;
    let mut metadata = metadata.clone();
    metadata.insert(CHECKSUM_KEY.into(), CHECKSUM_PLACEHOLDER.into());
    header.insert("__metadata__".into(), serde_json::to_value(&metadata)?);
    let mut text = serde_json::to_vec(&header)?;
    // Tensor data stays 8-byte aligned: pad the header with spaces, as the format allows.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    stamp_checksum(&mut out);
    seg::atomic::write_atomic(path, &out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_a_safetensors_file() {
        let card = ModelCard {
            architecture: trellis::Architecture::paper(),
            filter_multiplier: 20,
            stem_channels: [32, 48, 96],
            class_table: seg::ClassTable::voc(),
            input: InputConvention { channels: "RGB".into(), base_scale: 0.5, mean: [127.5; 3], std: [127.5; 3] },
            training_data: Some(TrainingData {
                format: "voc".into(),
                root: "/data/voc".into(),
                train_split: "train_aug".into(),
                val_split: "val".into(),
            }),
            val_miou: Some(0.8125),
            commit: "abc".into(),
            tool_version: "0.1.0".into(),
        };
        let dir = std::env::temp_dir().join(format!("adl-card-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        let tensors = vec![("a.weight".to_owned(), tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]))];
        write_with_metadata(&path, &tensors, &card.to_metadata()).unwrap();
        let back = ModelCard::from_metadata(&read_metadata(&path).unwrap()).unwrap().unwrap();
        assert_eq!(back, card);
        // A card written before the stem was recorded reads as the paper's stem.
        let mut old = card.to_metadata();
        old.remove("stem_channels");
        let back = ModelCard::from_metadata(&old).unwrap().unwrap();
        assert_eq!(back.stem_channels, trellis::PAPER_STEM_CHANNELS);
        let loaded = tch::Tensor::read_safetensors(&path).unwrap();
        assert_eq!(loaded[0].0, "a.weight");
        assert_eq!(Vec::<f32>::try_from(&loaded[0].1).unwrap(), [1.0, 2.0, 3.0], "libtorch still reads it");
        crate::store::checkpoint::verify_checksum(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let e = crate::store::checkpoint::verify_checksum(&path).unwrap_err().to_string();
        assert!(e.contains("does not match its checksum"), "{e}");
        crate::store::checkpoint::write_tensors(&path, &tensors).unwrap();
        assert!(ModelCard::from_metadata(&read_metadata(&path).unwrap()).unwrap().is_none(), "no card in a plain file");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
