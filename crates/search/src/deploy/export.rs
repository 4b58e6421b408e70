//! `search export`: the retrained network for use outside the tool (docs/deploy.md).
//!
//! - **TorchScript** (`model.pt`): libtorch's tracer records the network in eval mode (batch
//!   norm with its running statistics, no drop path) behind the input normalisation, so the
//!   file takes RGB in 0..255, `[N, 3, H, W]` float32, and gives logits `[N, classes, H, W]`.
//!   Tracing fixes the height and width (every resize in the graph has a constant size); the
//!   batch size stays free.
//! - **ONNX** (`model.onnx`, opset 17): converted from the TorchScript file by the Python torch
//!   that `scripts/setup.sh` installs (torch's TorchScript-based exporter; writing ONNX from Rust
//!   would duplicate every op of the network a second time), dynamic batch, fixed H x W, the
//!   model card in `metadata_props`, checked with onnxruntime.
//! - `--fold-bn`: every convolution + batch norm pair folded (`torch.jit.freeze`), in both files.
//! - `model.json`: the model card and what the export checked.
//!
//! Everything is written into a temporary folder beside `--out`, which is renamed into place
//! only when every file is written and checked.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tch::{CModule, Device, Kind, Tensor};

use crate::deploy::model_card::ModelCard;
use crate::deploy::trained::{ModelArgs, TrainedModel};

/// The smallest and largest side an export accepts: the network downsamples by 32, and a
/// traced graph of a huge image is mostly constants of its size.
pub const MIN_SIDE: u32 = 32;
pub const MAX_SIDE: u32 = 8192;

/// The ONNX opset written.
pub const OPSET: u32 = 17;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub model: ModelArgs,
    pub torchscript: bool,
    pub onnx: bool,
    /// `(height, width)`; default: the run's training crop.
    pub size: Option<(u32, u32)>,
    pub out: PathBuf,
    pub fold_bn: bool,
}

/// What an export wrote and checked (also `model.json`'s `export` entry).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub files: Vec<String>,
    pub height: u32,
    pub width: u32,
    /// The input the files take.
    pub input: String,
    /// What they give.
    pub output: String,
    pub batch: String,
    pub fold_bn: bool,
    pub onnx_opset: Option<u32>,
    /// Seconds to trace and save the TorchScript file.
    pub torchscript_seconds: f64,
    /// Seconds of the Python step (folding, ONNX conversion and its check).
    pub python_seconds: Option<f64>,
    /// The TorchScript file loaded back in Rust against the network, largest |difference|
    /// of the logits on one random image.
    pub torchscript_max_abs_diff: f64,
    /// The Python step's report: batch norm counts, folding and onnxruntime differences (against
    /// the traced TorchScript, two random images).
    pub python: Option<serde_json::Value>,
}

/// Where the Python torch, onnx and onnxruntime are: `.libtorch/site` (which the binary was
/// built against) and `.libtorch/tools`.
fn python_path() -> Result<String> {
    let lib = Path::new(env!("ADL_LIBTORCH_LIB"));
    let site = lib.join("../..");
    let tools = site.join("../tools");
    if !site.join("torch/__init__.py").is_file() || !tools.join("onnx").is_dir() {
        bail!(
            "the ONNX export and --fold-bn run the Python torch and onnx that scripts/setup.sh installs, \
             looked for in {} and {}: run scripts/setup.sh",
            site.display(),
            tools.display()
        );
    }
    Ok(format!("{}:{}", site.display(), tools.display()))
}

/// The traced network: normalisation, then the network in eval mode.
fn trace(model: &TrainedModel, h: u32, w: u32) -> Result<CModule> {
    let mean = Tensor::from_slice(&model.transform.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&model.transform.std).view([1, 3, 1, 1]);
    let example = Tensor::rand([1, 3, h as i64, w as i64], (Kind::Float, Device::Cpu)) * 255.0;
    let mut forward = |inputs: &[Tensor]| vec![model.forward(&((&inputs[0] - &mean) / &std))];
    let module = tch::no_grad(|| CModule::create_by_tracing("AutoDeepLab", "forward", &[example], &mut forward))
        .context("tracing the network")?;
    Ok(module)
}

