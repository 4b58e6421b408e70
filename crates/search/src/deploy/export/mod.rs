//! `search export`: the retrained network for use outside the tool (docs/deploy.md), as a
//! **registry of exporters** ([`registry`]): each format is one [`Exporter`] in its own file
//! (`torchscript.rs`, `onnx.rs`), which writes its file from the traced network and checks it.
//! A third format is one more file and one more entry in [`registry`]; `--output-format` takes any
//! registered name.
//!
//! The pipeline: libtorch's tracer records the network in eval mode (batch norm with its running
//! statistics, no drop path) behind the input normalisation, with the weights as inputs of the
//! graph; the Python half (`export.py`) makes them the parameters and buffers of a TorchScript
//! module under their own names (so the file can be fine-tuned), with a bilinear resize of any
//! input to the traced size before the graph and of the logits back to the input's size after it
//! (tracing records every resize inside the network at its constant size, so this is how the
//! files take any height and width). The files take RGB in 0..255, `[N, 3, H, W]` float32, and
//! give logits `[N, classes, H, W]`. With `--fold-bn` the module is frozen, which folds every
//! convolution + batch norm pair (a deployment file without parameters). Then each requested
//! exporter writes its file, and `model.json` holds the model card and what every exporter
//! checked.
//!
//! Everything is written into a temporary folder beside `--out` (`seg::atomic`), renamed into
//! place only when every file is written and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tch::{CModule, Device, Kind, Tensor};

use crate::deploy::model_card::ModelCard;
use crate::deploy::trained::{ModelArgs, TrainedModel};

mod onnx;
mod torchscript;

/// The smallest and largest side an export accepts: the network downsamples by 32, and a
/// traced graph of a huge image is mostly constants of its size.
pub const MIN_SIDE: u32 = 32;
pub const MAX_SIDE: u32 = 8192;

/// The built network every exporter starts from.
pub struct Traced<'a> {
    /// The built TorchScript module (the traced graph, its weights as parameters and buffers,
    /// the resize to and from the traced size; with `--fold-bn`, frozen and folded) in the
    /// staging folder.
    pub file: &'a Path,
    /// The network it was traced from.
    pub model: &'a TrainedModel,
    pub height: u32,
    pub width: u32,
    /// The model card as string pairs (for formats with metadata), with the input size.
    pub metadata: &'a BTreeMap<String, String>,
}

/// One export format.
pub trait Exporter: Sync {
    /// Its `--output-format` name.
    fn name(&self) -> &'static str;
    /// The file it writes in the export folder.
    fn file(&self) -> &'static str;
    /// Writes `dir/<file>` from `traced` and checks it; returns what it checked (its entry of
    /// `model.json`'s `export.formats`).
    fn write(&self, traced: &Traced, dir: &Path) -> Result<serde_json::Value>;
}

/// Every export format, in the order `--output-format all` writes them.
pub fn registry() -> &'static [&'static dyn Exporter] {
    &[&torchscript::TorchScript, &onnx::Onnx]
}

/// The exporters `formats` names (`all`: every one), or an error listing the known names.
pub fn exporters(formats: &[String]) -> Result<Vec<&'static dyn Exporter>> {
    let known = || registry().iter().map(|e| e.name()).collect::<Vec<_>>().join(", ");
    if formats.is_empty() {
        bail!("nothing to export: --output-format all, or one or more of {}", known());
    }
    if formats.iter().any(|f| f == "all") {
        return Ok(registry().to_vec());
    }
    let mut out: Vec<&'static dyn Exporter> = Vec::new();
    for name in formats {
        let exporter = registry()
            .iter()
            .find(|e| e.name() == name)
            .with_context(|| format!("--output-format {name}: not a format; known: all, {}", known()))?;
        if !out.iter().any(|e| e.name() == exporter.name()) {
            out.push(*exporter);
        }
    }
    Ok(out)
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub model: ModelArgs,
    /// Registered format names (`all`: every one).
    pub formats: Vec<String>,
    /// `(height, width)`; `None`: the run's training crop (the command passes the data's image
    /// size when it can read it).
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
    /// What an input of another height and width gets.
    pub other_sizes: String,
    /// Seconds to trace the network.
    pub trace_seconds: f64,
    /// What building the TorchScript module checked: the largest |difference| from the traced
    /// graph, the trainable parameters (0 with `--fold-bn`), that each receives a gradient and
    /// one SGD step changes the logits, the logits' shape at another size.
    pub module: serde_json::Value,
    /// With `--fold-bn`: batch norm counts before and after folding, the largest |difference|
    /// of the folded graph's logits from the traced one's, seconds.
    pub fold_bn: Option<serde_json::Value>,
    /// What each exporter checked, by format name.
    pub formats: BTreeMap<String, serde_json::Value>,
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

