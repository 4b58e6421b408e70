//! `search config show`: the resolved config a command would run with (defaults, the file and
//! its bases, `--set` overrides, validated), as TOML.

use anyhow::Result;
use clap::Subcommand;
use search::run_config::{RetrainConfig, SearchRunConfig};
use search::smoke::SmokeConfig;

use super::ConfigFlags;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print the resolved config, as TOML.
    Show {
        /// The command whose config it is: run (and bench, random), train, or check.
        #[arg(long = "for", value_enum, default_value_t = Kind::Run)]
        kind: Kind,
        #[command(flatten)]
        config: ConfigFlags,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    Run,
    Train,
    Check,
}

pub fn exec(args: Args) -> Result<()> {
    let Action::Show { kind, config } = args.action;
    let (text, table) = match kind {
        Kind::Run => {
            let c = config.load::<SearchRunConfig>()?;
            (toml::to_string(&c)?, c.data.table_source.clone())
        }
        Kind::Train => {
            let c = config.load::<RetrainConfig>()?;
            (toml::to_string(&c)?, c.data.table_source.clone())
        }
        Kind::Check => (toml::to_string(&config.load::<SmokeConfig>()?)?, None),
    };
    if let Some(table) = table {
        println!("# class table: {table}");
    }
    print!("{text}");
    Ok(())
}
