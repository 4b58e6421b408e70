//! `search`: Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985) from the command line.
//!
//! The binary parses and dispatches (one module per command in `commands/`); the work is done
//! in the library (`search::tasks::search_run`, `search::tasks::retrain`, …) and in the `cell`, `trellis` and
//! `seg` crates.

use clap::Parser;

mod commands;

/// mimalloc for the whole process, libtorch's tensors included (see `search::runtime`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status: 0 when the command finished, 130 when it stopped on an interrupt (after saving
/// its checkpoint), 1 on any error. Errors print as their chain of causes, never with a
/// backtrace (whatever `RUST_BACKTRACE` says): they are messages for the user, not crashes.
fn main() -> std::process::ExitCode {
    search::runtime::tune();
    search::observe::logging::init();
    search::store::interrupt::install();
    match commands::Cli::parse().exec() {
        Ok(()) if search::store::interrupt::requested() => {
            std::process::ExitCode::from(search::store::interrupt::EXIT_INTERRUPTED)
        }
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.chain().any(|c| c.is::<search::store::interrupt::Interrupted>()) => {
            eprintln!("{}", message(&e));
            std::process::ExitCode::from(search::store::interrupt::EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("Error: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: library errors that show their
/// source in their own message (`{path}: {source}`) would otherwise repeat it.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain().map(|c| search::errors::without_backtrace(&c.to_string())) {
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}
