//! The TorchScript exporter (`model.pt`): the built module itself (the traced graph with the
//! weights as parameters and buffers, resizing any input size; `export.py`), the model card as
//! the extra file `metadata.json`; loaded back in Rust and compared with the network on a random
//! image, and run at another size. `torch.jit.load` in Python (trainable: `parameters()` are the
//! weights), `tch::CModule::load` in Rust, `torch::jit::load` in C++.

use std::path::Path;

use anyhow::{Context, Result};
use tch::{CModule, Device, Kind, Tensor};

use super::{normalisation, Exporter, Traced};

pub struct TorchScript;

impl Exporter for TorchScript {
    fn name(&self) -> &'static str {
        "torchscript"
    }

    fn file(&self) -> &'static str {
        "model.pt"
    }

    fn write(&self, traced: &Traced, dir: &Path) -> Result<serde_json::Value> {
        let file = dir.join(self.file());
        std::fs::copy(traced.file, &file).with_context(|| format!("writing {}", file.display()))?;
        let loaded = CModule::load(&file).context("loading the TorchScript file back")?;
        let x = Tensor::rand([1, 3, traced.height as i64, traced.width as i64], (Kind::Float, Device::Cpu)) * 255.0;
        let (mean, std) = normalisation(traced.model);
        let (ours, theirs) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
            Ok((traced.model.forward(&((&x - &mean) / &std)), loaded.forward_ts(&[&x])?))
        })?;
        let max_abs_diff = f64::try_from((ours - theirs).abs().max())?;
        let (h, w) = (traced.height as i64 * 3 / 2, traced.width as i64 * 3 / 2);
        let other = Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu)) * 255.0;
        let shape = tch::no_grad(|| loaded.forward_ts(&[&other]))?.size();
        anyhow::ensure!(shape[2..] == [h, w], "an input of {w}x{h} gave logits of {shape:?}");
        Ok(serde_json::json!({
            "file": self.file(),
            "max_abs_diff": max_abs_diff,
            "other_size_shape": shape,
            "metadata": "extra file metadata.json",
        }))
    }
}
