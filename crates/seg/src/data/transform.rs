//! Training and evaluation transforms (paper §4.2, §5.2; DeepLab's input pipeline): resize
//! (e.g. 2048x1024 to half resolution), random scale, random crop with the label padded by 255
//! and the image by its mean, horizontal flip, mean/std normalisation.
//!
//! Everything works on plain buffers (no tensors) so that it runs on rayon workers; image and
//! label always go through the same geometric steps.

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::files::Sample;
use crate::labels::IGNORE;

/// Why a transform configuration is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    /// A value out of its range, named by key.
    #[error("transform key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Parameters of the transforms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    /// Fixed resize factor applied first (0.5 turns 2048x1024 into 1024x512).
    pub base_scale: f32,
    /// Random scale factor drawn uniformly from `[min, max]` on top of `base_scale`
    /// (training only; `[1.0, 1.0]` for none).
    pub scale_range: [f32; 2],
    /// Crop `[height, width]` (training only); smaller images are padded first. Written
    /// `crop = "WIDTHxHEIGHT"` ([`crate::size`]).
    #[serde(with = "crate::size::wxh")]
    pub crop: [u32; 2],
    /// Random horizontal flip with probability 1/2 (training only).
    pub flip: bool,
    /// Per-channel mean subtracted, in 0..255 units (RGB).
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by, in 0..255 units (RGB).
    pub std: [f32; 3],
}

impl Default for TransformConfig {
    fn default() -> Self {
        // The search's settings (facts §4): 321x321 crops from half-resolution images; DeepLab
        // scales inputs to [-1, 1].
        TransformConfig {
            base_scale: 0.5,
            scale_range: [1.0, 1.0],
            crop: [321, 321],
            flip: true,
            mean: [127.5; 3],
            std: [127.5; 3],
        }
    }
}

impl TransformConfig {
    /// Checks every value, naming the key at fault.
    pub fn validate(&self) -> Result<(), TransformError> {
        let invalid = |key, message: String| Err(TransformError::Invalid { key, message });
        if !(self.base_scale > 0.0 && self.base_scale.is_finite()) {
            return invalid("base_scale", format!("must be > 0, got {}", self.base_scale));
        }
        let [lo, hi] = self.scale_range;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return invalid("scale_range", format!("must be [min, max] with 0 < min <= max, got [{lo}, {hi}]"));
        }
        if self.crop.contains(&0) {
            return invalid("crop", format!("must be positive, got {:?}", self.crop));
        }
        if self.std.iter().any(|s| *s <= 0.0) {
            return invalid("std", format!("must be positive, got {:?}", self.std));
        }
        Ok(())
    }
}

/// A transformed example: normalised `[3, H, W]` floats and `[H, W]` train ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    pub height: u32,
    pub width: u32,
    pub image: Vec<f32>,
    pub label: Vec<u8>,
}

fn to_images(sample: Sample) -> (RgbImage, GrayImage) {
    let image = RgbImage::from_raw(sample.width, sample.height, sample.image).expect("image buffer matches its size");
    let label = GrayImage::from_raw(sample.width, sample.height, sample.label).expect("label buffer matches its size");
    (image, label)
}

/// Resizes image (bilinear) and label (nearest) by `factor`.
fn rescale(image: RgbImage, label: GrayImage, factor: f32) -> (RgbImage, GrayImage) {
    if (factor - 1.0).abs() < 1e-6 {
        return (image, label);
    }
    let w = ((image.width() as f32 * factor).round() as u32).max(1);
    let h = ((image.height() as f32 * factor).round() as u32).max(1);
    (imageops::resize(&image, w, h, FilterType::Triangle), imageops::resize(&label, w, h, FilterType::Nearest))
}

/// Normalises `[H, W, 3]` bytes into `[3, H, W]` floats.
fn normalise(image: &RgbImage, config: &TransformConfig) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * w * h + i] = (px.0[c] as f32 - config.mean[c]) / config.std[c];
        }
    }
    out
}

/// Inference input: the image resized by `base_scale` and normalised, `([3, H', W'] floats, H',
/// W')`, from `[H, W, 3]` RGB bytes.
pub fn inference_image(width: u32, height: u32, rgb: Vec<u8>, config: &TransformConfig) -> (Vec<f32>, u32, u32) {
    let image = RgbImage::from_raw(width, height, rgb).expect("image buffer matches its size");
    let image = if (config.base_scale - 1.0).abs() < 1e-6 {
        image
    } else {
        let w = ((width as f32 * config.base_scale).round() as u32).max(1);
        let h = ((height as f32 * config.base_scale).round() as u32).max(1);
        imageops::resize(&image, w, h, FilterType::Triangle)
    };
    let (w, h) = (image.width(), image.height());
    (normalise(&image, config), h, w)
}

/// Evaluation: the fixed resize and normalisation only, whole image.
pub fn eval_example(sample: Sample, config: &TransformConfig) -> Example {
    let id = sample.id.clone();
    let (image, label) = to_images(sample);
    let (image, label) = rescale(image, label, config.base_scale);
    Example {
        id,
        height: image.height(),
        width: image.width(),
        image: normalise(&image, config),
        label: label.into_raw(),
    }
}

/// Training: resize by `base_scale` times a random scale, pad to the crop size (image with its
/// mean, which normalises to 0; label with 255), random crop, random flip, normalise.
pub fn train_example(sample: Sample, config: &TransformConfig, rng: &mut impl Rng) -> Example {
    let id = sample.id.clone();
    let [lo, hi] = config.scale_range;
    let scale = if hi > lo { rng.random_range(lo..=hi) } else { lo };
    let (image, label) = to_images(sample);
    let (image, label) = rescale(image, label, config.base_scale * scale);
    let [crop_h, crop_w] = config.crop;
    let (w, h) = (image.width(), image.height());
    let (pad_w, pad_h) = (w.max(crop_w), h.max(crop_h));
    let mean = image::Rgb(config.mean.map(|m| m.round().clamp(0.0, 255.0) as u8));
    let (image, label) = if (pad_w, pad_h) != (w, h) {
        let mut padded_image = RgbImage::from_pixel(pad_w, pad_h, mean);
        let mut padded_label = GrayImage::from_pixel(pad_w, pad_h, image::Luma([IGNORE]));
        imageops::replace(&mut padded_image, &image, 0, 0);
        imageops::replace(&mut padded_label, &label, 0, 0);
        (padded_image, padded_label)
    } else {
        (image, label)
    };
    let x0 = rng.random_range(0..=pad_w - crop_w);
    let y0 = rng.random_range(0..=pad_h - crop_h);
    let mut image = imageops::crop_imm(&image, x0, y0, crop_w, crop_h).to_image();
    let mut label = imageops::crop_imm(&label, x0, y0, crop_w, crop_h).to_image();
    if config.flip && rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut image);
        imageops::flip_horizontal_in_place(&mut label);
    }
    Example { id, height: crop_h, width: crop_w, image: normalise(&image, config), label: label.into_raw() }
}
