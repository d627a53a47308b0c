//! Ctrl-C during a transfer: the first one stops it cleanly (a download leaves no partial
//! file, an upload stores nothing), a second one ends the process at once.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use signal_hook::consts::SIGINT;

/// Set by the signal handler itself, so it is visible as soon as the signal is delivered.
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Catches Ctrl-C (SIGINT) for the rest of the process. If the handler cannot be installed,
/// Ctrl-C keeps its default of ending the process.
pub fn install() {
    // Order matters: the exit on a second Ctrl-C checks the flag before the first sets it.
    if signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&INTERRUPTED)).is_ok() {
        let _ = signal_hook::flag::register(SIGINT, Arc::clone(&INTERRUPTED));
    }
}

/// Whether Ctrl-C was pressed.
pub fn happened() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error once Ctrl-C was pressed.
pub fn check() -> io::Result<()> {
    if happened() { Err(io::Error::other("interrupted")) } else { Ok(()) }
}

/// A reader that fails once Ctrl-C was pressed, so a streaming upload stops and stores nothing.
#[derive(Debug)]
pub struct Stoppable<R>(pub R);

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        check()?;
        let n = self.0.read(buf)?;
        // A read blocked when Ctrl-C came is restarted (SA_RESTART) and may then return the
        // end of input (the producer died of the same Ctrl-C): that is no complete upload.
        check()?;
        Ok(n)
    }
}
