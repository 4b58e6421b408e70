//! `search demo`: the whole chain on synthetic data.

use std::path::PathBuf;

use anyhow::Result;
use search::device::DeviceChoice;
use search::env::EnvReport;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (default: runs/demo-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a key of the built-in search config (configs/demo-search.toml).
    #[arg(long = "set-search", value_name = "KEY=VALUE")]
    search_overrides: Vec<String>,
    /// Override a key of the built-in retraining config (configs/demo-retrain.toml).
    #[arg(long = "set-retrain", value_name = "KEY=VALUE")]
    retrain_overrides: Vec<String>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("demo-{now}"))
    });
    let start = std::time::Instant::now();
    print!("{}", EnvReport::collect().to_text());
    let report = search::demo::run(&out, device, &args.search_overrides, &args.retrain_overrides)?;
    let total = start.elapsed().as_secs_f64();
    println!("decoded cell: {}", serde_json::to_string(&report.architecture.cell)?);
    println!("decoded path: {:?}", report.architecture.path.levels());
    for (stage, seconds) in &report.seconds {
        println!("{stage:>9}: {seconds:6.1} s");
    }
    println!(
        "searched network, retrained:  val mIoU {:5.2} %  (from its label-id PNGs: {:5.2} %)",
        100.0 * report.searched_miou,
        100.0 * report.predicted_files_miou
    );
    println!("per-pixel baseline (1x1 conv): val mIoU {:5.2} %", 100.0 * report.baseline_miou);
    println!(
        "margin {:+.2} points; {total:.0} s in all; everything is in {}",
        100.0 * (report.searched_miou - report.baseline_miou),
        out.display()
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
