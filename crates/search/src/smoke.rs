//! A tiny forward and backward pass through one search cell: the check that a fresh build
//! computes, differentiates and decodes the cell search space (paper §3.1, §4.3).
//!
//! Weights and α live in two VarStores, as in the real search; the report says how many
//! weight tensors and α received a finite, non-zero gradient.

use std::time::Instant;

use cell::{Alpha, Genotype, SearchCellConfig};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Reduction, Tensor};

/// Configuration of the smoke test (`configs/cell-smoke.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmokeConfig {
    /// Seed of torch's generator.
    pub seed: i64,
    /// Images per batch.
    pub batch: i64,
    /// Height and width of the feature maps.
    pub size: i64,
    /// Blocks per cell, B.
    pub blocks: usize,
    /// Channels per block, C.
    pub channels: i64,
    /// Classes of the 1x1 classifier on top of the cell.
    pub classes: i64,
}

impl Default for SmokeConfig {
    fn default() -> Self {
        SmokeConfig { seed: 0, batch: 2, size: 16, blocks: 5, channels: 4, classes: 19 }
    }
}

impl crate::config::Validate for SmokeConfig {
    fn validate(&self) -> Result<(), crate::config::Invalid> {
        let at_least_one =
            [("blocks", self.blocks as i64), ("batch", self.batch), ("size", self.size), ("channels", self.channels)];
        for (key, value) in at_least_one {
            if value < 1 {
                return Err(crate::config::Invalid::new(key, format!("must be at least 1, got {value}")));
            }
        }
        if self.classes < 2 {
            return Err(crate::config::Invalid::new("classes", format!("must be at least 2, got {}", self.classes)));
        }
        Ok(())
    }
}

/// What the smoke pass measured.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    /// Shape of the cell output, `[N, B * C, H, W]`.
    pub cell_output: Vec<i64>,
    /// Cross-entropy loss of the classifier on random labels.
    pub loss: f64,
    /// Trainable weight tensors, and how many got a finite non-zero gradient.
    pub weight_tensors: usize,
    pub weight_tensors_with_gradient: usize,
    /// Norm of α's gradient.
    pub alpha_grad_norm: f64,
    /// The cell decoded from α.
    pub genotype: Genotype,
    /// Seconds for forward + backward.
    pub seconds: f64,
}

/// Runs the smoke pass on `device`.
pub fn run(config: &SmokeConfig, device: Device) -> SmokeReport {
    tch::manual_seed(config.seed);
    let weights = nn::VarStore::new(device);
    let arch = nn::VarStore::new(device);
    let alpha = Alpha::new(&arch.root(), config.blocks);
    let in_channels = 3 * config.channels;
    let cell = SearchCellConfig {
        blocks: config.blocks,
        channels: config.channels,
        prev_prev_channels: Some(in_channels),
        prev_channels: in_channels,
        partial_channels: 1,
    }
    .build(&(weights.root() / "cell"));
    let out_channels = cell.config().out_channels();
    let classifier = nn::conv2d(weights.root() / "classifier", out_channels, config.classes, 1, Default::default());

    let shape = [config.batch, in_channels, config.size, config.size];
    let prev_prev = Tensor::randn(shape, (Kind::Float, device));
    let prev = Tensor::randn(shape, (Kind::Float, device));
    let labels = Tensor::randint(config.classes, [config.batch, config.size, config.size], (Kind::Int64, device));

    let start = Instant::now();
    let features = cell.forward_t(Some(&prev_prev), &prev, &alpha.weights(), true);
    let logits = features.apply(&classifier);
    let loss = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, 255, 0.0);
    loss.backward();
    let seconds = start.elapsed().as_secs_f64();

    let trainable = weights.trainable_variables();
    let with_gradient = trainable.iter().filter(|t| has_useful_gradient(t)).count();
    let alpha_grad_norm = f64::try_from(alpha.logits().grad().norm()).expect("scalar norm");
    SmokeReport {
        cell_output: features.size(),
        loss: f64::try_from(&loss).expect("scalar loss"),
        weight_tensors: trainable.len(),
        weight_tensors_with_gradient: with_gradient,
        alpha_grad_norm,
        genotype: Genotype::decode_logits(alpha.logits(), config.blocks).expect("α has the cell's shape"),
        seconds,
    }
}

/// Whether `t` has a gradient that is finite everywhere and not all zero.
pub fn has_useful_gradient(t: &Tensor) -> bool {
    let grad = t.grad();
    grad.defined()
        && bool::try_from(grad.isfinite().all()).expect("scalar bool")
        && f64::try_from(grad.abs().sum(Kind::Double)).expect("scalar sum") > 0.0
}
