//! Log lines on stderr: plain for CI logs, colour only on a terminal, secrets masked, and in
//! GitHub or GitLab the stages as collapsible groups and problems as annotations.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::redact::RedactingStderr;
use crate::report::{self, github, gitlab, timeline, Mode};

/// Sets up logging for `verbose` (-v count) or `quiet`. Only deckhand's own events are shown
/// above warnings: libraries' debug output can carry request bodies.
pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::WARN,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = Targets::new()
        .with_default(LevelFilter::WARN.min(level))
        .with_target("deckhand", level);
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    timeline::start();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| RedactingStderr)
        .event_format(Plain { ansi });
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

/// The open GitHub group or GitLab section, if any.
static OPEN: Mutex<Option<String>> = Mutex::new(None);
static SECTIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// One log line as this run's mode writes it (without the newline). Stage lines (`==> …`)
/// open a group or section in CI; warnings and errors become annotations on GitHub.
pub fn line(level: Level, message: &str) -> String {
    line_with(level, message, false)
}

fn line_with(level: Level, message: &str, ansi: bool) -> String {
    let mode = report::mode();
    if let Some(title) = message.strip_prefix("==> ") {
        match mode {
            Mode::Github => return format!("{}::group::{title}", close()),
            Mode::Gitlab => {
                let n = SECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let name = format!("deckhand_{n}");
                let start = gitlab::section_start(&name, message, unix());
                let previous = close();
                *OPEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
                return format!("{previous}{start}");
            }
            Mode::Plain => {}
        }
    }
    if mode == Mode::Github && level <= Level::WARN {
        return github::annotation(level, message);
    }
    let (prefix, colour) = match level {
        Level::ERROR => ("error: ", "\x1b[31m"),
        Level::WARN => ("warning: ", "\x1b[33m"),
        Level::INFO => ("", ""),
        Level::DEBUG => ("debug: ", "\x1b[2m"),
        Level::TRACE => ("trace: ", "\x1b[2m"),
    };
    if ansi && !colour.is_empty() {
        format!("{colour}{prefix}\x1b[0m{message}")
    } else {
        format!("{prefix}{message}")
    }
}

/// Ends the open group or section: the text to write before what comes next ("" if none).
fn close() -> String {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    match report::mode() {
        Mode::Github => {
            // GitHub groups have no names: track only that one is open.
            let was_open = open.replace("group".into()).is_some();
            if was_open {
                "::endgroup::\n".into()
            } else {
                String::new()
            }
        }
        Mode::Gitlab => match open.take() {
            Some(name) => format!("{}\n", gitlab::section_end(&name, unix())),
            None => String::new(),
        },
        Mode::Plain => String::new(),
    }
}

/// Closes the last group or section, so the final verdict stands outside them.
pub fn finish() {
    let text = match report::mode() {
        Mode::Github => {
            let was_open = OPEN.lock().unwrap_or_else(|e| e.into_inner()).take();
            if was_open.is_some() {
                "::endgroup::\n".to_string()
            } else {
                String::new()
            }
        }
        _ => close(),
    };
    if !text.is_empty() {
        eprint!("{text}");
    }
}

fn unix() -> u64 {
    crate::clock::now() as u64
}

/// Formats each event with [`line`], and remembers it for the CI summary.
struct Plain {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let mut message = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut message), event)?;
        let message = crate::redact::redact(&message);
        timeline::record(level, &message);
        writeln!(writer, "{}", line_with(level, &message, self.ansi))
    }
}
