//! The ONNX exporter (`model.onnx`, opset [`OPSET`]): converted from the built TorchScript module
//! by the Python torch that `scripts/setup.sh` installs (torch's TorchScript-based exporter;
//! writing ONNX from Rust would define every op of the network a second time), dynamic batch,
//! height and width (`image` and `logits` dimensions `batch`, `height`, `width`; another size is
//! resized to the traced one inside the graph), the model card in `metadata_props`, checked with
//! `onnx.checker` and against the module with onnxruntime, at the traced size and another.

use std::path::Path;

use anyhow::Result;

use super::{run_python, Exporter, Traced};

/// The ONNX opset written.
pub const OPSET: u32 = 17;

pub struct Onnx;

impl Exporter for Onnx {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn file(&self) -> &'static str {
        "model.onnx"
    }

    fn write(&self, traced: &Traced, dir: &Path) -> Result<serde_json::Value> {
        let job = serde_json::json!({
            "mode": "onnx",
            "torchscript": traced.file,
            "onnx": dir.join(self.file()),
            "height": traced.height,
            "width": traced.width,
            "opset": OPSET,
            "metadata": traced.metadata,
        });
        let mut checked = run_python(dir, &job)?;
        checked["file"] = serde_json::json!(self.file());
        Ok(checked)
    }
}
