//! GitLab CI: each stage a collapsible log section, and the dotenv report for
//! `artifacts:reports:dotenv`.

use serde_json::Value;

use super::event::Event;
use super::Render;

/// The line that opens section `name` (letters, digits, `_`, `.` and `-`) titled `title`.
pub fn section_start(name: &str, title: &str, unix: u64) -> String {
    format!("\x1b[0Ksection_start:{unix}:{name}\r\x1b[0K{title}")
}

/// The line that closes section `name`.
pub fn section_end(name: &str, unix: u64) -> String {
    format!("\x1b[0Ksection_end:{unix}:{name}\r\x1b[0K")
}

/// `DECKHAND_<FIELD>=value` lines; values on one line, as dotenv reports require.
pub fn dotenv(result: &Value) -> String {
    super::fields(result)
        .into_iter()
        // Log lines are no variable's value: they are in the log and the JSON report.
        .filter(|(k, _)| k != "failed_tasks")
        .map(|(k, v)| {
            format!(
                "DECKHAND_{}={}\n",
                k.to_ascii_uppercase(),
                v.replace(['\r', '\n'], " ")
            )
        })
        .collect()
}

/// Renders stages as sections; every other event as a plain line.
pub struct Gitlab {
    pub ansi: bool,
    open: Option<String>,
    sections: u32,
    /// Seconds since the epoch, for the section markers.
    clock: fn() -> u64,
}

impl Gitlab {
    pub fn new(ansi: bool, clock: fn() -> u64) -> Self {
        Gitlab {
            ansi,
            open: None,
            sections: 0,
            clock,
        }
    }

    fn close(&mut self) -> String {
        match self.open.take() {
            Some(name) => format!("{}\n", section_end(&name, (self.clock)())),
            None => String::new(),
        }
    }
}

impl Render for Gitlab {
    fn event(&mut self, event: &Event) -> String {
        match event {
            Event::Stage(title) => {
                self.sections += 1;
                let name = format!("deckhand_{}", self.sections);
                let previous = self.close();
                let start = section_start(&name, &format!("==> {title}"), (self.clock)());
                self.open = Some(name);
                format!("{previous}{start}")
            }
            // The verdict stands outside the sections.
            Event::Verdict(_) => {
                let previous = self.close();
                format!("{previous}{}", super::text::line(event, self.ansi))
            }
            _ => super::text::line(event, self.ansi),
        }
    }

    fn finish(&mut self) -> String {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_dotenv_have_gitlabs_shapes() {
        assert_eq!(
            section_start("deckhand_1", "register web", 7),
            "\x1b[0Ksection_start:7:deckhand_1\r\x1b[0Kregister web"
        );
        assert_eq!(
            section_end("deckhand_1", 8),
            "\x1b[0Ksection_end:8:deckhand_1\r\x1b[0K"
        );
        let env = dotenv(
            &serde_json::json!({"result": "deployed", "reason": "a\nb", "rolled_back": false}),
        );
        assert!(env.contains("DECKHAND_RESULT=deployed\n"), "{env}");
        assert!(env.contains("DECKHAND_REASON=a b\n"), "{env}");
        assert!(env.contains("DECKHAND_ROLLED_BACK=false\n"), "{env}");
    }

    #[test]
    fn each_stage_closes_the_one_before() {
        let mut g = Gitlab::new(false, || 5);
        assert_eq!(
            g.event(&Event::Stage("register".into())),
            "\x1b[0Ksection_start:5:deckhand_1\r\x1b[0K==> register"
        );
        assert_eq!(g.event(&Event::Step("x".into())), "x");
        assert_eq!(
            g.event(&Event::Stage("deploy".into())),
            "\x1b[0Ksection_end:5:deckhand_1\r\x1b[0K\n\x1b[0Ksection_start:5:deckhand_2\r\x1b[0K==> deploy"
        );
        assert_eq!(g.finish(), "\x1b[0Ksection_end:5:deckhand_2\r\x1b[0K\n");
        assert_eq!(g.finish(), "", "closed once");
    }
}
