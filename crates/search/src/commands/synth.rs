//! `search synth`: the synthetic street-scene data set, in any of the four layouts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use seg::data::{SynthConfig, SynthTask};
use tracing::info;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (gets the layout of --format).
    #[arg(long)]
    out: PathBuf,
    /// Layout and encoding to write: Cityscapes (label ids), folder (classes.toml; index labels
    /// for train, colour labels and JPEG images for val), VOC (JPEG, palette PNGs, the lists and
    /// the augmented set) or ADE20K (JPEG, 1..=150). See datasets/README.md.
    #[arg(long, value_enum, default_value_t = seg::data::DataFormat::Cityscapes)]
    format: seg::data::DataFormat,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of training images.
    #[arg(long, default_value_t = 64)]
    train: usize,
    /// Number of validation images.
    #[arg(long, default_value_t = 16)]
    val: usize,
    /// Which scenes: street scenes (12 classes); the context task (regions told apart only by
    /// wide context, thin structures; the demo's); scale (the class is the size of a blob);
    /// shape (the class is the outline, colours are shared); rare (twelve stripe-textured
    /// classes, most of them rare). docs/data.md describes each.
    #[arg(long, value_enum, default_value_t = TaskArg::Street)]
    task: TaskArg,
    /// Image size as WIDTHxHEIGHT.
    #[arg(long, default_value = "256x128", value_parser = super::parse_size)]
    size: (u32, u32),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TaskArg {
    Street,
    Context,
    Scale,
    Shape,
    Rare,
}

pub fn exec(args: Args) -> Result<()> {
    let (width, height) = args.size;
    let task = match args.task {
        TaskArg::Street => SynthTask::Street,
        TaskArg::Context => SynthTask::Context,
        TaskArg::Scale => SynthTask::Scale,
        TaskArg::Shape => SynthTask::Shape,
        TaskArg::Rare => SynthTask::Rare,
    };
    let config = SynthConfig { seed: args.seed, train: args.train, val: args.val, width, height, task };
    let occupied = std::fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(false);
    anyhow::ensure!(
        !occupied,
        "--out {} is not empty: writing a data set over another would mix the two; choose an empty or new folder",
        args.out.display()
    );
    let start = std::time::Instant::now();
    let written = seg::data::synth_layout::generate_as(&args.out, &config, args.format)
        .with_context(|| format!("writing the synthetic data set to {}", args.out.display()))?;
    info!(images = written.len(), seconds = start.elapsed().as_secs_f64(), "synthetic data set written");
    println!(
        "wrote {} train and {} val images of {width}x{height} in the {} layout to {}",
        args.train,
        args.val,
        args.format,
        args.out.display()
    );
    Ok(())
}