/// Exports the network `request` names.
pub fn export(request: &ExportRequest) -> Result<ExportReport> {
    if request.out.exists() {
        bail!("--out {} exists: export writes a new folder (choose another name)", request.out.display());
    }
    if !request.torchscript && !request.onnx {
        bail!("nothing to export: --format torchscript, onnx or all");
    }
    let mut model = crate::deploy::trained::load(&request.model, Device::Cpu)?;
    // Constants of the traced graph: the weights must not require gradients.
    model.store.freeze();
    let (h, w) = request.size.unwrap_or((model.transform.crop[0], model.transform.crop[1]));
    for (side, value) in [("height", h), ("width", w)] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&value) {
            bail!(
                "--size: a {side} of {value} pixels is not accepted: the network takes {MIN_SIDE} to {MAX_SIDE} \
                 (it downsamples by 32)"
            );
        }
    }
    let staging = staging_folder(&request.out)?;
    let result = write_all(request, &model, h, w, &staging);
    match result {
        Ok(report) => {
            std::fs::rename(&staging, &request.out)
                .with_context(|| format!("moving {} to {}", staging.display(), request.out.display()))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// A fresh folder beside `out` for the files being written.
fn staging_folder(out: &Path) -> Result<PathBuf> {
    let name = out.file_name().context("--out needs a folder name")?.to_string_lossy();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    Ok(staging)
}

fn write_all(request: &ExportRequest, model: &TrainedModel, h: u32, w: u32, dir: &Path) -> Result<ExportReport> {
    let start = Instant::now();
    let module = trace(model, h, w)?;
    let torchscript = dir.join("model.pt");
    module.save(&torchscript).with_context(|| format!("writing {}", torchscript.display()))?;
    let torchscript_seconds = start.elapsed().as_secs_f64();

    // The file, loaded back, against the network.
    let loaded = CModule::load(&torchscript).context("loading the TorchScript file back")?;
    let x = Tensor::rand([1, 3, h as i64, w as i64], (Kind::Float, Device::Cpu)) * 255.0;
    let mean = Tensor::from_slice(&model.transform.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&model.transform.std).view([1, 3, 1, 1]);
    let (ours, theirs) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
        Ok((model.forward(&((&x - &mean) / &std)), loaded.forward_ts(&[&x])?))
    })?;
    let torchscript_max_abs_diff = f64::try_from((ours - theirs).abs().max())?;

    let card = &model.card;
    let mut metadata = card.to_metadata();
    metadata.insert("input_size".into(), format!("[{h}, {w}]"));
    metadata.insert("input_convention".into(), input_text(card, h, w));
    let (python, python_seconds) = if request.onnx || request.fold_bn {
        let job = serde_json::json!({
            "torchscript": torchscript,
            "onnx": request.onnx.then(|| dir.join("model.onnx")),
            "fold_bn": request.fold_bn,
            "height": h,
            "width": w,
            "opset": OPSET,
            "metadata": metadata,
        });
        let start = Instant::now();
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let script = dir.join("export.py");
        std::fs::write(&script, include_str!("export.py")).context("writing the export script")?;
        let output = std::process::Command::new(&python)
            .arg(&script)
            .arg(job.to_string())
            .env("PYTHONPATH", python_path()?)
            .output()
            .with_context(|| format!("running {python}"))?;
        std::fs::remove_file(&script).context("removing the export script")?;
        if !output.status.success() {
            bail!("the Python export step failed:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .with_context(|| format!("the Python export step printed {stdout}"))?;
        (Some(report), Some(start.elapsed().as_secs_f64()))
    } else {
        (None, None)
    };
    if !request.torchscript {
        std::fs::remove_file(&torchscript).context("removing the TorchScript file")?;
    }
    let mut files: Vec<String> = Vec::new();
    if request.torchscript {
        files.push("model.pt".into());
    }
    if request.onnx {
        files.push("model.onnx".into());
    }
    files.push("model.json".into());
    let report = ExportReport {
        files,
        height: h,
        width: w,
        input: input_text(card, h, w),
        output: format!(
            "logits [N, {}, {h}, {w}] float32, channel i = class_table.class[i]; argmax for labels",
            card.class_table.len()
        ),
        batch: "any (dynamic)".into(),
        fold_bn: request.fold_bn,
        onnx_opset: request.onnx.then_some(OPSET),
        torchscript_seconds,
        python_seconds,
        torchscript_max_abs_diff,
        python,
    };
    let json = serde_json::json!({"model": card, "export": report});
    seg::atomic::write_atomic(&dir.join("model.json"), (serde_json::to_string_pretty(&json)? + "\n").as_bytes())
        .context("writing model.json")?;
    Ok(report)
}

/// The input convention in words.
fn input_text(card: &ModelCard, h: u32, w: u32) -> String {
    format!(
        "image [N, 3, {h}, {w}] float32, RGB in 0..255 (the file normalises with mean {:?} and std {:?}); \
         resize images by base_scale {} to about this size first",
        card.input.mean, card.input.std, card.input.base_scale
    )
}
