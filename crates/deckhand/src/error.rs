//! Error type carried to `main`, and its mapping to the exit codes in the CLI contract.

use std::fmt;

/// The exit codes promised to users and CI scripts (see README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Deployed and stable, or the asked-for step succeeded.
    Success = 0,
    /// Failed before the service was changed: nothing changed.
    Failed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// The new revision failed; the service is back on the previous revision.
    RolledBack = 3,
    /// Failed and the service is not confirmed healthy: needs a person.
    NeedsPerson = 4,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure with a message meant for a person, and the exit code it maps to.
///
/// The message says what went wrong and, where we know, what to do about it.
#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    pub message: String,
    /// A call that may succeed if made again (throttling, a 5xx, a timeout, a dropped
    /// connection): what a rollback retries until its deadline.
    pub transient: bool,
}

impl Error {
    /// Failed before anything changed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Failed,
            message: message.into(),
            transient: false,
        }
    }

    /// A call that failed in a way that may pass on another try (exit 1 if nothing changed).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            transient: true,
            ..Self::failed(message)
        }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Usage,
            message: message.into(),
            transient: false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
