//! Ctrl-C (SIGINT) and the SIGTERM nextest sends at a timeout, turned into
//! an ordinary failure: the setup phase or test body that is running ends
//! with [`Interrupted`], so the error paths that collect artifacts and
//! record a failed setup run as for any other failure, and the process
//! then exits instead of dying half way. A second signal exits at once.

use std::sync::OnceLock;

use tokio::sync::watch;

/// The signal that interrupted the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGINT`, as Ctrl-C sends.
    Interrupt,
    /// `SIGTERM`, as nextest sends at a timeout.
    Terminate,
}

impl Signal {
    /// `SIGINT`, `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code of a process that ends because of it (128 + number).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Work that a signal ended.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by {}", .0.name())]
pub struct Interrupted(pub Signal);

fn channel() -> &'static watch::Sender<Option<Signal>> {
    static CHANNEL: OnceLock<watch::Sender<Option<Signal>>> = OnceLock::new();
    CHANNEL.get_or_init(|| watch::channel(None).0)
}

/// Starts listening for SIGINT and SIGTERM on the current tokio runtime.
/// Returns false (and changes nothing) where signals cannot be handled.
pub(crate) fn listen() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return false;
    };
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                _ = interrupt.recv() => Signal::Interrupt,
                _ = terminate.recv() => Signal::Terminate,
            };
            if let Some(first) = *channel().borrow() {
                eprintln!(
                    "kindling: {} again after {}: exiting now",
                    received.name(),
                    first.name()
                );
                std::process::exit(i32::from(received.exit_code()));
            }
            eprintln!(
                "kindling: {}: ending the running setup or test, collecting artifacts (again to exit at once)",
                received.name()
            );
            channel().send_replace(Some(received));
        }
    });
    true
}

/// The signal received so far, if any.
pub fn received() -> Option<Signal> {
    *channel().borrow()
}

/// Resolves once a signal has been received (at once if one was).
pub async fn signalled() -> Signal {
    let mut receiver = channel().subscribe();
    loop {
        if let Some(signal) = *receiver.borrow_and_update() {
            return signal;
        }
        if receiver.changed().await.is_err() {
            // The sender lives in a static: this never happens.
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `work` unless a signal ends it first.
pub async fn or_interrupted<T>(work: impl Future<Output = T>) -> Result<T, Interrupted> {
    tokio::select! {
        biased;
        signal = signalled() => Err(Interrupted(signal)),
        done = work => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_name_themselves_and_their_exit_codes() {
        assert_eq!(
            Interrupted(Signal::Terminate).to_string(),
            "interrupted by SIGTERM"
        );
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
    }
}
