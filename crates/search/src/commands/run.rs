//! `search run`: the bilevel search.

use anyhow::Result;
use search::run_config::SearchRunConfig;
use search::store::session::RunRequest;
use search::tasks::search_run::{SearchOptions, SearchOutcome};

use super::RunFlags;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunFlags,
}

pub fn exec(args: Args, threads: Option<i32>) -> Result<()> {
    if let Some(done) = args.run.launch_local() {
        return done;
    }
    let (device, ranks) = args.run.join()?;
    let writer = ranks.rank() == 0;
    let (config, out, resume) =
        args.run.resolve(&ranks, |c: &SearchRunConfig| c.name.as_str(), |c: &mut SearchRunConfig| &mut c.data.root)?;
    search::runtime::set_threads(threads, config.execution.threads)?;
    let run = RunRequest { out, device, resume, stop_after_steps: args.run.stop_after_steps, ranks };
    let options = SearchOptions { config, run };
    match search::tasks::search_run::run(options)? {
        SearchOutcome::Finished(architecture) if writer => println!("{}", architecture.to_json()),
        SearchOutcome::Stopped(checkpoint) if writer => println!("stopped at checkpoint {}", checkpoint.display()),
        _ => {}
    }
    Ok(())
}
