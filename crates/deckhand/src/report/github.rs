//! GitHub Actions: stages as log groups, problems as annotations, masks for secrets, step
//! outputs, and the Markdown job summary built from the run's events.

use serde_json::Value;

use super::event::{Event, Level};
use super::{Entry, Render};

/// Escapes a workflow command's message (`%`, CR and LF, as the runner expects).
pub fn escape(message: &str) -> String {
    message
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `::error::…` or `::warning::…`.
pub fn annotation(level: Level, message: &str) -> String {
    let kind = if level == Level::Error {
        "error"
    } else {
        "warning"
    };
    format!("::{kind}::{}", escape(message))
}

/// Renders stages as groups and warnings and errors as annotations.
#[derive(Debug, Default)]
pub struct Github {
    group_open: bool,
}

impl Github {
    fn close(&mut self) -> &'static str {
        if std::mem::take(&mut self.group_open) {
            "::endgroup::\n"
        } else {
            ""
        }
    }
}

impl Render for Github {
    fn event(&mut self, event: &Event) -> String {
        match event {
            Event::Stage(title) => {
                let close = self.close();
                self.group_open = true;
                format!("{close}::group::{title}")
            }
            // The verdict stands outside the groups, where it is seen without opening one.
            Event::Verdict(_) => format!("{}{}", self.close(), super::text::line(event, false)),
            // An application's own words, under the annotation of the task that stopped.
            Event::TaskLog { .. } => super::text::line(event, false),
            e if e.level() <= Level::Warning => annotation(e.level(), &e.message()),
            e => super::text::line(e, false),
        }
    }

    fn finish(&mut self) -> String {
        self.close().to_string()
    }

    fn mask(&mut self, secret: &str) -> String {
        // The runner masks it in every later line of the job, this step's or not, inside words
        // too. It takes one line at a time: the lines of a longer value are registered, and
        // announced, one by one. A value of one or two characters is not sent: the runner would
        // take it out of every word of the job's log; deckhand masks it where it stands alone.
        if secret.contains('\n') || secret.chars().count() < MIN_RUNNER_MASK {
            String::new()
        } else {
            format!("::add-mask::{secret}")
        }
    }
}

/// The shortest value sent to the runner with `::add-mask::`.
const MIN_RUNNER_MASK: usize = 3;

/// The `$GITHUB_OUTPUT` lines for a result: kebab-case names; multi-line values use the
/// delimiter form.
pub fn outputs(result: &Value) -> String {
    let mut out = String::new();
    for (name, value) in super::fields(result) {
        let name = name.replace('_', "-");
        if value.contains('\n') {
            let delimiter = format!("deckhand_{:032x}", rand::random::<u128>());
            out.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        } else {
            out.push_str(&format!("{name}={value}\n"));
        }
    }
    out
}

/// Markdown for `$GITHUB_STEP_SUMMARY`: the verdict, what went out, the timeline, and the
/// warnings and errors.
pub fn summary(command: &str, result: &Value, timeline: &[Entry]) -> String {
    let verdict = result["result"].as_str().unwrap_or("done");
    let mut md = format!("## deckhand {command}: {verdict}\n\n");
    if let Some(reason) = result["reason"].as_str().filter(|r| !r.is_empty()) {
        md.push_str(&format!("**Why:** {}\n\n", cell(reason)));
    }
    md.push_str("| | |\n|---|---|\n");
    for (name, value) in super::fields(result) {
        // Failed tasks and their logs have a section of their own below.
        if name == "result" || name == "reason" || name == "failed_tasks" || value.is_empty() {
            continue;
        }
        md.push_str(&format!(
            "| {} | `{}` |\n",
            name.replace('_', " "),
            cell(&value)
        ));
    }
    let steps: Vec<&Entry> = timeline
        .iter()
        .filter(|e| e.event.summarised() && e.event.level() == Level::Info)
        .collect();
    if !steps.is_empty() {
        md.push_str("\n### Timeline\n\n| time | |\n|---|---|\n");
        for e in steps {
            let text = match &e.event {
                Event::Stage(m) | Event::Verdict(m) => format!("**{}**", cell(m)),
                Event::ServiceEvent(m) => cell(m),
                other => cell(&other.message()),
            };
            md.push_str(&format!("| +{:.1}s | {text} |\n", e.at));
        }
    }
    let problems: Vec<&Entry> = timeline
        .iter()
        .filter(|e| e.event.level() <= Level::Warning)
        .filter(|e| !matches!(e.event, Event::TaskLog { .. }))
        .collect();
    if !problems.is_empty() {
        md.push_str("\n### Warnings and errors\n\n");
        for e in problems {
            let word = if e.event.level() == Level::Error {
                "**error:**"
            } else {
                "warning:"
            };
            md.push_str(&format!("- {word} {}\n", cell(&e.event.message())));
        }
    }
    let logs: Vec<&Event> = timeline
        .iter()
        .map(|e| &e.event)
        .filter(|e| matches!(e, Event::TaskLog { .. }))
        .collect();
    if !logs.is_empty() {
        md.push_str("\n### Failed tasks' last log lines\n\n");
        for e in logs {
            md.push_str(&log_block(e));
        }
    }
    md.push('\n');
    md
}

