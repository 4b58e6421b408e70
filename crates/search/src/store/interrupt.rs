//! Ctrl-C (SIGINT) and SIGTERM. What the first one does depends on what the process is doing:
//!
//! - **inside a training loop** ([`Graceful`], held by the loop): it asks the loop to save a
//!   checkpoint and stop at the end of its current step (the process then exits with 130); an
//!   evaluation in progress stops at its next batch (the checkpoint is already written and the
//!   evaluation is redone on resume);
//! - **anywhere else** (evaluation, prediction, export, decoding, drawing): nothing is saved, so
//!   the process stops at once ("stopped at once"): a file being written is finished (or, after 5 s, removed) and no
//!   new one is started (every write goes through [`seg::atomic`], which keeps count), child processes die with it (they are started with a
//!   parent-death signal), and it exits with 130 saying that nothing was saved.
//!
//! A second signal always exits at once. The immediate exit is `_exit`: it skips the process's
//! exit handlers and static destructors, which would otherwise run while libtorch's kernels are
//! still working on the main thread (`exit` crashed there in 5 of 8 tries). The handler runs on
//! its own thread (ctrlc), so removing files there is safe.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// How many [`Graceful`] guards are alive: a training loop that saves before it stops.
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);

/// Ends the process now with 130, after removing the files being written.
fn exit_now(message: &str) -> ! {
    // Writes in progress finish (or are removed after 5 s); none starts.
    let removed = seg::atomic::stop_writes(std::time::Duration::from_secs(5));
    eprintln!(
        "{message}{}",
        if removed > 0 { format!(" ({removed} unfinished file(s) removed)") } else { String::new() }
    );
    // SAFETY: `_exit` ends the process at once; nothing of ours runs after it.
    unsafe { libc::_exit(130) };
}

/// Installs the handler (once per process).
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            exit_now("interrupted twice: exiting now, without a checkpoint");
        }
        if GRACEFUL.load(Ordering::SeqCst) == 0 {
            exit_now("interrupted: stopped at once; every file written so far is complete");
        }
        eprintln!("interrupt: saving a checkpoint after this step (press Ctrl-C again to exit now)");
    });
    if let Err(e) = result {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// While alive, an interrupt asks the holder (a training loop, which checks [`requested`] after
/// every step) to save a checkpoint and stop, instead of ending the process at once.
pub struct Graceful(());

impl Graceful {
    pub fn hold() -> Graceful {
        GRACEFUL.fetch_add(1, Ordering::SeqCst);
        Graceful(())
    }
}

impl Drop for Graceful {
    fn drop(&mut self) {
        GRACEFUL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The exit status of a process that stopped because it was interrupted (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// The error of work stopped by an interrupt before it finished (an evaluation inside a
/// training loop); the process exits with 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted before the evaluation finished; the checkpoint is saved and `--resume` evaluates again")]
pub struct Interrupted;

/// `Err(Interrupted)` once a stop was requested: for loops inside a training loop's evaluation.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

/// Makes a child process die with this one (SIGKILL when the parent exits for any reason, even
/// SIGKILL): for ranks and the exporter's Python step.
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then we were re-parented already.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
