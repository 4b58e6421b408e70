//! `search train`: retraining a decoded network (or the per-pixel baseline).

use anyhow::{Context, Result};
use search::run_config::RetrainConfig;
use search::store::session::RunRequest;
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
    let (device, ranks) = args.run.join()?;
    let (config, out, resume) =
        args.run.resolve(&ranks, |c: &RetrainConfig| c.name.as_str(), |c: &mut RetrainConfig| &mut c.data.root)?;
    let model = if resume {
        anyhow::ensure!(
            args.arch.is_none() && !args.baseline,
            "--resume continues a run with its own architecture: drop --arch and --baseline"
        );
        // Rank 0 reads the run's arch.json (none: the per-pixel baseline) for every rank.
        let path = out.join("arch.json");
        let read = match path.is_file() {
            true => std::fs::read(&path).with_context(|| format!("reading {}", path.display())),
            false => Ok(Vec::new()),
        };
        match ranks.from_rank0(read)? {
            bytes if bytes.is_empty() => ModelChoice::PixelBaseline,
            bytes => ModelChoice::Deployed(trellis::Architecture::from_json(
                &String::from_utf8(bytes)?,
                &path.display().to_string(),
            )?),
        }
    } else {
        match (&args.arch, args.baseline) {
            (_, true) => ModelChoice::PixelBaseline,
            (Some(spec), false) => ModelChoice::Deployed(search::arch_source::resolve(spec).context("reading --arch")?),
            (None, false) => anyhow::bail!("say what to train: --arch FILE|paper, or --baseline"),
        }
    };
    let writer = ranks.rank() == 0;
    let options = RetrainOptions {
        config,
        model,
        run: RunRequest { out, device, resume, stop_after_steps: args.run.stop_after_steps, ranks },
        holdout: None,
    };
    match search::tasks::retrain::train(options)? {
        RetrainOutcome::Finished { val_miou, weights } if writer => {
            println!("val mIoU {:.2} %, weights {}", 100.0 * val_miou, weights.display())
        }
        RetrainOutcome::Stopped(checkpoint) if writer => println!("stopped at checkpoint {}", checkpoint.display()),
        _ => {}
    }
    Ok(())
}
