//! `search bench`: search-step time and memory on random data, from a search config.

use anyhow::Result;
use search::bench::BenchConfig;
use search::device::DeviceChoice;
use search::run_config::SearchRunConfig;

use super::ConfigFlags;

#[derive(clap::Args)]
pub struct Args {
    /// A search config (default: the paper's search settings) and overrides, e.g.
    /// `--set execution.recompute=never` or `--set model.partial_channels=4`.
    #[command(flatten)]
    config: ConfigFlags,
    /// Square crop size (default: the config's `data.transform.crop`).
    #[arg(long)]
    crop: Option<u32>,
    /// Images per batch (default: the config's `data.loader.batch`).
    #[arg(long)]
    batch: Option<usize>,
    /// Measured steps.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Unmeasured steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

pub fn exec(args: Args, threads: Option<i32>) -> Result<()> {
    let mut overrides = args.config.overrides.clone();
    if let Some(crop) = args.crop {
        overrides.push(format!("data.transform.crop=[{crop}, {crop}]"));
    }
    if let Some(batch) = args.batch {
        overrides.push(format!("data.loader.batch={batch}"));
    }
    let flags = ConfigFlags { config: args.config.config.clone(), overrides };
    let config: SearchRunConfig = flags.load()?;
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    search::runtime::set_threads(threads, config.execution.threads)?;
    let device = args.device.resolve()?;
    let bench = BenchConfig::of(&config, args.steps, args.warmup);
    println!("{}", serde_json::to_string(&search::bench::run(&bench, device))?);
    Ok(())
}
