//! `search decode`: an architecture from raw α and β.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Raw parameters: a search run folder (its latest intact checkpoint), a search checkpoint
    /// folder (its arch.safetensors), a safetensors file
    /// with tensors `alpha` and `beta`, or JSON {"alpha": [[8 numbers] x edges], "beta":
    /// [[[3 numbers] x 4] x L]} of raw logits.
    #[arg(long)]
    params: PathBuf,
    /// Also write the architecture JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<()> {
    let params = if args.params.join("checkpoints").is_dir() {
        search::checkpoint::Checkpoints::new(args.params.join("checkpoints"), 1)?
            .latest_verified()?
            .with_context(|| format!("--params {}: the run has no checkpoint yet", args.params.display()))?
    } else {
        args.params.clone()
    };
    let architecture = trellis::decode_file(&params).context("decoding --params")?;
    println!("{}", architecture.to_json());
    if let Some(out) = &args.out {
        architecture.save(out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
