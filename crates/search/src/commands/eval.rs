//! `search eval`: the Cityscapes pixel-level metric of a trained network or of label-id PNGs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use search::device::DeviceChoice;
use seg::data::Annotation;

use super::ModelFlags;

#[derive(clap::Args)]
pub struct Args {
    /// Folder of predicted label-id PNGs in the Cityscapes results format (one single-channel
    /// PNG per image, named with its <city>_<seq>_<frame> prefix; searched recursively).
    /// Either this or --weights.
    #[arg(long, conflicts_with = "weights")]
    pred: Option<PathBuf>,
    #[command(flatten)]
    model: ModelFlags,
    /// Data set root (holding leftImg8bit/ and gtFine/).
    #[arg(long)]
    data: PathBuf,
    /// Split to evaluate.
    #[arg(long, default_value = "val")]
    split: String,
    /// Use the coarse annotations (gtCoarse/) as ground truth.
    #[arg(long)]
    coarse: bool,
    /// Also write the scores as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where to run the network (with --weights).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

pub fn exec(args: Args) -> Result<()> {
    let annotation = if args.coarse { Annotation::Coarse } else { Annotation::Fine };
    let (scores, counts, images) = match &args.pred {
        Some(pred) => {
            let result = seg::eval::evaluate_folder(pred, &args.data, &args.split, annotation).with_context(|| {
                format!("evaluating {} against {} ({})", pred.display(), args.data.display(), args.split)
            })?;
            (result.scores, result.counts, result.images)
        }
        None => {
            anyhow::ensure!(
                args.model.weights.is_some(),
                "say what to evaluate: --pred FOLDER, or --weights (with --arch)"
            );
            let device = args.device.resolve()?;
            let model = search::trained::load(&args.model.resolve()?, device)?;
            let samples = seg::data::list_samples(&args.data, &args.split, annotation)?;
            let forward = |x: &tch::Tensor| model.forward(x);
            let matrix = search::evaluate::evaluate(&samples, &model.transform, &model.protocol, device, 2, &forward)?;
            (matrix.scores(), matrix.counts(), samples.len())
        }
    };
    print!("{}", scores.to_table());
    println!("{images} images");
    if let Some(path) = &args.json {
        let json =
            serde_json::json!({"images": images, "split": args.split, "scores": scores, "confusion_counts": counts});
        search::rundir::write_file(path, (serde_json::to_string_pretty(&json)? + "\n").as_bytes())?;
    }
    Ok(())
}