/// Runs the Python half (`export.py`, embedded) on `job` in `dir`; returns the JSON line it
/// prints.
fn run_python(dir: &Path, job: &serde_json::Value) -> Result<serde_json::Value> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = dir.join(".export.py");
    seg::atomic::write_inside(&script, include_str!("export.py").as_bytes()).context("writing the export script")?;
    let mut command = std::process::Command::new(&python);
    command.arg(&script).arg(job.to_string()).env("PYTHONPATH", python_path()?);
    crate::store::interrupt::die_with_parent(&mut command);
    let output = command.output().with_context(|| format!("running {python}"))?;
    std::fs::remove_file(&script).context("removing the export script")?;
    if !output.status.success() {
        bail!("the Python export step failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("the Python export step printed {stdout}"))
}

/// The store's variables in name order (the order the traced graph takes them), each with
/// whether it is trainable (the batch-norm statistics are not).
fn variables(model: &TrainedModel) -> Vec<(String, Tensor, bool)> {
    let trainable: std::collections::HashSet<usize> =
        model.store.trainable_variables().iter().map(|t| t.data_ptr() as usize).collect();
    let mut named: Vec<(String, Tensor)> = model.store.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
        .into_iter()
        .map(|(name, tensor)| {
            let learns = trainable.contains(&(tensor.data_ptr() as usize));
            (name, tensor, learns)
        })
        .collect()
}

/// The traced network, `forward(image, *weights)`: normalisation, then the network in eval
/// mode, with the store's variables (in [`variables`]' order) as inputs rather than constants,
/// so that the exported module can hold them as parameters. The tracer knows a tensor by its
/// storage object, which the inputs share with the store (`shallow_clone`), so every use of a
/// weight in the network becomes a use of its input.
fn trace(model: &TrainedModel, h: u32, w: u32, weights: &[(String, Tensor, bool)]) -> Result<CModule> {
    let (mean, std) = normalisation(model);
    let example = Tensor::rand([1, 3, h as i64, w as i64], (Kind::Float, Device::Cpu)) * 255.0;
    let mut inputs = vec![example];
    inputs.extend(weights.iter().map(|(_, t, _)| t.shallow_clone()));
    let mut forward = |inputs: &[Tensor]| vec![model.forward(&((&inputs[0] - &mean) / &std))];
    let module = tch::no_grad(|| CModule::create_by_tracing("AutoDeepLab", "forward", &inputs, &mut forward))
        .context("tracing the network")?;
    Ok(module)
}

/// The model's input normalisation as `[1, 3, 1, 1]` mean and std.
fn normalisation(model: &TrainedModel) -> (Tensor, Tensor) {
    let mean = Tensor::from_slice(&model.transform.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&model.transform.std).view([1, 3, 1, 1]);
    (mean, std)
}

/// Bytes free for an unprivileged writer on the file system holding `path`'s folder.
fn free_bytes(path: &Path) -> Option<u64> {
    let folder = seg::overlap::resolved(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")));
    let c = std::ffi::CString::new(folder.as_os_str().as_encoded_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct for the call to fill.
    (unsafe { libc::statvfs(c.as_ptr(), &mut stat) } == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Refuses an export the disk cannot hold, before anything is written: libtorch aborts the
/// process (SIGABRT) when its writer hits a full disk, which no error handling can catch. Each
/// format holds the weights once, and the traced file is written first; with 8 MiB for graphs
/// and metadata.
fn check_free_space(out: &Path, model: &TrainedModel, formats: usize) -> Result<()> {
    let weights: u64 =
        model.store.variables().values().map(|t| t.numel() as u64 * t.kind().elt_size_in_bytes() as u64).sum();
    let needed = weights * (formats as u64 + 1) + (8 << 20);
    if let Some(free) = free_bytes(out) {
        if free < needed {
            bail!(
                "--out {}: the disk has {:.1} MiB free and the export needs about {:.1} MiB ({} format(s) of {:.1} MiB \
                 of weights, and the traced network); free some space or export elsewhere",
                out.display(),
                free as f64 / 1048576.0,
                needed as f64 / 1048576.0,
                formats,
                weights as f64 / 1048576.0
            );
        }
    }
    Ok(())
}

/// Exports the network `request` names.
pub fn export(request: &ExportRequest) -> Result<ExportReport> {
    if request.out.exists() {
        bail!("--out {} exists: export writes a new folder (choose another name)", request.out.display());
    }
    let exporters = exporters(&request.formats)?;
    let mut model = crate::deploy::trained::load(&request.model, Device::Cpu)?;
    // Traced without autograd; the built module makes the trainable ones parameters again.
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
    if let Some(parent) = request.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    check_free_space(&request.out, &model, exporters.len())?;
    let mut report = None;
    seg::atomic::write_atomic_with(&request.out, |staging| -> Result<()> {
        std::fs::create_dir(staging).with_context(|| format!("creating {}", staging.display()))?;
        report = Some(write_all(request, &exporters, &model, h, w, staging)?);
        Ok(())
    })
    .with_context(|| format!("exporting to {}", request.out.display()))?;
    Ok(report.expect("written"))
}

fn write_all(
    request: &ExportRequest,
    exporters: &[&'static dyn Exporter],
    model: &TrainedModel,
    h: u32,
    w: u32,
    dir: &Path,
) -> Result<ExportReport> {
    let start = Instant::now();
    let weights = variables(model);
    let graph = dir.join(".graph.pt");
    trace(model, h, w, &weights)?.save(&graph).with_context(|| format!("writing {}", graph.display()))?;
    let trace_seconds = start.elapsed().as_secs_f64();
    let weights_file = dir.join(".weights.safetensors");
    let named: Vec<(&str, &Tensor)> = weights.iter().map(|(n, t, _)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&named, &weights_file).with_context(|| format!("writing {}", weights_file.display()))?;
    let card = &model.card;
    let mut metadata: BTreeMap<String, String> = card.to_metadata().into_iter().collect();
    // WIDTHxHEIGHT, the one size convention (seg::size).
    metadata.insert("input_size".into(), format!("{w}x{h}"));
    metadata.insert("input_convention".into(), input_text(card, h, w));
    let module_file = dir.join(".module.pt");
    let job = serde_json::json!({
        "mode": "build",
        "traced": graph,
        "weights": weights_file,
        "names": weights.iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
        "trainable": weights.iter().filter(|(_, _, t)| *t).map(|(n, _, _)| n).collect::<Vec<_>>(),
        "height": h,
        "width": w,
        "fold": request.fold_bn,
        "metadata": metadata,
        "out": module_file,
    });
    let mut module = run_python(dir, &job).context("building the TorchScript module")?;
    for file in [&graph, &weights_file] {
        std::fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
    }
    let fold_bn = module.as_object_mut().and_then(|m| m.remove("fold"));
    let source = Traced { file: &module_file, model, height: h, width: w, metadata: &metadata };
    let mut formats = BTreeMap::new();
    for exporter in exporters {
        let checked = exporter.write(&source, dir).with_context(|| format!("the {} export", exporter.name()))?;
        formats.insert(exporter.name().to_owned(), checked);
    }
    std::fs::remove_file(&module_file).context("removing the built module")?;
    let mut files: Vec<String> = exporters.iter().map(|e| e.file().to_owned()).collect();
    files.push("model.json".into());
    let report = ExportReport {
        files,
        height: h,
        width: w,
        input: input_text(card, h, w),
        output: format!(
            "logits [N, {}, H, W] float32 at the input's height and width, channel i = class_table.class[i]; \
             argmax for labels",
            card.class_table.len()
        ),
        batch: "any (dynamic)".into(),
        other_sizes: format!(
            "any height and width: the files resize an input to {w}x{h} inside (bilinear) and the logits \
             back to the input's size; at {w}x{h} they compute exactly what the network does"
        ),
        trace_seconds,
        module,
        fold_bn,
        formats,
    };
    let json = serde_json::json!({"model": card, "export": report});
    seg::atomic::write_atomic(&dir.join("model.json"), (serde_json::to_string_pretty(&json)? + "\n").as_bytes())
        .context("writing model.json")?;
    Ok(report)
}

/// The input convention in words.
fn input_text(card: &ModelCard, h: u32, w: u32) -> String {
    format!(
        "image [N, 3, H, W] float32, RGB in 0..255 (the file normalises with mean {:?} and std {:?}); the \
         network runs at {w}x{h}, to which the file resizes any other size: resize images by base_scale {} \
         (the training's) and export at the size you run at for the exact network",
        card.input.mean, card.input.std, card.input.base_scale
    )
}
