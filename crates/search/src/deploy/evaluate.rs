//! Evaluating a segmentation network on a split with the Cityscapes metric: whole images (or a
//! sliding window) at the configured base scale, logits resized to the ground truth's full
//! resolution (corners aligned) before the argmax, as DeepLab evaluates; optionally at several
//! scales and with left-right flips, the logits averaged (the paper's multi-scale protocol,
//! [`Protocol`]).

use anyhow::{Context, Result};
use image::ImageEncoder;
use rayon::prelude::*;
use seg::data::read_sample;
use seg::data::transform::inference_image;
use seg::data::{SampleRef, TransformConfig};
use seg::ConfusionMatrix;
use tch::{Device, Kind, Tensor};

/// Logits `[1, C, h, w]` for one normalised image `[1, 3, h, w]`: the whole image, or the mean
/// over windows of `window = [height, width]` placed every 2/3 window (the last flush with
/// the border) when the image is larger.
pub fn infer_logits(forward: &dyn Fn(&Tensor) -> Tensor, image: &Tensor, window: Option<[u32; 2]>) -> Tensor {
    let (_, _, h, w) = image.size4().expect("image is [1, 3, H, W]");
    let Some([wh, ww]) = window else { return forward(image) };
    let (wh, ww) = ((wh as i64).min(h), (ww as i64).min(w));
    if (wh, ww) == (h, w) {
        return forward(image);
    }
    let starts = |size: i64, win: i64| -> Vec<i64> {
        let stride = (win * 2 / 3).max(1);
        let mut s: Vec<i64> = (0..=size - win).step_by(stride as usize).collect();
        if *s.last().expect("at least one start") != size - win {
            s.push(size - win);
        }
        s
    };
    let mut sum: Option<Tensor> = None;
    let count = Tensor::zeros([1, 1, h, w], (Kind::Float, image.device()));
    for &y in &starts(h, wh) {
        for &x in &starts(w, ww) {
            let tile = image.narrow(2, y, wh).narrow(3, x, ww);
            let logits = forward(&tile).to_kind(Kind::Float);
            let total =
                sum.get_or_insert_with(|| Tensor::zeros([1, logits.size()[1], h, w], (Kind::Float, image.device())));
            let mut region = total.narrow(2, y, wh).narrow(3, x, ww);
            region += logits;
            let mut seen = count.narrow(2, y, wh).narrow(3, x, ww);
            seen += 1.0;
        }
    }
    sum.expect("at least one window") / count
}

/// How an image is given to the network at inference.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Sliding window `[height, width]` at each scale (None: whole images).
    pub window: Option<[u32; 2]>,
    /// Scales of the (already base-scaled) image; `[1.0]` is single-scale.
    pub scales: Vec<f64>,
    /// Also run each scale flipped left-right and average.
    pub flip: bool,
}

impl Protocol {
    /// Whole images, or `window`, at one scale, no flip.
    pub fn single(window: Option<[u32; 2]>) -> Protocol {
        Protocol { window, scales: vec![1.0], flip: false }
    }
}

/// Logits `[1, C, height, width]` (float) of one image: the logits of every scale (and flip) of
/// `protocol`, resized to `(height, width)` and averaged.
pub fn predict_logits(
    forward: &dyn Fn(&Tensor) -> Tensor,
    image: &Tensor,
    protocol: &Protocol,
    height: i64,
    width: i64,
) -> Tensor {
    let (_, _, h, w) = image.size4().expect("image is [1, 3, H, W]");
    let mut sum: Option<Tensor> = None;
    let mut views_done = 0;
    for &scale in &protocol.scales {
        let scaled = if scale == 1.0 {
            image.shallow_clone()
        } else {
            let size = |n: i64| ((n as f64 * scale).round() as i64).max(1);
            seg::conv::resize_bilinear(image, size(h), size(w))
        };
        let mut views =
            vec![seg::conv::resize_bilinear(&infer_logits(forward, &scaled, protocol.window), height, width)];
        if protocol.flip {
            let flipped = infer_logits(forward, &scaled.flip([3]), protocol.window).flip([3]);
            views.push(seg::conv::resize_bilinear(&flipped, height, width));
        }
        for logits in views {
            views_done += 1;
            sum = Some(match sum.take() {
                Some(acc) => acc + logits.to_kind(Kind::Float),
                None => logits.to_kind(Kind::Float),
            });
        }
    }
    sum.expect("at least one scale") / views_done as f64
}

/// Train ids `[H, W]` (int64) for one image resized to `(height, width)`: the argmax of
/// [`predict_logits`].
pub fn predict_labels(
    forward: &dyn Fn(&Tensor) -> Tensor,
    image: &Tensor,
    protocol: &Protocol,
    height: i64,
    width: i64,
) -> Tensor {
    predict_logits(forward, image, protocol, height, width).argmax(1, false).squeeze_dim(0)
}

