//! Where a run reports besides stdout and stderr: CI annotations, step outputs and summaries,
//! report files. The mode is chosen once per run (by flag, or from the CI's own variables).

pub mod github;
pub mod gitlab;
pub mod timeline;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// How the log is dressed for the CI that runs deckhand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    /// `::group::`, `::error::`, `::add-mask::`, `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`.
    Github,
    /// Collapsible sections.
    Gitlab,
}

/// What the command line asked for (`--ci`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CiFlag {
    /// GitHub Actions when GITHUB_ACTIONS=true, GitLab CI when GITLAB_CI=true, else plain.
    Auto,
    Github,
    Gitlab,
    /// No CI dressing.
    None,
}

/// The mode for `flag` in an environment read through `env` (pure).
pub fn detect(flag: CiFlag, env: impl Fn(&str) -> Option<String>) -> Mode {
    let set = |name: &str| env(name).is_some_and(|v| v == "true");
    match flag {
        CiFlag::Github => Mode::Github,
        CiFlag::Gitlab => Mode::Gitlab,
        CiFlag::None => Mode::Plain,
        CiFlag::Auto if set("GITHUB_ACTIONS") => Mode::Github,
        CiFlag::Auto if set("GITLAB_CI") => Mode::Gitlab,
        CiFlag::Auto => Mode::Plain,
    }
}

/// Files the result also goes to.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// `--report`: the result object as JSON.
    pub report: Option<PathBuf>,
    /// `--dotenv`: the result as `DECKHAND_*=value` lines (GitLab's `artifacts:reports:dotenv`).
    pub dotenv: Option<PathBuf>,
    /// `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`, in GitHub mode.
    pub github_output: Option<PathBuf>,
    pub github_summary: Option<PathBuf>,
    /// The command, for the summary's title.
    pub command: String,
}

static MODE: OnceLock<Mode> = OnceLock::new();
static SINKS: OnceLock<Sinks> = OnceLock::new();

/// Fixes the mode and sinks for this run (the first call wins).
pub fn init(mode: Mode, sinks: Sinks) {
    let _ = MODE.set(mode);
    let _ = SINKS.set(sinks);
}

/// The mode of this run (plain until [`init`]).
pub fn mode() -> Mode {
    MODE.get().copied().unwrap_or(Mode::Plain)
}

/// Writes the result object to every sink. A sink that cannot be written is reported on
/// stderr; the result is still on stdout, so the run's outcome does not change.
pub fn publish(result: &Value) {
    let Some(sinks) = SINKS.get() else { return };
    let redacted = |text: String| crate::redact::redact(&text);
    let mut writes: Vec<(&PathBuf, String, bool)> = Vec::new();
    if let Some(p) = &sinks.report {
        let json = serde_json::to_string_pretty(result).expect("plain data serializes");
        writes.push((p, redacted(json + "\n"), false));
    }
    if let Some(p) = &sinks.dotenv {
        writes.push((p, redacted(gitlab::dotenv(result)), false));
    }
    if mode() == Mode::Github {
        if let Some(p) = &sinks.github_output {
            writes.push((p, redacted(github::outputs(result)), true));
        }
        if let Some(p) = &sinks.github_summary {
            let summary = github::summary(&sinks.command, result, &timeline::entries());
            writes.push((p, redacted(summary), true));
        }
    }
    for (path, text, append) in writes {
        if let Err(e) = write(path, &text, append) {
            eprintln!(
                "{}",
                crate::logging::line(
                    tracing::Level::WARN,
                    &format!("cannot write {}: {e}", path.display())
                )
            );
        }
    }
}

fn write(path: &PathBuf, text: &str, append: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// The result's top-level fields as (name, text) pairs: strings as they are, everything else
/// as JSON.
pub fn fields(result: &Value) -> Vec<(String, String)> {
    result
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_flag_then_the_ci_variables() {
        let github = |k: &str| (k == "GITHUB_ACTIONS").then(|| "true".to_string());
        let gitlab = |k: &str| (k == "GITLAB_CI").then(|| "true".to_string());
        let none = |_: &str| None;
        assert_eq!(detect(CiFlag::Auto, github), Mode::Github);
        assert_eq!(detect(CiFlag::Auto, gitlab), Mode::Gitlab);
        assert_eq!(detect(CiFlag::Auto, none), Mode::Plain);
        assert_eq!(detect(CiFlag::None, github), Mode::Plain);
        assert_eq!(detect(CiFlag::Gitlab, github), Mode::Gitlab);
        assert_eq!(detect(CiFlag::Github, none), Mode::Github);
        assert_eq!(
            detect(CiFlag::Auto, |k| (k == "GITHUB_ACTIONS")
                .then(|| "false".into())),
            Mode::Plain
        );
    }

    #[test]
    fn fields_are_text() {
        let v = serde_json::json!({"result": "deployed", "rolled_back": false, "n": 3, "x": null});
        let f = fields(&v);
        assert!(f.contains(&("rolled_back".into(), "false".into())));
        assert!(f.contains(&("n".into(), "3".into())));
        assert!(f.contains(&("x".into(), String::new())));
    }
}
