//! `search predict`: segmenting images with a trained network.

use std::path::PathBuf;

use anyhow::Result;
use search::device::DeviceChoice;
use seg::palette::PredictionFormat;

use super::ModelFlags;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelFlags,
    /// An image, or a folder searched recursively for PNG and JPEG images.
    #[arg(long)]
    input: PathBuf,
    /// Output folder (mirrors the input's sub-folders).
    #[arg(long)]
    out: PathBuf,
    /// colour PNG, label-id PNG (the Cityscapes results format) or overlay on the image.
    #[arg(long, value_enum, default_value_t = FormatArg::Color)]
    format: FormatArg,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Color,
    Labelids,
    Overlay,
}

pub fn exec(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let model = search::trained::load(&args.model.resolve()?, device)?;
    let format = match args.format {
        FormatArg::Color => PredictionFormat::Color,
        FormatArg::Labelids => PredictionFormat::Labelids,
        FormatArg::Overlay => PredictionFormat::Overlay,
    };
    let count = search::predict::predict(&model, &args.input, &args.out, format, device)?;
    println!("wrote {count} predictions to {}", args.out.display());
    Ok(())
}
