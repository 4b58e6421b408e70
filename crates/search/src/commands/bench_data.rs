//! `search bench-data`: the loader's images/s.

use std::path::PathBuf;

use anyhow::{Context, Result};
use seg::data::{SynthConfig, SynthTask, TransformConfig};
use tracing::info;

#[derive(clap::Args)]
pub struct Args {
    /// Data set root to read (its train split); default: generate synthetic images into a
    /// temporary folder.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Layout of --data, or of the synthetic images (VOC and ADE20K: JPEG).
    #[arg(long, value_enum, default_value_t = seg::data::DataFormat::Cityscapes)]
    format: seg::data::DataFormat,
    /// Class table of --data (default: the format's own; folder: <data>/classes.toml).
    #[arg(long, value_name = "FILE.toml")]
    classes: Option<PathBuf>,
    /// Synthetic images to generate when --data is not given.
    #[arg(long, default_value_t = 16)]
    images: usize,
    /// Size of the generated images, WIDTHxHEIGHT.
    #[arg(long, default_value = "2048x1024", value_parser = super::parse_size)]
    size: (u32, u32),
    /// Worker counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Batches prepared ahead.
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// Square crop size.
    #[arg(long, default_value_t = 321)]
    crop: u32,
    /// Resize factor applied before cropping (0.5 = half resolution).
    #[arg(long, default_value_t = 0.5)]
    base_scale: f32,
    /// Epochs over the images per measurement.
    #[arg(long, default_value_t = 2)]
    epochs: u64,
}

pub fn exec(args: Args) -> Result<()> {
    let transform =
        TransformConfig { base_scale: args.base_scale, crop: [args.crop, args.crop], ..TransformConfig::default() };
    let root = match &args.data {
        Some(root) => root.clone(),
        None => {
            let temp = std::env::temp_dir().join(format!("adl-bench-data-{}", std::process::id()));
            let (width, height) = args.size;
            let config = SynthConfig { seed: 0, train: args.images, val: 0, width, height, task: SynthTask::Street };
            info!(images = args.images, width, height, "generating benchmark images");
            seg::data::synth_layout::generate_as(&temp, &config, args.format).context("generating benchmark images")?;
            temp
        }
    };
    let classes = args.classes.clone().map(search::run_config::ClassesSpec::File);
    let table = search::run_config::resolve_table(args.format, classes.as_ref(), &root)
        .map_err(|e| anyhow::anyhow!("--classes: {}", e.message))?;
    let dataset = seg::data::Dataset::new(args.format, root.clone(), table);
    let results =
        search::tasks::bench_data::measure(&dataset, &transform, args.batch, args.prefetch, &args.workers, args.epochs);
    if args.data.is_none() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    for result in results? {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}
