//! `search summary`: parameters and multiply-adds of a deployable network.

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Architecture JSON file, or `paper` for the architecture of the paper (Fig. 3).
    #[arg(long)]
    arch: String,
    #[command(flatten)]
    deployment: super::DeploymentFlags,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    args.deployment.validate()?;
    let architecture = search::arch_source::resolve(&args.arch).context("reading --arch")?;
    let config = trellis::DecodedNetworkConfig {
        architecture,
        filter_multiplier: args.deployment.filter_multiplier,
        classes: args.deployment.classes,
        stem_channels: args.deployment.stem(),
    };
    let d = &args.deployment;
    let summary = search::observe::summary::summarize_config(&config, d.height(), d.width());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}
