//! Logging: `tracing` to stderr (under the progress bar, never through it) and, once a run
//! folder exists, to its `log.txt` as well; one indicatif progress bar at a time.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);
static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// This process's rank in a distributed run, from the launcher's `RANK` (None outside one); read
/// once, since every line written to the terminal asks.
pub fn rank() -> Option<usize> {
    static RANK: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *RANK.get_or_init(|| std::env::var("RANK").ok()?.parse().ok())
}

/// Installs the global subscriber (level from `RUST_LOG`, default `info`). In a distributed run
/// rank 0 prints to the terminal as a single process does; the other ranks print only warnings
/// and errors, each line prefixed `[rank N]`, and keep their full log in the run folder
/// (`log.rank<N>.txt`, see [`crate::store::rundir::RunDir::follower`]).
pub fn init() {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = match rank() {
        Some(r) if r > 0 => EnvFilter::new("warn"),
        _ => filter(),
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(console_is_terminal())
        .with_writer(StderrWriter)
        .with_filter(terminal);
    // Its own field formatter, so that the file never gets the terminal's colour codes (fields
    // formatted once are cached per formatter type).
    let plain_fields = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(writer, "{value:?}")
        } else {
            write!(writer, "{field}={value:?}")
        }
    })
    .delimited(" ");
    let file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .fmt_fields(plain_fields)
        .with_writer(FileWriter)
        .with_filter(filter());
    tracing_subscriber::registry().with(stderr).with(file).init();
}

/// From now on, log lines also go to `path` (appended).
pub fn log_to_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    *LOG_FILE.lock().expect("log file lock") = Some(file);
    Ok(())
}

/// Shows a progress bar of `len` steps with `message`, rate and ETA; replaces any other.
pub fn progress(len: u64, message: impl Into<String>) -> ProgressBar {
    let bar = if console_is_terminal() { ProgressBar::new(len) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.into());
    *BAR.lock().expect("bar lock") = Some(bar.clone());
    bar
}

/// Removes the progress bar.
pub fn finish_progress() {
    if let Some(bar) = BAR.lock().expect("bar lock").take() {
        bar.finish_and_clear();
    }
}

fn console_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

struct StderrWriter;

struct StderrLine;

impl Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let prefixed;
        let out = match rank() {
            Some(r) if r > 0 => {
                prefixed = [format!("[rank {r}] ").as_bytes(), buf].concat();
                &prefixed[..]
            }
            _ => buf,
        };
        let bar = BAR.lock().expect("bar lock").clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(out))?,
            None => std::io::stderr().write_all(out)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = StderrLine;

    fn make_writer(&'a self) -> Self::Writer {
        StderrLine
    }
}

struct FileWriter;

struct FileLine;

impl Write for FileLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = LOG_FILE.lock().expect("log file lock").as_mut() {
            file.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match LOG_FILE.lock().expect("log file lock").as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = FileLine;

    fn make_writer(&'a self) -> Self::Writer {
        FileLine
    }
}
