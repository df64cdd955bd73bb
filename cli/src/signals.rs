//! Graceful stop: the first SIGINT, SIGTERM or SIGHUP asks the training loop to save its state and
//! stop after the current step; a second one ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Whether a stop was asked for (read by the second signal's immediate exit).
static ASKED: AtomicBool = AtomicBool::new(false);

/// The number of the first signal received, or 0.
static WHICH: AtomicUsize = AtomicUsize::new(0);

/// A signal that asks the run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// The conventional name (`SIGINT`).
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "SIGHUP",
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "a signal",
        }
    }

    /// The shell's exit status of a process ended by this signal: 128 + its number (130 for
    /// SIGINT, 143 for SIGTERM, 129 for SIGHUP).
    pub fn exit_code(self) -> i32 {
        128 + self.0
    }
}

/// Installs the handlers (once; later calls do nothing). Where handlers cannot be installed the
/// signals keep their default action, which ends the process.
pub fn install() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                // Registration order is the order the actions run in: the exit only fires when an
                // earlier signal already set the flag.
                let _ = flag::register_conditional_shutdown(sig, 128 + sig, &ASKED);
                let _ = flag::register_usize(sig, &WHICH, sig as usize);
                let _ = flag::register(sig, &ASKED);
            }
        });
    }
}

/// The signal that asked the run to stop, if one did.
pub fn pending() -> Option<Signal> {
    if !ASKED.load(Ordering::SeqCst) {
        return None;
    }
    let which = WHICH.load(Ordering::SeqCst);
    Some(Signal(i32::try_from(which).unwrap_or(2)))
}
