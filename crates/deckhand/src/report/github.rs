//! GitHub Actions: workflow commands in the log, step outputs, and the Markdown job summary.

use serde_json::Value;

use super::timeline::Entry;

/// Escapes a workflow command's message (`%`, CR and LF, as the runner expects).
pub fn escape(message: &str) -> String {
    message
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `::error::…` or `::warning::…` for one log line.
pub fn annotation(level: tracing::Level, message: &str) -> String {
    let kind = if level == tracing::Level::ERROR {
        "error"
    } else {
        "warning"
    };
    format!("::{kind}::{}", escape(message))
}

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

/// Markdown for `$GITHUB_STEP_SUMMARY`: the verdict, what went out, the timeline, and on
/// failure the reasons.
pub fn summary(command: &str, result: &Value, timeline: &[Entry]) -> String {
    let verdict = result["result"].as_str().unwrap_or("done");
    let mut md = format!("## deckhand {command}: {verdict}\n\n");
    if let Some(reason) = result["reason"].as_str().filter(|r| !r.is_empty()) {
        md.push_str(&format!("**Why:** {}\n\n", cell(reason)));
    }
    md.push_str("| | |\n|---|---|\n");
    for (name, value) in super::fields(result) {
        if name == "result" || name == "reason" || value.is_empty() {
            continue;
        }
        md.push_str(&format!(
            "| {} | `{}` |\n",
            name.replace('_', " "),
            cell(&value)
        ));
    }
    let lines: Vec<&Entry> = timeline
        .iter()
        .filter(|e| e.level > tracing::Level::WARN)
        .collect();
    if !lines.is_empty() {
        md.push_str("\n### Timeline\n\n| time | |\n|---|---|\n");
        for e in lines {
            let text = e
                .message
                .trim_start_matches("==> ")
                .trim_start_matches("event: ");
            let text = if e.message.starts_with("==> ") {
                format!("**{}**", cell(text))
            } else {
                cell(text)
            };
            md.push_str(&format!("| +{:.1}s | {text} |\n", e.at));
        }
    }
    let problems: Vec<&Entry> = timeline
        .iter()
        .filter(|e| e.level <= tracing::Level::WARN)
        .collect();
    if !problems.is_empty() {
        md.push_str("\n### Warnings and errors\n\n");
        for e in problems {
            md.push_str(&format!("- {} {}\n", level_word(e.level), cell(&e.message)));
        }
    }
    md.push('\n');
    md
}

fn level_word(level: tracing::Level) -> &'static str {
    if level == tracing::Level::ERROR {
        "**error:**"
    } else {
        "warning:"
    }
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
    use tracing::Level;

    #[test]
    fn commands_escape_what_the_runner_would_split_on() {
        assert_eq!(escape("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(annotation(Level::ERROR, "a\nb"), "::error::a%0Ab");
        assert_eq!(annotation(Level::WARN, "w"), "::warning::w");
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
                level: Level::INFO,
                message: "==> register web".into(),
            },
            Entry {
                at: 1.5,
                level: Level::INFO,
                message: "event: (service web) has started 1 tasks".into(),
            },
            Entry {
                at: 2.0,
                level: Level::WARN,
                message: "task 1 stopped: Essential container in task exited (app exit code 3)"
                    .into(),
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
