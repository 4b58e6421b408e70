//! `search random`: architectures drawn uniformly from a search space (the baseline a search
//! must beat; retrain each with `search train --arch` and the same config).

use std::path::PathBuf;

use anyhow::Result;
use search::run_config::SearchRunConfig;

#[derive(clap::Args)]
pub struct Args {
    /// The search config whose space to draw from (its `model.blocks` and `model.layers`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a key of that config, e.g. `--set model.layers=4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// How many architectures.
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// Seed: the same seed draws the same architectures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (gets random_000.json, …).
    #[arg(long)]
    out: PathBuf,
}

pub fn exec(args: Args) -> Result<()> {
    let flags = super::ConfigFlags { config: args.config.clone(), overrides: args.overrides.clone() };
    let config: SearchRunConfig = flags.load()?;
    anyhow::ensure!(args.n >= 1, "--n must be at least 1");
    search::limits::check_draws("--n", args.n)?;
    let architectures = search::tasks::random::draws(&config.model, args.seed).take(args.n);
    search::tasks::random::write(&args.out, architectures, |path| println!("{}", path.display()))?;
    Ok(())
}
