//! `search`: Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985) from the command line.
//!
//! The binary parses and dispatches (one module per command in `commands/`); the work is done
//! in the library (`search::search_run`, `search::retrain`, …) and in the `cell`, `trellis` and
//! `seg` crates.

use clap::Parser;

mod commands;

/// mimalloc for the whole process, libtorch's tensors included (see `search::runtime`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    search::runtime::tune();
    search::logging::init();
    search::interrupt::install();
    commands::Cli::parse().exec()
}
