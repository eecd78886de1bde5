//! Keeps secrets (registry passwords, tokens) out of every byte deckhand writes.
//!
//! Secrets are registered the moment they are obtained; every writer deckhand uses for logs
//! and results goes through [`redact`], so a secret that slips into an error message from a
//! dependency is still masked.

use std::io::{self, Write};
use std::sync::RwLock;

/// Every secret of the process. Global on purpose: a secret can surface in any error text,
/// from any library, at any depth, and must be masked wherever it is written.
static SECRETS: RwLock<Registry> = RwLock::new(Registry {
    longest_first: Vec::new(),
    in_order: Vec::new(),
});

struct Registry {
    /// Longest first, so a secret that contains another is masked whole.
    longest_first: Vec<String>,
    /// The order they were registered in, for [`registered_since`].
    in_order: Vec<String>,
}

/// The text that replaces a secret in output.
pub const MASK: &str = "***";

/// Registers a secret so that it never appears in output. Short values are ignored: masking
/// every "a" would destroy the log and protect nothing.
pub fn register(secret: &str) {
    if secret.len() < 6 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.in_order.iter().any(|s| s == secret) {
        secrets.in_order.push(secret.to_string());
        secrets.longest_first.push(secret.to_string());
        secrets
            .longest_first
            .sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// The secrets registered after the first `seen`, and how many there are now: a log that
/// can tell its reader to mask values (GitHub's `::add-mask::`) announces each once.
pub fn registered_since(seen: usize) -> (Vec<String>, usize) {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let order = &secrets.in_order;
    (order.iter().skip(seen).cloned().collect(), order.len())
}

/// Returns `text` with every registered secret replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.longest_first.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// A writer that masks registered secrets before passing bytes on to stderr.
///
/// Each `write` call is redacted on its own; the log formatter writes one whole event per
/// call, so a secret is never split across calls.
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = redact(&text);
        let stderr = io::stderr();
        let mut lock = stderr.lock();
        lock.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// A secret value: registered for masking when made, shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Self(value)
    }

    /// The value itself, for the one place that must send it (the registry login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// Prints a line on stdout (results for scripts), redacted.
pub fn println_stdout(line: &str) {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    // A closed stdout (e.g. `| head -1`) is not worth a panic.
    let _ = writeln!(lock, "{}", redact(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_secrets_longest_first() {
        register("s3cr3t-value");
        register("s3cr3t-value-longer");
        let out = redact("a s3cr3t-value-longer and s3cr3t-value");
        assert_eq!(out, "a *** and ***");
    }

    #[test]
    fn ignores_too_short_values() {
        register("abc");
        assert_eq!(redact("abc"), "abc");
    }
}
