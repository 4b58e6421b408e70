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
    #[command(flatten)]
    inference: super::InferenceFlags,
    /// An image, or a folder searched recursively for PNG and JPEG images.
    #[arg(long)]
    input: PathBuf,
    /// Output folder (mirrors the input's sub-folders).
    #[arg(long)]
    out: PathBuf,
    /// colour PNG, PNG of the data set's stored values (`labelids`: label ids in the Cityscapes
    /// results format, VOC class indices, ADE20K 1..=150), overlay on the image, or the logits
    /// `[classes, height, width]` as float32 NumPy `.npy` (before the argmax).
    #[arg(long, value_enum, default_value_t = FormatArg::Color)]
    output_format: FormatArg,
    /// Layout of the data set, whose class table names, colours and stores the classes
    /// (default: the run's; cityscapes). --classes names a table file instead.
    #[arg(long, value_enum)]
    format: Option<seg::data::DataFormat>,
    /// Where to run the network.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Color,
    Labelids,
    Overlay,
    Logits,
}

pub fn exec(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let model = search::deploy::trained::load(&args.model.resolve(args.format, &args.inference)?, device)?;
    use search::deploy::predict::PredictOutput;
    let format = match args.output_format {
        FormatArg::Color => PredictOutput::Png(PredictionFormat::Color),
        FormatArg::Labelids => PredictOutput::Png(PredictionFormat::Labelids),
        FormatArg::Overlay => PredictOutput::Png(PredictionFormat::Overlay),
        FormatArg::Logits => PredictOutput::Logits,
    };
    let count = search::deploy::predict::predict(&model, &args.input, &args.out, format, device)?;
    println!("wrote {count} predictions to {}", args.out.display());
    Ok(())
}