/// A failed task's container log as a collapsed block (its lines verbatim in a code fence
/// longer than any backtick run in them), or a line saying why there is none.
fn log_block(event: &Event) -> String {
    let (Some(heading), Event::TaskLog { lines, note, .. }) = (event.log_heading(), event) else {
        return String::new();
    };
    if lines.is_empty() {
        let heading = heading.split(": last").next().unwrap_or_default();
        return format!("- {}: {}\n", cell(heading), cell(note));
    }
    let longest = lines
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let heading = heading
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<details><summary>{heading}</summary>\n\n{fence}text\n{}\n{fence}\n\n</details>\n",
        lines.join("\n")
    )
}

/// Text made safe for one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('\n', " ")
        .replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_escape_what_the_runner_would_split_on() {
        assert_eq!(escape("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(annotation(Level::Error, "a\nb"), "::error::a%0Ab");
        assert_eq!(annotation(Level::Warning, "w"), "::warning::w");
    }

    #[test]
    fn stages_are_groups_and_problems_annotations() {
        let mut g = Github::default();
        assert_eq!(
            g.event(&Event::Stage("register".into())),
            "::group::register"
        );
        assert_eq!(g.event(&Event::Step("registered".into())), "registered");
        assert_eq!(
            g.event(&Event::TaskStopped {
                service: None,
                task: "t1".into(),
                reason: "exited".into()
            }),
            "::warning::task t1 stopped: exited"
        );
        assert_eq!(
            g.event(&Event::Stage("deploy".into())),
            "::endgroup::\n::group::deploy"
        );
        assert_eq!(
            g.event(&Event::Verdict("deployed: web is stable".into())),
            "::endgroup::\n==> deployed: web is stable"
        );
        assert_eq!(g.finish(), "", "nothing left open");
        assert_eq!(g.mask("s3cret"), "::add-mask::s3cret");
        assert_eq!(g.mask("two\nlines"), "");
        assert_eq!(g.mask("abc"), "::add-mask::abc");
        assert_eq!(
            g.mask("ab"),
            "",
            "the runner would mask it inside every word"
        );
    }

    #[test]
    fn outputs_are_kebab_case_and_multiline_safe() {
        let out = outputs(
            &json!({"task_definition_arn": "arn:x", "rolled_back": true, "reason": "a\nb"}),
        );
        assert!(out.contains("task-definition-arn=arn:x\n"), "{out}");
        assert!(out.contains("rolled-back=true\n"), "{out}");
        let (head, rest) = out.split_once("reason<<").unwrap();
        assert!(!head.contains("reason"));
        let delimiter = rest.lines().next().unwrap();
        assert!(
            rest.starts_with(&format!("{delimiter}\na\nb\n{delimiter}\n")),
            "{out}"
        );
    }

    #[test]
    fn the_summary_has_the_verdict_the_timeline_and_the_reasons() {
        let timeline = vec![
            Entry {
                at: 0.0,
                event: Event::Stage("register web".into()),
            },
            Entry {
                at: 1.5,
                event: Event::ServiceEvent("(service web) has started 1 tasks".into()),
            },
            Entry {
                at: 2.0,
                event: Event::TaskStopped {
                    service: None,
                    task: "1".into(),
                    reason: "Essential container in task exited (app exit code 3)".into(),
                },
            },
        ];
        let md = summary(
            "deploy",
            &json!({"result": "rolled-back", "image": "repo@sha256:1", "reason": "2 tasks | stopped", "sha": ""}),
            &timeline,
        );
        assert!(md.starts_with("## deckhand deploy: rolled-back\n"), "{md}");
        assert!(md.contains("**Why:** 2 tasks \\| stopped"), "{md}");
        assert!(md.contains("| image | `repo@sha256:1` |"), "{md}");
        assert!(!md.contains("| sha |"), "empty fields are left out:\n{md}");
        assert!(md.contains("| +0.0s | **register web** |"), "{md}");
        assert!(
            md.contains("| +1.5s | (service web) has started 1 tasks |"),
            "{md}"
        );
        assert!(
            md.contains("- warning: task 1 stopped: Essential container"),
            "{md}"
        );
    }
}
