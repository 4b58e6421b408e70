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
    /// Size WIDTHxHEIGHT the network runs at inside the files (they take any size and resize it
    /// to this one). Default: the run's val images at its base scale, else its training crop.
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
    let model = args.model.resolve(args.format, &super::InferenceFlags::default())?;
    let size = match args.size {
        Some(size) => Some(size),
        None => super::run_facts(&model.weights)?.and_then(|f| f.size),
    };
    match (args.size, size) {
        (None, Some((w, h))) => tracing::info!("exporting at the data's image size {w}x{h} (--size to change)"),
        (None, None) => tracing::info!("the data is not at hand: exporting at the training crop (--size to change)"),
        _ => {}
    }
    let request = search::deploy::export::ExportRequest {
        model,
        formats: args.output_format.clone(),
        size: size.map(|(w, h)| (h, w)),
        out: args.out.clone(),
        fold_bn: args.fold_bn,
    };
    let report = search::deploy::export::export(&request)?;
    println!("{}", serde_json::to_string(&report)?);
    println!("wrote {} to {}", report.files.join(", "), args.out.display());
    Ok(())
}
