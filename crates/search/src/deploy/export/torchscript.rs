//! The TorchScript exporter (`model.pt`): the traced graph itself, loaded back in Rust and
//! compared with the network on a random image. `torch.jit.load` in Python, `tch::CModule::load`
//! in Rust, `torch::jit::load` in C++.

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
        Ok(serde_json::json!({ "file": self.file(), "max_abs_diff": max_abs_diff }))
    }
}
