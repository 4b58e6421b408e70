//! `search summary`: parameters and multiply-adds of a deployable network.

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Architecture JSON file, `paper` for the architecture of the paper (Fig. 3), or a run folder
    /// (a retraining's `arch.json`, a search's `arch/final.json`; then its F, classes and image
    /// size are the defaults).
    #[arg(long)]
    arch: String,
    #[command(flatten)]
    deployment: super::DeploymentFlags,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let d = args.deployment.resolve(Some(std::path::Path::new(&args.arch)))?;
    let architecture = search::arch_source::resolve(&args.arch).context("reading --arch")?;
    let config = trellis::DecodedNetworkConfig {
        architecture,
        filter_multiplier: d.filter_multiplier,
        classes: d.classes,
        stem_channels: d.stem(),
    };
    let summary = search::observe::summary::summarize_config(&config, d.height(), d.width());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}
