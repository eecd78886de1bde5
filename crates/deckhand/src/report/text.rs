//! Plain log lines, for a terminal or a CI log without special dressing: the form every other
//! renderer falls back to.

use super::event::Event;
use super::Render;

/// One event as a plain line; colour only when `ansi` (a terminal that wants it).
pub fn line(event: &Event, ansi: bool) -> String {
    let message = event.message();
    let (prefix, colour) = match event {
        Event::Stage(_) | Event::Verdict(_) => ("==> ", "\x1b[1m"),
        Event::Error(_) => ("error: ", "\x1b[31m"),
        Event::Warning(_) | Event::TaskStopped { .. } => ("warning: ", "\x1b[33m"),
        _ => ("", ""),
    };
    if ansi && !colour.is_empty() {
        format!("{colour}{prefix}\x1b[0m{message}")
    } else {
        format!("{prefix}{message}")
    }
}

/// The plain renderer.
#[derive(Debug, Default)]
pub struct Text {
    pub ansi: bool,
}

impl Render for Text {
    fn event(&mut self, event: &Event) -> String {
        line(event, self.ansi)
    }

    fn finish(&mut self) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_the_log_always_read() {
        let cases = [
            (Event::Stage("register".into()), "==> register"),
            (
                Event::Step("web: registered web:2".into()),
                "web: registered web:2",
            ),
            (
                Event::ServiceEvent("has started 1 tasks".into()),
                "event: has started 1 tasks",
            ),
            (Event::Warning("slow".into()), "warning: slow"),
            (
                Event::TaskOutput {
                    label: "web".into(),
                    container: "app".into(),
                    line: "hello".into(),
                },
                "web app | hello",
            ),
            (Event::Error("no".into()), "error: no"),
            (
                Event::TaskStopped {
                    service: Some("web".into()),
                    task: "abc".into(),
                    reason: "exited".into(),
                },
                "warning: web: task abc stopped: exited",
            ),
            (
                Event::Verdict("deployed: web is stable on web:2".into()),
                "==> deployed: web is stable on web:2",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(line(&event, false), want);
        }
        assert_eq!(
            line(&Event::Error("no".into()), true),
            "\x1b[31merror: \x1b[0mno"
        );
    }
}
