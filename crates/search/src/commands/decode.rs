//! `search decode`: an architecture from raw α and β.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Raw parameters: a search checkpoint folder (its arch.safetensors), a safetensors file
    /// with tensors `alpha` and `beta`, or JSON {"alpha": [[8 numbers] x edges], "beta":
    /// [[[3 numbers] x 4] x L]} of raw logits.
    #[arg(long)]
    params: PathBuf,
    /// Also write the architecture JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<()> {
    let architecture = trellis::decode_file(&args.params).context("decoding --params")?;
    println!("{}", architecture.to_json());
    if let Some(out) = &args.out {
        architecture.save(out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
