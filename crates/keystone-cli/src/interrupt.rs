//! Ctrl-C during a transfer: the first one stops it cleanly (a download leaves no partial
//! file, an upload stores nothing), a second one ends the process at once. SIGTERM (`kill`,
//! `timeout`, a service manager stopping it) stops it the same way; the exit code is 128 + the
//! signal's number, as a shell reports a process it ended. SIGHUP keeps its default (a handler
//! would undo `nohup`, which ignores it).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Set by the signal handler itself, so it is visible as soon as the signal is delivered.
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));
/// The signal that stopped the command.
static SIGNAL: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// Catches SIGINT and SIGTERM for the rest of the process. If a handler cannot be
/// installed, that signal keeps its default of ending the process.
pub fn install() {
    for signal in [SIGINT, SIGTERM] {
        let code = 128 + signal;
        // Order matters: the exit on a second signal checks the flag before the first sets it.
        if signal_hook::flag::register_conditional_shutdown(signal, code, Arc::clone(&INTERRUPTED)).is_ok() {
            let _ =
                signal_hook::flag::register_usize(signal, Arc::clone(&SIGNAL), usize::try_from(signal).unwrap_or(0));
            let _ = signal_hook::flag::register(signal, Arc::clone(&INTERRUPTED));
        }
    }
}

/// Whether the command was stopped by a signal.
pub fn happened() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The exit code and message of a command stopped by a signal: `130, "interrupted"` for Ctrl-C.
pub fn outcome() -> (u8, &'static str) {
    let signal = SIGNAL.load(Ordering::SeqCst);
    let what = match i32::try_from(signal) {
        Ok(SIGTERM) => "terminated",
        _ => "interrupted",
    };
    let code = u8::try_from(128 + signal).ok().filter(|_| signal != 0).unwrap_or(130);
    (code, what)
}

/// An error once the command was stopped.
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
