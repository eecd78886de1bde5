//! How a run reports: typed [`Event`]s go to one [`Reporter`], passed explicitly to the code
//! that does the work; renderers at the edge dress them for a terminal, GitHub or GitLab, and
//! the result object (the JSON renderer) goes to stdout and every result file, on every exit.

pub mod event;
pub mod github;
pub mod gitlab;
pub mod json;
pub mod text;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

pub use event::{Event, Level};

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

/// How the result is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
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

/// A renderer: turns events into log text for one kind of reader.
pub trait Render: Send {
    /// The text for one event: one or more lines, without the final newline.
    fn event(&mut self, event: &Event) -> String;
    /// What closes anything still open at the end of the run ("" if nothing), with its newline.
    fn finish(&mut self) -> String;
    /// A line that tells the log's reader to hide `secret` ("" where there is no such thing).
    fn mask(&mut self, _secret: &str) -> String {
        String::new()
    }
}

/// One remembered event, for the job summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seconds since the run started.
    pub at: f64,
    pub event: Event,
}

/// The most events the summary keeps; a long watch keeps its newest.
const KEEP: usize = 200;

/// How a [`Reporter`] is set up.
pub struct Options {
    pub mode: Mode,
    pub output: OutputFormat,
    /// Warnings and errors only.
    pub quiet: bool,
    /// Colour (a terminal that wants it).
    pub ansi: bool,
    pub sinks: Sinks,
}

struct Inner {
    render: Box<dyn Render>,
    log: Box<dyn Write + Send>,
    timeline: Vec<Entry>,
    published: bool,
    /// Fields a `failed` result carries besides `result` and `reason` ([`Reporter::add_to_failure`]).
    failure: serde_json::Map<String, Value>,
    /// How many registered secrets the log's reader has been told to mask.
    announced: usize,
}

/// Where every event and the result of a run go. Secrets registered with [`crate::redact`]
/// are masked in everything it writes.
pub struct Reporter {
    mode: Mode,
    output: OutputFormat,
    quiet: bool,
    sinks: Sinks,
    started: Instant,
    inner: Mutex<Inner>,
}

impl Reporter {
    /// A reporter writing its log to stderr. Result files left by an earlier run are removed
    /// now, so none can be mistaken for this run's.
    pub fn new(options: Options) -> Self {
        Self::with_log(options, Box::new(std::io::stderr()))
    }

