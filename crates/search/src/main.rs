//! `search`: Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985) from the command line.
//!
//! For now: `search env` (what libtorch this build uses and sees) and `search demo` (set-up
//! check: the environment, then a tiny search-cell forward/backward and decode). The search,
//! decode, retrain, eval and predict commands arrive with the later issues.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use search::config;
use search::device::DeviceChoice;
use search::env::EnvReport;
use search::smoke::{self, SmokeConfig};
use tracing::info;

#[derive(Parser)]
#[command(name = "search", version, about = "Auto-DeepLab: hierarchical architecture search for semantic segmentation")]
struct Cli {
    /// Torch intra-op threads (default: libtorch's choice, one per core).
    #[arg(long, global = true)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the tch and libtorch versions, CUDA/cuDNN availability, device count and threads.
    Env {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a fresh set-up: print the environment, then run a tiny search cell forward and
    /// backward and decode its α.
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// TOML config (see configs/cell-smoke.toml); built-in defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. `--set blocks=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        anyhow::ensure!(threads >= 1, "--threads {threads}: needs at least one thread");
        tch::set_num_threads(threads);
    }
    match cli.command {
        Command::Env { json } => {
            let report = EnvReport::collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
        }
        Command::Demo(args) => demo(args)?,
    }
    Ok(())
}

fn demo(args: DemoArgs) -> Result<()> {
    let config: SmokeConfig = config::load(args.config.as_deref(), &args.overrides).context("loading the demo config")?;
    anyhow::ensure!(config.blocks >= 1, "config key `blocks`: a cell needs at least one block, got 0");
    anyhow::ensure!(
        config.batch >= 1 && config.size >= 1 && config.channels >= 1 && config.classes >= 2,
        "config keys `batch`, `size`, `channels` must be >= 1 and `classes` >= 2, got {config:?}"
    );
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