/// The scores (mIoU, per-class IoU) of `forward` on `samples`, read as `data` says
/// (transform, window, workers): the evaluation of the training loop's tasks. In a distributed
/// run `samples` is this rank's share and the counts are summed across the ranks.
pub fn val_scores(
    samples: &[SampleRef],
    data: &crate::run_config::DataConfig,
    device: Device,
    forward: &dyn Fn(&Tensor) -> Tensor,
    ranks: &crate::dist::Ranks,
) -> Result<seg::Scores> {
    let protocol = Protocol::single(data.eval_window);
    let names = data.class_table().map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?.names();
    let matrix = evaluate(samples, names.clone(), &data.transform, &protocol, device, data.loader.workers, forward)?;
    if ranks.is_distributed() {
        // Each rank evaluated its share of the split: the counts add up to the whole split's.
        Ok(seg::Scores::from_counts(&ranks.sum_counts(&matrix.counts())?, &names))
    } else {
        Ok(matrix.scores())
    }
}

/// Evaluates `forward` (normalised images `[1, 3, h, w]` to logits `[1, C, h, w]`, called
/// without gradients) on `samples` over the classes `names`, reading `workers` images ahead in
/// parallel.
pub fn evaluate(
    samples: &[SampleRef],
    names: Vec<String>,
    transform: &TransformConfig,
    protocol: &Protocol,
    device: Device,
    workers: usize,
    forward: &dyn Fn(&Tensor) -> Tensor,
) -> Result<ConfusionMatrix> {
    let mut matrix = ConfusionMatrix::new(names, device);
    let bar = crate::observe::logging::progress(samples.len() as u64, "eval");
    for chunk in samples.chunks(workers.max(1) * 2) {
        let inputs: Vec<_> = chunk
            .par_iter()
            .map(|sample| -> Result<_> {
                let s = read_sample(sample).with_context(|| format!("reading {}", sample.id))?;
                let (image, h, w) = inference_image(s.width, s.height, s.image, transform);
                Ok((image, h, w, s.label, s.height, s.width))
            })
            .collect::<Result<_>>()?;
        for (image, h, w, label, height, width) in inputs {
            // Inside a training loop an interrupt stops the evaluation here (the checkpoint is
            // saved; the resumed run evaluates again).
            crate::store::interrupt::check()?;
            let image = Tensor::from_slice(&image).view([1, 3, h as i64, w as i64]).to_device(device);
            let label = Tensor::from_slice(&label).view([height as i64, width as i64]).to_device(device);
            let pred = tch::no_grad(|| predict_labels(forward, &image, protocol, height as i64, width as i64));
            matrix.update(&pred, &label);
            bar.inc(1);
        }
    }
    crate::observe::logging::finish_progress();
    Ok(matrix)
}

/// White pixels between the panels of a prediction picture.
const PANEL_GAP: usize = 4;

/// RGB pictures `[height, width, 3]` side by side, `PANEL_GAP` white pixels apart.
fn side_by_side(panels: &[&[u8]], width: usize, height: usize) -> Vec<u8> {
    let total = panels.len() * width + (panels.len() - 1) * PANEL_GAP;
    let mut out = vec![255u8; total * height * 3];
    for (k, panel) in panels.iter().enumerate() {
        let x0 = k * (width + PANEL_GAP);
        for y in 0..height {
            let row = &panel[y * width * 3..(y + 1) * width * 3];
            out[(y * total + x0) * 3..(y * total + x0 + width) * 3].copy_from_slice(row);
        }
    }
    out
}

/// Pictures of the first `n` of `samples`, each three panels side by side: the image, its ground
/// truth and the prediction, in the class table's colours (ignored pixels black), as PNG bytes
/// named by sample id (for TensorBoard).
pub fn prediction_pictures(
    samples: &[SampleRef],
    data: &crate::run_config::DataConfig,
    device: Device,
    n: usize,
    forward: &dyn Fn(&Tensor) -> Tensor,
) -> Result<Vec<crate::observe::tensorboard::Picture>> {
    let protocol = Protocol::single(data.eval_window);
    let table = data.class_table().map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
    samples
        .iter()
        .take(n)
        .map(|sample| {
            let s = read_sample(sample).with_context(|| format!("reading {}", sample.id))?;
            let (image, h, w) = inference_image(s.width, s.height, s.image.clone(), &data.transform);
            let image = Tensor::from_slice(&image).view([1, 3, h as i64, w as i64]).to_device(device);
            let labels = tch::no_grad(|| predict_labels(forward, &image, &protocol, s.height as i64, s.width as i64));
            let labels: Vec<u8> = Vec::<i64>::try_from(labels.to_device(Device::Cpu).flatten(0, -1))?
                .into_iter()
                .map(|v| v as u8)
                .collect();
            let panel = side_by_side(
                &[&s.image, &seg::palette::colorize(&table, &s.label), &seg::palette::colorize(&table, &labels)],
                s.width as usize,
                s.height as usize,
            );
            let width = 3 * s.width + 2 * PANEL_GAP as u32;
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&panel, width, s.height, image::ExtendedColorType::Rgb8)
                .context("encoding a prediction picture")?;
            Ok((sample.id.clone(), s.height, width, png))
        })
        .collect()
}
