//! `search predict`: segmentation maps for images, written as colour PNGs, as label-id PNGs in
//! the Cityscapes results format (`search eval --pred` and the official evaluation read them),
//! or as overlays.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use seg::data::cityscapes::read_rgb;
use seg::data::transform::inference_image;
use seg::palette::{write_prediction, PredictionFormat};
use tch::{Device, Tensor};

use crate::evaluate::predict_labels;
use crate::trained::TrainedModel;

/// Image files under `input` (a file, or a folder searched recursively), sorted, with their
/// path relative to `input`.
pub fn list_inputs(input: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    if input.is_file() {
        let name = input.file_name().context("input file has a name")?;
        return Ok(vec![(input.to_owned(), PathBuf::from(name))]);
    }
    if !input.is_dir() {
        bail!("--input {} does not exist", input.display());
    }
    let mut found = Vec::new();
    let mut stack = vec![input.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
            {
                let relative = path.strip_prefix(input).expect("under input").to_owned();
                found.push((path, relative));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("--input {} holds no PNG or JPEG images", input.display());
    }
    Ok(found)
}

/// Predicts every image under `input` and writes `<out>/<relative path>.png` in `format`.
pub fn predict(
    model: &TrainedModel,
    input: &Path,
    out: &Path,
    format: PredictionFormat,
    device: Device,
) -> Result<usize> {
    let inputs = list_inputs(input)?;
    let bar = crate::logging::progress(inputs.len() as u64, "predict");
    for (path, relative) in &inputs {
        let (width, height, rgb) = read_rgb(path)?;
        let (image, h, w) = inference_image(width, height, rgb.clone(), &model.transform);
        let image = Tensor::from_slice(&image).view([1, 3, h as i64, w as i64]).to_device(device);
        let forward = |x: &Tensor| model.forward(x);
        let labels = tch::no_grad(|| predict_labels(&forward, &image, model.window, height as i64, width as i64));
        let labels: Vec<u8> =
            Vec::<i64>::try_from(labels.to_device(Device::Cpu).flatten(0, -1))?.into_iter().map(|v| v as u8).collect();
        let target = out.join(relative).with_extension("png");
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        write_prediction(&target, width, height, &labels, format, Some(&rgb))?;
        bar.inc(1);
    }
    crate::logging::finish_progress();
    Ok(inputs.len())
}
