//! Decoding raw α and β into an [`Architecture`] (paper §4.3): the cell by
//! [`Genotype::decode`], the path by [`viterbi`] over the normalised β.
//!
//! Raw parameters come from a search checkpoint (the architecture store saved as safetensors
//! with tensors `alpha` `[edges, 8]` and `beta` `[L, 4, 3]`; a checkpoint folder holds it as
//! `arch.safetensors`) or from JSON `{"alpha": [[8 numbers] x edges], "beta": [[[3 numbers] x 4]
//! x L]}` of raw logits, ops in [`cell::Primitive`] order. A search with PC-DARTS edge
//! normalisation adds `edges` `[edges]` (a tensor, or a JSON list of raw logits): decoding then
//! scales each edge's op weights by its normalised edge weight before choosing the two inputs
//! of each block, as PC-DARTS decodes.

use std::path::{Path, PathBuf};

use cell::{Genotype, GenotypeError};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::arch::{decoding_weights, normalize_beta, normalize_edges};
use crate::architecture::Architecture;
use crate::path::NUM_LEVELS;
use crate::viterbi::viterbi;

/// Why parameters could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "{path}: α has {rows} rows, which is no cell's edge count (2, 5, 9, 14, 20, 27, ... for B = 1, 2, 3, ...)"
    )]
    EdgeCount { path: PathBuf, rows: usize },
    #[error("{path}: {what} has shape {shape:?}, expected {expected}")]
    Shape { path: PathBuf, what: &'static str, shape: Vec<i64>, expected: &'static str },
    #[error("{path}: {source}")]
    Genotype { path: PathBuf, source: GenotypeError },
    #[error(
        "{path}: `{what}` holds {count} NaN or infinite values (a diverged search?); nothing can be decoded from it"
    )]
    NonFinite { path: PathBuf, what: &'static str, count: i64 },
    #[error("{path}: β has {layers} layers, more than the {max} a network path may have", max = crate::path::MAX_LAYERS)]
    TooManyLayers { path: PathBuf, layers: usize },
}

/// Refuses a tensor of raw architecture parameters that holds NaN or infinite values, naming it.
pub fn check_finite(tensor: &Tensor, what: &'static str, origin: &Path) -> Result<(), DecodeError> {
    let count = tensor.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
    if count > 0 {
        return Err(DecodeError::NonFinite { path: origin.to_owned(), what, count });
    }
    Ok(())
}

/// Raw architecture parameters as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParams {
    /// α logits, one row of 8 per edge.
    pub alpha: Vec<[f64; 8]>,
    /// β logits, `[L][4][3]`.
    pub beta: Vec<[[f64; 3]; NUM_LEVELS]>,
    /// PC-DARTS edge logits, one per edge, when they were searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f64>>,
}

/// Blocks B of a cell with `edges` edges, if there is such a B.
pub fn blocks_for_edges(edges: usize) -> Option<usize> {
    (1..=64).find(|&b| cell::edges::num_edges(b) == edges)
}

/// Decodes raw logits: `alpha` `[edges, 8]`, `beta` `[L, 4, 3]` (any float kind or device);
/// `origin` names the source in errors.
pub fn decode(alpha: &Tensor, beta: &Tensor, origin: &Path) -> Result<Architecture, DecodeError> {
    decode_with_edges(alpha, beta, None, origin)
}

