//! `search summary`: parameters and multiply-adds of a deployable network.

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Architecture JSON file, or `paper` for the architecture of the paper (Fig. 3).
    #[arg(long)]
    arch: String,
    /// Filter multiplier F (20 / 32 / 48 for Auto-DeepLab-S / M / L).
    #[arg(long, default_value_t = 20)]
    filter_multiplier: i64,
    /// Input height for the multiply-adds.
    #[arg(long, default_value_t = 1024)]
    height: i64,
    /// Input width for the multiply-adds.
    #[arg(long, default_value_t = 2048)]
    width: i64,
    /// Output classes.
    #[arg(long, default_value_t = 19)]
    classes: i64,
    /// Channels of the three stem convolutions (the retraining config's `model.stem_channels`).
    #[arg(long, value_parser = super::parse_stem, default_value = "64,64,128")]
    stem_channels: [i64; 3],
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    anyhow::ensure!(args.filter_multiplier >= 1, "--filter-multiplier {}: must be at least 1", args.filter_multiplier);
    anyhow::ensure!(args.height >= 1 && args.width >= 1, "--height and --width must be at least 1");
    anyhow::ensure!(args.classes >= 1, "--classes {}: must be at least 1", args.classes);
    let architecture = search::arch_source::resolve(&args.arch).context("reading --arch")?;
    let config = trellis::DecodedNetworkConfig {
        architecture,
        filter_multiplier: args.filter_multiplier,
        classes: args.classes,
        stem_channels: args.stem_channels,
    };
    let summary = search::observe::summary::summarize_config(&config, args.height, args.width);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}