    /// A reporter writing its log to `log` (tests read it back).
    pub fn with_log(options: Options, log: Box<dyn Write + Send>) -> Self {
        for stale in [&options.sinks.report, &options.sinks.dotenv]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(stale);
        }
        let render: Box<dyn Render> = match options.mode {
            Mode::Plain => Box::new(text::Text { ansi: options.ansi }),
            Mode::Github => Box::new(github::Github::default()),
            Mode::Gitlab => Box::new(gitlab::Gitlab::new(options.ansi, unix_now)),
        };
        Reporter {
            mode: options.mode,
            output: options.output,
            quiet: options.quiet,
            sinks: options.sinks,
            started: Instant::now(),
            inner: Mutex::new(Inner {
                render,
                log,
                timeline: Vec::new(),
                published: false,
                failure: serde_json::Map::new(),
                announced: 0,
            }),
        }
    }

    /// A reporter for tests and library use: plain text to stderr, no files.
    pub fn plain() -> Self {
        Self::new(Options {
            mode: Mode::Plain,
            output: OutputFormat::Text,
            quiet: false,
            ansi: false,
            sinks: Sinks::default(),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells one event.
    pub fn emit(&self, event: Event) {
        // Masked first: renderers escape text (`%0A`, `\|`), which would hide a secret from
        // the masking of what they wrote.
        let event = event.map_text(crate::redact::redact_log);
        let mut inner = self.lock();
        if event.summarised() {
            self.remember(&mut inner, event.clone());
        }
        if self.quiet && event.level() == Level::Info {
            // Not shown, but the log's reader still learns the secrets to mask at once.
            self.write_log(&mut inner, "");
            return;
        }
        let text = inner.render.event(&event);
        self.write_log(&mut inner, &text);
    }

    /// Keeps `event` for the job summary without showing it: for what the log already showed
    /// in another form (a pre-deploy task's lines, relayed as they arrived).
    pub fn summarise(&self, event: Event) {
        let event = event.map_text(crate::redact::redact_log);
        let mut inner = self.lock();
        self.remember(&mut inner, event);
    }

    /// Adds `event` to the summary's timeline, which keeps the newest [`KEEP`].
    fn remember(&self, inner: &mut Inner, event: Event) {
        if inner.timeline.len() == KEEP {
            inner.timeline.remove(0);
        }
        let at = self.started.elapsed().as_secs_f64();
        inner.timeline.push(Entry { at, event });
    }

    /// A field the `failed` result of a run that stops before changing anything carries
    /// besides `result` and `reason` (the failed pre-deploy task's `failed_tasks`).
    pub fn add_to_failure(&self, key: &str, value: Value) {
        self.lock().failure.insert(key.to_string(), value);
    }

    /// Writes `text` (and a newline) to the log, after any masks not yet announced.
    fn write_log(&self, inner: &mut Inner, text: &str) {
        let Inner {
            render,
            log,
            announced,
            ..
        } = inner;
        let mut out = String::new();
        let (new, seen) = crate::redact::registered_since(*announced);
        *announced = seen;
        for secret in new {
            let line = render.mask(&secret);
            if !line.is_empty() {
                out.push_str(&line);
                out.push('\n');
            }
        }
        if !text.is_empty() {
            out.push_str(&crate::redact::redact_log(text));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        let _ = log.write_all(out.as_bytes());
        let _ = log.flush();
    }

    pub fn stage(&self, title: impl Into<String>) {
        self.emit(Event::Stage(title.into()));
    }

    pub fn step(&self, message: impl Into<String>) {
        self.emit(Event::Step(message.into()));
    }

    pub fn output(&self, line: impl Into<String>) {
        self.emit(Event::Output(line.into()));
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Event::Warning(message.into()));
    }

    pub fn error(&self, message: impl Into<String>) {
        self.emit(Event::Error(message.into()));
    }

    pub fn verdict(&self, message: impl Into<String>) {
        self.emit(Event::Verdict(message.into()));
    }

    /// The run's result: `text` on stdout for people, or `value` as one JSON object, and the
    /// object to every result file. Once per run; a later call changes nothing.
    pub fn result(&self, value: &impl Serialize, text: &str) {
        let value = serde_json::to_value(value).expect("plain data serializes");
        if !self.claim_result() {
            return;
        }
        self.publish(&value);
        match self.output {
            // For people: masked as log text.
            OutputFormat::Text => crate::redact::println_stdout(text),
            // For scripts: identifiers whole, free text masked.
            OutputFormat::Json => crate::redact::println_stdout_as_is(&json::line(
                &crate::redact::redact_result(&value),
            )),
        }
    }

    /// Ends a run that failed with `error` (exit `code`): the error in the log, outside any
    /// group; and when no result was given yet (a failure before anything changed, a usage
    /// error), a `failed` result with the reason in every result file (stdout stays empty: a
    /// script piping it sees no result, and the exit code says why).
    pub fn fail(&self, message: &str) {
        self.finish();
        self.error(message);
        self.record_failure(message);
    }

    /// A `failed` result with `message` in every result file, nothing on stdout or in the
    /// log, unless a result was given already.
    pub fn record_failure(&self, message: &str) {
        if !self.claim_result() {
            return;
        }
        let mut result = serde_json::Map::new();
        result.insert("result".into(), "failed".into());
        result.insert("reason".into(), message.into());
        result.extend(self.lock().failure.clone());
        self.publish(&Value::Object(result));
    }

    /// True for the first caller only: a run has one result.
    fn claim_result(&self) -> bool {
        !std::mem::replace(&mut self.lock().published, true)
    }

    /// Closes whatever group or section is open.
    pub fn finish(&self) {
        let mut inner = self.lock();
        let text = inner.render.finish();
        self.write_log(&mut inner, text.trim_end_matches('\n'));
    }

    /// Writes the result object to every sink. A sink that cannot be written is a warning; the
    /// result is still on stdout, so the run's outcome does not change. Files for machines
    /// mask the result's free text only, so identifiers reach scripts whole; the job summary,
    /// for people, is masked throughout.
    fn publish(&self, result: &Value) {
        let sinks = &self.sinks;
        let masked = crate::redact::redact_result(result);
        let mut writes: Vec<(&PathBuf, String, bool)> = Vec::new();
        if let Some(p) = &sinks.report {
            writes.push((p, json::file(&masked), false));
        }
        if let Some(p) = &sinks.dotenv {
            writes.push((p, gitlab::dotenv(&masked), false));
        }
        if self.mode == Mode::Github {
            if let Some(p) = &sinks.github_output {
                writes.push((p, github::outputs(&masked), true));
            }
            if let Some(p) = &sinks.github_summary {
                let timeline = self.lock().timeline.clone();
                let summary = github::summary(&sinks.command, result, &timeline);
                writes.push((p, crate::redact::redact_log(&summary), true));
            }
        }
        for (path, text, append) in writes {
            if let Err(e) = write(path, &text, append) {
                self.warn(format!("cannot write {}: {e}", path.display()));
            }
        }
    }
}

fn unix_now() -> u64 {
    crate::clock::now() as u64
}

fn write(path: &PathBuf, text: &str, append: bool) -> std::io::Result<()> {
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
    use std::sync::Arc;

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

    /// A log buffer the test keeps a handle on.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn reporter(mode: Mode, quiet: bool, sinks: Sinks) -> (Reporter, Buffer) {
        let buffer = Buffer::default();
        let options = Options {
            mode,
            output: OutputFormat::Json,
            quiet,
            ansi: false,
            sinks,
        };
        (
            Reporter::with_log(options, Box::new(buffer.clone())),
            buffer,
        )
    }

    /// Every result file, in `dir`: the sinks and (report, dotenv, outputs, summary).
    fn every_sink(dir: &tempfile::TempDir) -> (Sinks, [PathBuf; 4]) {
        let paths = ["r.json", "d.env", "out", "summary.md"].map(|f| dir.path().join(f));
        let sinks = Sinks {
            report: Some(paths[0].clone()),
            dotenv: Some(paths[1].clone()),
            github_output: Some(paths[2].clone()),
            github_summary: Some(paths[3].clone()),
            command: "deploy".into(),
        };
        (sinks, paths)
    }

    #[test]
    fn a_failure_before_any_result_writes_every_file_and_replaces_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (sinks, [report, dotenv, output, summary]) = every_sink(&dir);
        std::fs::write(&report, r#"{"result":"deployed"}"#).unwrap();
        std::fs::write(&dotenv, "DECKHAND_RESULT=deployed\n").unwrap();
        let (r, log) = reporter(Mode::Github, false, sinks);
        assert!(!report.exists(), "a stale report is gone at the start");
        r.stage("service nope in demo");
        r.fail("the service nope does not exist in cluster demo");
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(written["result"], "failed");
        assert!(written["reason"].as_str().unwrap().contains("nope"));
        let env = std::fs::read_to_string(&dotenv).unwrap();
        assert!(env.contains("DECKHAND_RESULT=failed\n"), "{env}");
        let out = std::fs::read_to_string(&output).unwrap();
        assert!(
            out.contains("result=failed\n") && out.contains("reason=the service nope"),
            "{out}"
        );
        let md = std::fs::read_to_string(&summary).unwrap();
        assert!(md.contains("## deckhand deploy: failed"), "{md}");
        assert!(md.contains("**error:** the service nope"), "{md}");
        // Other tests register secrets too: their masks may come first.
        let log: String = log
            .text()
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            log,
            "::group::service nope in demo\n::endgroup::\n::error::the service nope does not exist in cluster demo\n"
        );
        // A result given before the failure is the one that stays.
        let (r, _) = reporter(
            Mode::Plain,
            false,
            Sinks {
                report: Some(report.clone()),
                ..Sinks::default()
            },
        );
        r.result(&serde_json::json!({"result": "rolled-back"}), "rolled-back");
        r.fail("the deploy failed and was rolled back");
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(written["result"], "rolled-back");
    }

    #[test]
    fn a_failure_carries_the_fields_added_and_summarised_events_stay_out_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (sinks, [report, _, _, summary]) = every_sink(&dir);
        let (r, log) = reporter(Mode::Github, false, sinks);
        r.output("migrate app | duplicate column");
        r.summarise(Event::TaskLog {
            service: Some("pre-deploy migrate".into()),
            task: "abc".into(),
            container: "app".into(),
            lines: vec!["duplicate column".into()],
            note: String::new(),
        });
        r.add_to_failure("failed_tasks", serde_json::json!([{"task": "abc"}]));
        r.fail("the pre-deploy task migrate failed");
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"result": "failed", "reason": "the pre-deploy task migrate failed",
                "failed_tasks": [{"task": "abc"}]})
        );
        let md = std::fs::read_to_string(&summary).unwrap();
        assert!(
            md.contains("<details><summary>pre-deploy migrate: task abc, container app: last 1 log line</summary>"),
            "{md}"
        );
        let shown = log.text();
        assert_eq!(
            shown.matches("duplicate column").count(),
            1,
            "relayed once, not again from the summary's copy:\n{shown}"
        );
    }

    #[test]
    fn a_secret_is_masked_before_a_renderer_escapes_it() {
        let secret = "p%ss|w\nrd-secret";
        crate::redact::register(secret);
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("summary.md");
        let sinks = Sinks {
            github_summary: Some(summary.clone()),
            command: "deploy".into(),
            ..Sinks::default()
        };
        let (r, log) = reporter(Mode::Github, false, sinks);
        r.warn(format!("bad value {secret} here"));
        r.stage(format!("stage {secret}"));
        r.result(&serde_json::json!({"result": "failed"}), "failed");
        // The masks the runner is told are the one place a secret is written.
        let log: String = log
            .text()
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .map(|l| format!("{l}\n"))
            .collect();
        let md = std::fs::read_to_string(&summary).unwrap();
        for (what, text) in [("log", &log), ("summary", &md)] {
            for part in ["p%ss", "p%25ss", "rd-secret", "w%0Ard"] {
                assert!(!text.contains(part), "{what} shows {part:?}:\n{text}");
            }
        }
        assert!(log.contains("::warning::bad value *** here"), "{log}");
    }

    #[test]
    fn quiet_keeps_problems_and_secrets_are_masked_and_announced() {
        crate::redact::register("hunter2-secret-value");
        let (r, log) = reporter(Mode::Github, true, Sinks::default());
        r.step("token hunter2-secret-value");
        assert!(
            log.text().contains("::add-mask::hunter2-secret-value\n"),
            "announced at once, though the step is not shown: {}",
            log.text()
        );
        r.warn("saw hunter2-secret-value");
        let log = log.text();
        assert!(log.contains("::warning::saw ***\n"), "{log}");
        assert!(!log.contains("token"), "quiet drops steps: {log}");
    }

    #[test]
    fn result_files_keep_identifiers_and_mask_free_text() {
        // A registered value that equals the image's host and tag.
        crate::redact::register("imagehost.example");
        crate::redact::register("rel-2024-tag");
        let dir = tempfile::tempdir().unwrap();
        let (sinks, [report, dotenv, output, summary]) = every_sink(&dir);
        let (r, _) = reporter(Mode::Github, false, sinks);
        let image = "imagehost.example/web:rel-2024-tag";
        r.result(
            &serde_json::json!({
                "result": "failed",
                "image": image,
                "reason": format!("cannot pull {image}: DB_PASS=hunter2 rejected"),
            }),
            "failed",
        );
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(written["image"], image);
        assert_eq!(written["reason"], "cannot pull ***/web:***: DB_PASS=***");
        let env = std::fs::read_to_string(&dotenv).unwrap();
        assert!(env.contains(&format!("DECKHAND_IMAGE={image}\n")), "{env}");
        assert!(
            env.contains("DECKHAND_REASON=cannot pull ***/web:***"),
            "{env}"
        );
        let out = std::fs::read_to_string(&output).unwrap();
        assert!(out.contains(&format!("image={image}\n")), "{out}");
        let md = std::fs::read_to_string(&summary).unwrap();
        assert!(
            !md.contains("imagehost.example") && !md.contains("hunter2"),
            "the summary, for people, is masked throughout:\n{md}"
        );
    }
}
