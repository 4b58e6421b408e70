//! `search predict`: segmentation maps for images (PNG or JPEG), written in the trained data
//! set's terms (its class table): as colour PNGs, as PNGs of the values its label files store
//! (label ids in the Cityscapes results format for Cityscapes; `search eval --pred` and the
//! official evaluation read them), or as overlays with the legend.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use seg::data::read_rgb;
use seg::data::transform::inference_image;
use seg::palette::{write_prediction, PredictionFormat};
use tch::{Device, Tensor};

use crate::deploy::evaluate::predict_logits;
use crate::deploy::trained::TrainedModel;

/// Image files under `input` (a file, or a folder searched recursively, symlinked folders once
/// each), sorted, with their path relative to `input`; `out` (where predictions go) is skipped
/// when it lies inside `input`.
pub fn list_inputs(input: &Path, out: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    seg::overlap::refuse_same_folder(input, out).map_err(anyhow::Error::msg)?;
    if input.is_file() {
        let name = input.file_name().context("input file has a name")?;
        return Ok(vec![(input.to_owned(), PathBuf::from(name))]);
    }
    if !input.is_dir() {
        bail!("--input {} does not exist", input.display());
    }
    let found: Vec<(PathBuf, PathBuf)> = seg::walk::files(input, Some(out), seg::data::files::is_image_file)?
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(input).map(Path::to_owned).unwrap_or_else(|_| path.clone());
            (path, relative)
        })
        .collect();
    if found.is_empty() {
        bail!("--input {} holds no PNG or JPEG images", input.display());
    }
    Ok(found)
}

/// The most pixels an image is given to the network whole: a Cityscapes frame (2048x1024).
/// Beyond it the activations of a deployed network outgrow a typical machine.
pub const MAX_WHOLE_IMAGE_PIXELS: u64 = 2048 * 1024;

/// The sliding window for an image of `h x w` at inference resolution when none was asked for:
/// none up to [`MAX_WHOLE_IMAGE_PIXELS`], else windows of 1025x1025 (DeepLab's 2^k n + 1 form).
pub fn automatic_window(h: u32, w: u32) -> Option<[u32; 2]> {
    (h as u64 * w as u64 > MAX_WHOLE_IMAGE_PIXELS).then_some([1025.min(h), 1025.min(w)])
}

/// What `search predict` writes per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictOutput {
    /// A PNG: colours, stored values or an overlay (`<relative path>.png`).
    Png(PredictionFormat),
    /// The logits `[classes, height, width]` as float32 NumPy (`<relative path>.npy`), averaged
    /// over the protocol's scales and flips, at the image's size, before the argmax.
    Logits,
}

/// Predicts every image under `input` and writes `<out>/<relative path>.{png,npy}` as `output`
/// says.
pub fn predict(model: &TrainedModel, input: &Path, out: &Path, output: PredictOutput, device: Device) -> Result<usize> {
    let inputs = list_inputs(input, out)?;
    let target_of = |relative: &Path| {
        out.join(relative).with_extension(if output == PredictOutput::Logits { "npy" } else { "png" })
    };
    let mut targets: Vec<PathBuf> = inputs.iter().map(|(_, relative)| target_of(relative)).collect();
    targets.push(out.join("legend.svg"));
    targets.push(out.join("legend.png"));
    let sources: Vec<PathBuf> = inputs.iter().map(|(path, _)| path.clone()).collect();
    seg::overlap::refuse_overlap(&sources, &targets).map_err(anyhow::Error::msg)?;
    let bar = crate::observe::logging::progress(inputs.len() as u64, "predict");
    let mut shown = vec![false; model.table.len()];
    for (path, relative) in &inputs {
        let (width, height, rgb) = read_rgb(path)?;
        let (image, h, w) = inference_image(width, height, rgb.clone(), &model.transform);
        let image = Tensor::from_slice(&image).view([1, 3, h as i64, w as i64]).to_device(device);
        let forward = |x: &Tensor| model.forward(x);
        let mut protocol = model.protocol.clone();
        if protocol.window.is_none() {
            protocol.window = automatic_window(h, w);
            if let Some(window) = protocol.window {
                tracing::info!(image = %path.display(), ?window, "a large image: predicted in sliding windows (set --window to choose)");
            }
        }
        let logits = tch::no_grad(|| predict_logits(&forward, &image, &protocol, height as i64, width as i64));
        let target = target_of(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let format = match output {
            PredictOutput::Logits => {
                let values =
                    Vec::<f32>::try_from(logits.squeeze_dim(0).to_device(Device::Cpu).contiguous().flatten(0, -1))?;
                let classes = model.table.len();
                crate::deploy::npy::write_f32(&target, &[classes, height as usize, width as usize], &values)?;
                bar.inc(1);
                continue;
            }
            PredictOutput::Png(format) => format,
        };
        let labels = logits.argmax(1, false).squeeze_dim(0);
        let labels: Vec<u8> =
            Vec::<i64>::try_from(labels.to_device(Device::Cpu).flatten(0, -1))?.into_iter().map(|v| v as u8).collect();
        let ids = present(&labels);
        for &id in &ids {
            shown[id] = true;
        }
        if format == PredictionFormat::Overlay {
            // The overlay with the class legend beside it.
            let blended = seg::palette::overlay(&model.table, &rgb, &labels, 0.5);
            let (w, h, pixels) = crate::observe::plots::with_legend(&model.table, &ids, width, height, &blended)?;
            seg::png::write_png(&target, w, h, image::ColorType::Rgb8, &pixels)?;
        } else {
            write_prediction(&model.table, &target, width, height, &labels, format, Some(&rgb))?;
        }
        bar.inc(1);
    }
    crate::observe::logging::finish_progress();
    if matches!(output, PredictOutput::Png(PredictionFormat::Color | PredictionFormat::Overlay)) {
        // The classes the predictions show, not the whole table.
        let ids: Vec<usize> = (0..model.table.len()).filter(|&i| shown[i]).collect();
        crate::store::rundir::write_file(
            &out.join("legend.svg"),
            seg::palette::legend_svg(&model.table, &ids).as_bytes(),
        )?;
        crate::observe::plots::png_beside(&out.join("legend.svg"))?;
    }
    Ok(inputs.len())
}

/// The train ids that occur in `labels`, ascending.
fn present(labels: &[u8]) -> Vec<usize> {
    let mut seen = [false; 256];
    for &l in labels {
        seen[l as usize] = true;
    }
    (0..256).filter(|&i| seen[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_images_get_a_sliding_window() {
        assert_eq!(automatic_window(1024, 2048), None, "a Cityscapes frame runs whole");
        assert_eq!(automatic_window(4096, 4096), Some([1025, 1025]));
        assert_eq!(automatic_window(600, 8000), Some([600, 1025]), "never larger than the image");
    }
}
