//! Ctrl-C: the first press asks the running loop to save a checkpoint and stop at the end of
//! its current step; a second press exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process).
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted twice: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("interrupt: saving a checkpoint after this step (press Ctrl-C again to exit now)");
    });
    if let Err(e) = result {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
