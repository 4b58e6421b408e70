//! `search cost-table`: measures the latency of every component of the deployable network
//! (each op at each level and stride, the cells' preprocessing, stem, ASPP, decoder) at the
//! deployment size on a device, and writes the table a cost-aware search reuses
//! (docs/cost-aware.md).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use search::device::DeviceChoice;
use tch::Device;
use trellis::cost::Measurement;
use trellis::Timing;

#[derive(clap::Args)]
pub struct Args {
    /// Where to measure.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    #[command(flatten)]
    deployment: super::DeploymentFlags,
    /// Blocks per cell B.
    #[arg(long, default_value_t = 5)]
    blocks: usize,
    /// Untimed runs per component before the timed ones.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs per component; the table holds their median.
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Write the table here (JSON); without it, print it.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<()> {
    let deployment = args.deployment.resolve(None)?;
    anyhow::ensure!((1..=16).contains(&args.blocks), "--blocks {}: must be in 1..=16", args.blocks);
    anyhow::ensure!(args.repeats >= 1, "--repeats must be at least 1");
    let device = args.device.resolve()?;
    let env = search::observe::env::EnvReport::collect();
    let device_name = match device {
        Device::Cuda(_) => {
            search::observe::gpu::device_name(device).unwrap_or_else(|| "CUDA device (NVML unavailable)".into())
        }
        _ => format!("CPU, {} threads", tch::get_num_threads()),
    };
    let versions = HashMap::from([
        ("tch".to_string(), env.tch_version.clone()),
        ("libtorch".to_string(), env.libtorch_version.clone()),
        ("search".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]);
    let measurement = Measurement {
        device: format!("{device:?}").to_lowercase(),
        device_name,
        versions,
        warmup: args.warmup,
        repeats: args.repeats,
        threads: tch::get_num_threads(),
        measured: search::store::rundir::now_rfc3339(),
    };
    let spec = deployment.spec(args.blocks);
    let timing = Timing { device, warmup: args.warmup, repeats: args.repeats };
    let started = std::time::Instant::now();
    let table = trellis::build_table(&spec, Some((&timing, measurement)));
    tracing::info!(components = table.entries.len(), seconds = started.elapsed().as_secs_f64(), "cost table measured");
    match &args.out {
        Some(out) => table.save(out).with_context(|| format!("writing {}", out.display()))?,
        None => println!("{}", serde_json::to_string_pretty(&table)?),
    }
    Ok(())
}
