//! `search run`: the bilevel search.

use anyhow::Result;
use search::run_config::SearchRunConfig;
use search::search_run::{SearchOptions, SearchOutcome};

use super::RunFlags;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunFlags,
}

pub fn exec(args: Args, threads: Option<i32>) -> Result<()> {
    let device = args.run.device.resolve()?;
    let (config, out, resume) =
        args.run.resolve(|c: &SearchRunConfig| c.name.as_str(), |c: &mut SearchRunConfig| &mut c.data.root)?;
    search::runtime::set_threads(threads, config.execution.threads)?;
    let options = SearchOptions { config, out, device, resume, stop_after_steps: args.run.stop_after_steps };
    match search::search_run::run(options)? {
        SearchOutcome::Finished(architecture) => println!("{}", architecture.to_json()),
        SearchOutcome::Stopped(checkpoint) => println!("stopped at checkpoint {}", checkpoint.display()),
    }
    Ok(())
}
