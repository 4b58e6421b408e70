//! `search check`: a tiny search-cell forward and backward on a fresh set-up.

use anyhow::Result;
use search::device::DeviceChoice;
use search::observe::env::EnvReport;
use search::smoke::{self, SmokeConfig};
use tracing::info;

use super::ConfigFlags;

#[derive(clap::Args)]
pub struct Args {
    /// TOML config (see configs/cell-smoke.toml) and overrides such as `--set blocks=3`;
    /// built-in defaults when absent.
    #[command(flatten)]
    config: ConfigFlags,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let config: SmokeConfig = args.config.load()?;
    let device = args.device.resolve()?;
    let env = EnvReport::collect();
    if !args.json {
        print!("{}", env.to_text());
    }
    info!(?device, blocks = config.blocks, channels = config.channels, "search cell forward/backward");
    let report = smoke::run(&config, device);
    anyhow::ensure!(
        report.weight_tensors_with_gradient == report.weight_tensors && report.alpha_grad_norm > 0.0,
        "gradient check failed: {} of {} weight tensors and α (norm {}) got a finite non-zero gradient",
        report.weight_tensors_with_gradient,
        report.weight_tensors,
        report.alpha_grad_norm
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"env": env, "cell": report}))?);
    } else {
        println!(
            "search cell: output {:?}, loss {:.4}, gradients on {}/{} weight tensors and on α (norm {:.3e}), {:.3} s",
            report.cell_output,
            report.loss,
            report.weight_tensors_with_gradient,
            report.weight_tensors,
            report.alpha_grad_norm,
            report.seconds
        );
        println!("decoded cell: {}", serde_json::to_string(&report.genotype)?);
    }
    Ok(())
}
