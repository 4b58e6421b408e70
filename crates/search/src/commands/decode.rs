//! `search decode`: an architecture from raw α and β.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Raw parameters: a search run folder (its latest intact checkpoint), a search checkpoint
    /// folder (its arch.safetensors), a safetensors file
    /// with tensors `alpha` and `beta`, or JSON {"alpha": [[8 numbers] x edges], "beta":
    /// [[[3 numbers] x 4] x L]} of raw logits (and `edges`, one per edge, from a search with
    /// edge normalisation).
    #[arg(long)]
    params: PathBuf,
    /// Also write the architecture JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `--params` as a file or checkpoint folder: a search run folder stands for its latest intact
/// checkpoint.
pub fn params_path(params: &Path) -> Result<PathBuf> {
    if params.join("checkpoints").is_dir() {
        search::store::checkpoint::Checkpoints::new(params.join("checkpoints"), 1)?
            .latest_verified()?
            .with_context(|| format!("--params {}: the run has no checkpoint yet", params.display()))
    } else {
        Ok(params.to_owned())
    }
}

pub fn exec(args: Args) -> Result<()> {
    let params = params_path(&args.params)?;
    if let Some(out) = &args.out {
        seg::overlap::refuse_overlap(std::slice::from_ref(&params), std::slice::from_ref(out))
            .map_err(anyhow::Error::msg)?;
    }
    let architecture = trellis::decode_file(&params).context("decoding --params")?;
    println!("{}", architecture.to_json());
    if let Some(out) = &args.out {
        architecture.save(out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
