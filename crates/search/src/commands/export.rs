//! `search export`: TorchScript and ONNX files of a trained network (docs/deploy.md).

use std::path::PathBuf;

use anyhow::Result;

use super::ModelFlags;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelFlags,
    /// Which files: `all`, or one or more registered formats, comma-separated: `torchscript`
    /// (`model.pt`), `onnx` (`model.onnx`, opset 17).
    #[arg(long, default_value = "all", value_delimiter = ',')]
    output_format: Vec<String>,
    /// Input size WIDTHxHEIGHT the files take (fixed: tracing records every resize at this
    /// size; the batch size stays free). Default: the run's training crop.
    #[arg(long, value_parser = super::parse_size)]
    size: Option<(u32, u32)>,
    /// Output folder; must not exist (written beside it, then renamed).
    #[arg(long)]
    out: PathBuf,
    /// Fold every convolution + batch norm pair (in both files).
    #[arg(long)]
    fold_bn: bool,
    /// Layout of the data set, whose class table the network has (default: the run's, or the
    /// weights' metadata).
    #[arg(long, value_enum)]
    format: Option<seg::data::DataFormat>,
}

pub fn exec(args: Args) -> Result<()> {
    let request = search::deploy::export::ExportRequest {
        model: args.model.resolve(args.format, &super::InferenceFlags::default())?,
        formats: args.output_format.clone(),
        size: args.size.map(|(w, h)| (h, w)),
        out: args.out.clone(),
        fold_bn: args.fold_bn,
    };
    let report = search::deploy::export::export(&request)?;
    println!("{}", serde_json::to_string(&report)?);
    println!("wrote {} to {}", report.files.join(", "), args.out.display());
    Ok(())
}