/// [`decode`] with PC-DARTS edge logits `[edges]` when they were searched.
pub fn decode_with_edges(
    alpha: &Tensor,
    beta: &Tensor,
    edges: Option<&Tensor>,
    origin: &Path,
) -> Result<Architecture, DecodeError> {
    let shape_err =
        |what, shape: Vec<i64>, expected| DecodeError::Shape { path: origin.to_owned(), what, shape, expected };
    let alpha = alpha.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let beta = beta.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    match alpha.size().as_slice() {
        [_, 8] => {}
        _ => return Err(shape_err("alpha", alpha.size(), "[edges, 8]")),
    }
    match beta.size().as_slice() {
        [l, 4, 3] if *l as usize > crate::path::MAX_LAYERS => {
            return Err(DecodeError::TooManyLayers { path: origin.to_owned(), layers: *l as usize })
        }
        [l, 4, 3] if *l >= 1 => {}
        _ => return Err(shape_err("beta", beta.size(), "[L, 4, 3] with L >= 1")),
    }
    check_finite(&alpha, "alpha", origin)?;
    check_finite(&beta, "beta", origin)?;
    let rows = alpha.size()[0] as usize;
    let blocks = blocks_for_edges(rows).ok_or(DecodeError::EdgeCount { path: origin.to_owned(), rows })?;
    let edges = match edges {
        Some(edges) => {
            let edges = edges.detach().to_device(Device::Cpu).to_kind(Kind::Double);
            if edges.size() != [rows as i64] {
                return Err(shape_err("edges", edges.size(), "[edges], one per row of alpha"));
            }
            check_finite(&edges, "edges", origin)?;
            Some(normalize_edges(&edges, blocks))
        }
        None => None,
    };
    let weights = decoding_weights(&alpha.softmax(-1, Kind::Double), edges.as_ref());
    let cell = Genotype::decode_weights(&weights, blocks)
        .map_err(|source| DecodeError::Genotype { path: origin.to_owned(), source })?;
    let layers = crate::viterbi::beta_layers(&normalize_beta(&beta));
    Ok(Architecture { cell, path: viterbi(&layers), extra: Default::default() })
}

/// Raw architecture parameters as tensors, as a search stores them.
#[derive(Debug)]
pub struct RawTensors {
    /// α logits `[edges, 8]`.
    pub alpha: Tensor,
    /// β logits `[L, 4, 3]`.
    pub beta: Tensor,
    /// PC-DARTS edge logits `[edges]`, when they were searched.
    pub edges: Option<Tensor>,
    /// The file they were read from (for errors).
    pub file: PathBuf,
}

/// Reads raw parameters from a JSON file, a safetensors file or a checkpoint folder.
pub fn read_raw(path: &Path) -> Result<RawTensors, DecodeError> {
    let read = |message: String| DecodeError::Read { path: path.to_owned(), message };
    let file = if path.is_dir() { path.join("arch.safetensors") } else { path.to_owned() };
    if file.extension().is_some_and(|e| e == "json") {
        let text = seg::limits::read_text(&file).map_err(|e| read(e.to_string()))?;
        let raw: RawParams = serde_json::from_str(&text).map_err(|e| read(e.to_string()))?;
        let alpha: Vec<f64> = raw.alpha.iter().flatten().copied().collect();
        let beta: Vec<f64> = raw.beta.iter().flatten().flatten().copied().collect();
        let alpha = Tensor::from_slice(&alpha).view([raw.alpha.len() as i64, 8]);
        let beta = Tensor::from_slice(&beta).view([raw.beta.len() as i64, NUM_LEVELS as i64, 3]);
        let edges = raw.edges.as_deref().map(Tensor::from_slice);
        return Ok(RawTensors { alpha, beta, edges, file });
    }
    let tensors = Tensor::read_safetensors(&file)
        .map_err(|e| DecodeError::Read { path: file.clone(), message: e.to_string() })?;
    let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
    let require = |name: &str| {
        find(name).ok_or_else(|| DecodeError::Read {
            path: file.clone(),
            message: format!(
                "no tensor named `{name}` (holds: {})",
                tensors.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })
    };
    Ok(RawTensors { alpha: require("alpha")?, beta: require("beta")?, edges: find("edges"), file: file.clone() })
}

/// Reads raw parameters from a JSON file, a safetensors file or a checkpoint folder, and decodes
/// them.
pub fn decode_file(path: &Path) -> Result<Architecture, DecodeError> {
    let raw = read_raw(path)?;
    decode_with_edges(&raw.alpha, &raw.beta, raw.edges.as_ref(), &raw.file)
}
