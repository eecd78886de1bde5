//! What happened when, for a CI summary: stages, service events, warnings and errors, as the
//! log showed them (already masked).

use std::sync::Mutex;
use std::time::Instant;

/// One remembered log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seconds since the run started.
    pub at: f64,
    pub level: tracing::Level,
    pub message: String,
}

/// The most lines kept; a long watch keeps its newest.
const KEEP: usize = 200;

static START: Mutex<Option<Instant>> = Mutex::new(None);
static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// True for the log lines a summary needs.
pub fn worth_keeping(level: tracing::Level, message: &str) -> bool {
    level <= tracing::Level::WARN || message.starts_with("==> ") || message.starts_with("event: ")
}

/// Remembers one log line, if it is worth keeping.
pub fn record(level: tracing::Level, message: &str) {
    if !worth_keeping(level, message) {
        return;
    }
    let at = {
        let mut start = START.lock().unwrap_or_else(|e| e.into_inner());
        start
            .get_or_insert_with(Instant::now)
            .elapsed()
            .as_secs_f64()
    };
    let mut entries = ENTRIES.lock().unwrap_or_else(|e| e.into_inner());
    if entries.len() == KEEP {
        entries.remove(0);
    }
    entries.push(Entry {
        at,
        level,
        message: message.to_string(),
    });
}

/// Starts the clock (at the start of a run).
pub fn start() {
    START
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Instant::now);
}

/// Everything remembered so far.
pub fn entries() -> Vec<Entry> {
    ENTRIES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
