//! Ctrl-C (SIGINT) and SIGTERM: the first asks the running loop to save a checkpoint and stop
//! at the end of its current step (the process then exits with 130); a second exits at once,
//! with 130 and without a checkpoint. The immediate exit is `_exit`: it skips the process's exit
//! handlers and static destructors, which would otherwise run while libtorch's kernels are still
//! working on the main thread (`exit` crashed there in 5 of 8 tries).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process).
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted twice: exiting without a checkpoint");
            // SAFETY: `_exit` ends the process at once; nothing of ours runs after it.
            unsafe { libc::_exit(130) };
        }
        eprintln!("interrupt: saving a checkpoint after this step (press Ctrl-C again to exit now)");
    });
    if let Err(e) = result {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// The exit status of a process that stopped because it was interrupted (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
