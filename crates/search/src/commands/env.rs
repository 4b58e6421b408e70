//! `search env`: versions, CUDA and threads.

use anyhow::Result;
use search::observe::env::EnvReport;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let report =
        EnvReport { tensor_allocator: Some(search::runtime::tensor_allocator().to_owned()), ..EnvReport::collect() };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
