//! `search bench`: search-step time and memory on random data, from a search config.

use anyhow::Result;
use search::device::DeviceChoice;
use search::run_config::SearchRunConfig;
use search::tasks::bench::BenchConfig;

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
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Run the steps on this many local ranks (data-parallel, `--batch` per rank) and report
    /// the time spent averaging gradients; rank 0 prints the report.
    #[arg(long)]
    nproc_per_node: Option<usize>,
}

pub fn exec(args: Args, threads: Option<i32>) -> Result<()> {
    if let Some(n) = args.nproc_per_node.filter(|&n| n > 1) {
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        return search::dist::launch::run_local(n, &search::dist::launch::arguments_without_nproc(&all));
    }
    let mut overrides = args.config.overrides.clone();
    if let Some(crop) = args.crop {
        overrides.push(format!("data.transform.crop={crop}x{crop}"));
    }
    if let Some(batch) = args.batch {
        overrides.push(format!("data.loader.batch={batch}"));
    }
    let flags = ConfigFlags { config: args.config.config.clone(), overrides };
    let config: SearchRunConfig = flags.load()?;
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    search::runtime::set_threads(threads, config.execution.threads)?;
    let (device, ranks) = search::dist::join_from_env(args.device.resolve()?, std::time::Duration::from_secs(300))?;
    let bench = BenchConfig::of(&config, args.steps, args.warmup);
    let report = search::tasks::bench::run(&bench, device, &ranks)?;
    if ranks.rank() == 0 {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
