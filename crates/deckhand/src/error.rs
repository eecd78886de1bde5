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
    /// What kind of failure it was, where a caller acts on it (the AWS edge sets it).
    pub kind: Kind,
}

/// Kinds of failure a caller treats differently from the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Other,
    /// AWS answered "slow down" (ThrottlingException and its kin), after the SDK's retries.
    Throttled,
    /// Another try may pass: a 5xx, an answer that could not be read.
    Transient,
    /// The endpoint could not be reached or did not answer in time; another try may pass.
    Unreachable,
}

impl Error {
    /// Failed before anything changed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Failed,
            message: message.into(),
            kind: Kind::Other,
        }
    }

    /// A call that failed in a way that may pass on another try (exit 1 if nothing changed).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::failed(message).with_kind(Kind::Transient)
    }

    /// Whether another try may pass (throttling included): what a rollback retries until its
    /// deadline.
    pub fn is_transient(&self) -> bool {
        self.kind != Kind::Other
    }

    /// The same error, marked as of `kind`.
    pub fn with_kind(self, kind: Kind) -> Self {
        Self { kind, ..self }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Usage,
            message: message.into(),
            kind: Kind::Other,
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
