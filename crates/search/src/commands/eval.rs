//! `search eval`: the Cityscapes pixel-level metric, over the data set's class table, of a
//! trained network or of a folder of predictions in the data set's stored values.

use std::path::PathBuf;

use anyhow::{Context, Result};
use search::device::DeviceChoice;
use seg::data::{Annotation, Dataset};

use super::ModelFlags;

#[derive(clap::Args)]
pub struct Args {
    /// Folder of predictions: one single-channel PNG of the data set's stored values per image
    /// (`predict --output-format labelids` writes them; for Cityscapes the results format), at
    /// `<id>.png` or named with the image's id (Cityscapes: its <city>_<seq>_<frame> prefix),
    /// searched recursively. Either this or --weights.
    #[arg(long, conflicts_with = "weights")]
    pred: Option<PathBuf>,
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    inference: super::InferenceFlags,
    /// Data set root, in the layout of --format (default with --weights RUN: the data set the
    /// run trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Layout of the data set, which also gives its class table unless --classes names one
    /// (default: the run's with --weights, else cityscapes).
    #[arg(long, value_enum)]
    format: Option<seg::data::DataFormat>,
    /// Split to evaluate.
    #[arg(long, default_value = "val")]
    split: String,
    /// Use the coarse annotations (gtCoarse/) as ground truth (Cityscapes).
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
            let data = args.data.clone().context("--pred needs --data: the data set the predictions are of")?;
            let format = args.format.unwrap_or_default();
            let classes = args.model.classes.clone().map(search::run_config::ClassesSpec::File);
            let table = search::run_config::resolve_table(format, classes.as_ref(), &data)
                .map_err(|e| anyhow::anyhow!("--classes: {}", e.message))?;
            let dataset = Dataset { annotation, ..Dataset::new(format, data.clone(), table) };
            let result = seg::eval::evaluate_folder(pred, &dataset, &args.split).with_context(|| {
                format!("evaluating {} against {} ({}, {format})", pred.display(), data.display(), args.split)
            })?;
            (result.scores, result.counts, result.images)
        }
        None => {
            anyhow::ensure!(
                args.model.weights.is_some(),
                "say what to evaluate: --pred FOLDER, or --weights (with --arch)"
            );
            let device = args.device.resolve()?;
            let model = search::deploy::trained::load(&args.model.resolve(args.format, &args.inference)?, device)?;
            let data = match (&args.data, &model.card.training_data) {
                (Some(data), _) => data.clone(),
                (None, Some(trained)) => PathBuf::from(&trained.root),
                (None, None) => anyhow::bail!("--data: the data set to evaluate on (these weights record none)"),
            };
            let dataset = Dataset { annotation, ..Dataset::new(model.format, data, model.table.clone()) };
            let samples = dataset.list_samples(&args.split)?;
            let forward = |x: &tch::Tensor| model.forward(x);
            let names = model.table.names();
            let matrix = search::deploy::evaluate::evaluate(
                &samples,
                names,
                &model.transform,
                &model.protocol,
                device,
                2,
                &forward,
            )?;
            (matrix.scores(), matrix.counts(), samples.len())
        }
    };
    print!("{}", scores.to_table());
    println!("{images} images");
    if let Some(path) = &args.json {
        // `confusion`: rows are the ground-truth classes, columns the predicted ones, both in
        // train-id order (`classes`), and a last column for predicted values that are no class;
        // each entry counts pixels (docs/data.md).
        let n = scores.classes.len();
        let rows: Vec<&[u64]> = counts.chunks(n + 1).collect();
        let names: Vec<&str> = scores.classes.iter().map(|c| c.name.as_str()).collect();
        let json = serde_json::json!({
            "images": images, "split": args.split, "scores": scores,
            "confusion": {
                "classes": names, "rows": "ground truth",
                "columns": "prediction, then one column for predicted values that are no class",
                "counts": rows,
            },
        });
        search::store::rundir::write_file(path, (serde_json::to_string_pretty(&json)? + "\n").as_bytes())?;
        let names: Vec<String> = scores.classes.iter().map(|c| c.name.clone()).collect();
        let ious: Vec<Option<f64>> = scores.classes.iter().map(|c| c.iou).collect();
        let pictures = search::observe::plots::write_eval_pictures(path, &names, &counts, &ious, scores.miou)
            .context("writing the evaluation's pictures")?;
        let shown: Vec<String> = pictures.iter().map(|p| p.display().to_string()).collect();
        println!("wrote {} and {}", path.display(), shown.join(", "));
    }
    Ok(())
}
