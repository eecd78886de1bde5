//! Noticing SIGINT and SIGTERM: a person's Ctrl-C, or a CI job being cancelled (GitHub sends
//! SIGINT, then SIGTERM, before it kills the job).

use futures_util::FutureExt;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Listens from the moment it is created, so a signal that arrives between two waits is
/// still seen by the next one. Once created, these signals no longer end the process.
pub struct Interrupts {
    int: Option<Signal>,
    term: Option<Signal>,
}

impl Interrupts {
    pub fn new() -> Self {
        Interrupts {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves on the next SIGINT or SIGTERM (or one that arrived since the last call).
    pub async fn recv(&mut self) {
        async fn next(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.int) => {}
            _ = next(&mut self.term) => {}
        }
    }

    /// True if a signal has arrived and not been taken yet (does not wait).
    pub fn arrived(&mut self) -> bool {
        self.recv().now_or_never().is_some()
    }
}

impl Default for Interrupts {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn interrupted() {
    Interrupts::new().recv().await
}
