//! `search train`: retraining a decoded network (or the per-pixel baseline).

use anyhow::{Context, Result};
use search::run_config::RetrainConfig;
use search::tasks::retrain::{ModelChoice, RetrainOptions, RetrainOutcome};

use super::RunFlags;

#[derive(clap::Args)]
pub struct Args {
    /// Architecture JSON file or `paper`. Not with --resume.
    #[arg(long)]
    arch: Option<String>,
    /// Train the per-pixel baseline (a 1x1 conv) instead of a decoded network.
    #[arg(long, conflicts_with = "arch")]
    baseline: bool,
    #[command(flatten)]
    run: RunFlags,
}

pub fn exec(args: Args) -> Result<()> {
    if let Some(done) = args.run.launch_local() {
        return done;
    }
    let (config, out, resume) =
        args.run.resolve(|c: &RetrainConfig| c.name.as_str(), |c: &mut RetrainConfig| &mut c.data.root)?;
    let model = if resume {
        anyhow::ensure!(
            args.arch.is_none() && !args.baseline,
            "--resume continues a run with its own architecture: drop --arch and --baseline"
        );
        match out.join("arch.json") {
            arch if arch.is_file() => ModelChoice::Deployed(trellis::Architecture::load(&arch)?),
            _ => ModelChoice::PixelBaseline,
        }
    } else {
        match (&args.arch, args.baseline) {
            (_, true) => ModelChoice::PixelBaseline,
            (Some(spec), false) => ModelChoice::Deployed(search::arch_source::resolve(spec).context("reading --arch")?),
            (None, false) => anyhow::bail!("say what to train: --arch FILE|paper, or --baseline"),
        }
    };
    let (device, ranks) = args.run.join()?;
    let writer = ranks.rank() == 0;
    let options =
        RetrainOptions { config, model, out, device, resume, stop_after_steps: args.run.stop_after_steps, ranks };
    match search::tasks::retrain::train(options)? {
        RetrainOutcome::Finished { val_miou, weights } if writer => {
            println!("val mIoU {:.2} %, weights {}", 100.0 * val_miou, weights.display())
        }
        RetrainOutcome::Stopped(checkpoint) if writer => println!("stopped at checkpoint {}", checkpoint.display()),
        _ => {}
    }
    Ok(())
}
