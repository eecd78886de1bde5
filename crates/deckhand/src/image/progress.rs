//! BuildKit's progress (vertexes, their logs and warnings) turned into the lines people know
//! from `docker build`: each step's name, its output, `CACHED` or its duration, and for a
//! failed step its error and last output lines.

use std::collections::{HashMap, VecDeque};

use bollard_buildkit_proto::google::protobuf::Timestamp;
use bollard_buildkit_proto::moby::buildkit::v1::StatusResponse;

/// Output lines kept per step, for the error when it fails.
pub const TAIL_LINES: usize = 10;

/// The longest unfinished output line kept before it is shown as it is.
const PARTIAL_LIMIT: usize = 16 * 1024;

/// What the log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// A line of the build's progress.
    Line(String),
    /// A Dockerfile warning from the frontend (a lint, a deprecated form).
    Warning(String),
}

/// A failed step, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub step: String,
    pub error: String,
    pub tail: Vec<String>,
}

#[derive(Debug, Default)]
struct Step {
    name: String,
    announced: bool,
    finished: bool,
    started: Option<f64>,
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

/// The build's steps as BuildKit reports them, folded message by message.
#[derive(Debug, Default)]
pub struct Progress {
    steps: HashMap<String, Step>,
    /// Show BuildKit's internal steps (loading the definition, the context) too.
    verbose: bool,
    failed: Option<Failed>,
    /// Steps that ran, and steps that came from the cache.
    pub ran: usize,
    pub cached: usize,
}

fn seconds(t: &Timestamp) -> f64 {
    t.seconds as f64 + f64::from(t.nanos) / 1e9
}

/// BuildKit's own bookkeeping steps, hidden unless verbose or failed.
fn internal(name: &str) -> bool {
    name.starts_with("[internal]") || name.starts_with("[auth]")
}

impl Progress {
    /// A build's progress, with BuildKit's internal steps shown when `verbose`.
    pub fn new(verbose: bool) -> Self {
        Progress {
            verbose,
            ..Default::default()
        }
    }

    /// Folds one status message in; returns what to show for it.
    pub fn feed(&mut self, status: StatusResponse) -> Vec<Shown> {
        let mut shown = Vec::new();
        // Starts, then the output in this message, then what ended: a step's last lines come
        // before its `done`.
        for v in &status.vertexes {
            let step = self.steps.entry(v.digest.clone()).or_default();
            if step.name.is_empty() {
                step.name = v.name.clone();
            }
            let quiet = internal(&step.name) && !self.verbose;
            if let Some(t) = &v.started {
                step.started.get_or_insert(seconds(t));
                if !step.announced && !v.cached && !quiet {
                    step.announced = true;
                    shown.push(Shown::Line(step.name.clone()));
                }
            }
        }
        for log in status.logs {
            let Some(step) = self.steps.get_mut(&log.vertex) else {
                continue;
            };
            let quiet = internal(&step.name) && !self.verbose;
            step.partial.extend_from_slice(&log.msg);
            while let Some(i) = step.partial.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = step.partial.drain(..=i).collect();
                push_line(step, &raw, &mut shown, quiet);
            }
            // A progress bar redrawn with carriage returns and no newline: only its last
            // drawing matters, and a line is never kept past a bound.
            if let Some(cr) = step.partial.iter().rposition(|b| *b == b'\r') {
                step.partial.drain(..=cr);
            }
            if step.partial.len() > PARTIAL_LIMIT {
                flush_partial(step, &mut shown, quiet);
            }
        }
        for v in status.vertexes {
            let Some(step) = self.steps.get_mut(&v.digest) else {
                continue;
            };
            if step.finished {
                continue;
            }
            let quiet = internal(&step.name) && !self.verbose;
            if !v.error.is_empty() {
                step.finished = true;
                flush_partial(step, &mut shown, quiet);
                shown.push(Shown::Line(format!("{} ... ERROR: {}", step.name, v.error)));
                // The first failure is the story; later ones are cancellations it caused.
                if self.failed.is_none() && !v.error.contains("context canceled") {
                    self.failed = Some(Failed {
                        step: step.name.clone(),
                        error: v.error.clone(),
                        tail: step.tail.iter().cloned().collect(),
                    });
                }
            } else if v.cached && v.completed.is_some() {
                step.finished = true;
                if !quiet {
                    self.cached += 1;
                    shown.push(Shown::Line(format!("{} ... CACHED", step.name)));
                }
            } else if let Some(done) = &v.completed {
                step.finished = true;
                flush_partial(step, &mut shown, quiet);
                if !quiet {
                    self.ran += 1;
                    let took = step.started.map(|s| (seconds(done) - s).max(0.0));
                    shown.push(Shown::Line(match took {
                        Some(s) => format!("{} ... done in {s:.1}s", step.name),
                        None => format!("{} ... done", step.name),
                    }));
                }
            }
        }
        for w in status.warnings {
            let text = String::from_utf8_lossy(&w.short).trim().to_string();
            if !text.is_empty() {
                shown.push(Shown::Warning(format!("Dockerfile: {text}")));
            }
        }
        shown
    }

    /// The step that failed first, with its last lines.
    pub fn failed(&self) -> Option<&Failed> {
        self.failed.as_ref()
    }
}

/// One output line of a step: shown indented, kept in the step's tail. A carriage return
/// (a progress bar redrawn in place) keeps only what was drawn last.
fn push_line(step: &mut Step, raw: &[u8], shown: &mut Vec<Shown>, quiet: bool) {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    let text = text
        .rsplit('\r')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string();
    if step.tail.len() == TAIL_LINES {
        step.tail.pop_front();
    }
    step.tail.push_back(text.clone());
    if !quiet {
        shown.push(Shown::Line(format!("  {text}")));
    }
}

fn flush_partial(step: &mut Step, shown: &mut Vec<Shown>, quiet: bool) {
    if !step.partial.is_empty() {
        let raw = std::mem::take(&mut step.partial);
        push_line(step, &raw, shown, quiet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_buildkit_proto::moby::buildkit::v1::{Vertex, VertexLog, VertexWarning};

    fn at(s: i64, ms: i32) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: s,
            nanos: ms * 1_000_000,
        })
    }

    fn vertex(d: &str, name: &str) -> Vertex {
        Vertex {
            digest: d.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn log(d: &str, msg: &str) -> VertexLog {
        VertexLog {
            vertex: d.into(),
            msg: msg.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn lines(shown: Vec<Shown>) -> Vec<String> {
        shown
            .into_iter()
            .map(|s| match s {
                Shown::Line(l) => l,
                Shown::Warning(w) => format!("warning: {w}"),
            })
            .collect()
    }

    #[test]
    fn a_step_is_named_when_it_starts_its_output_follows_and_its_duration_ends_it() {
        let mut p = Progress::default();
        let run = "[build 2/3] RUN make";
        let started = Vertex {
            started: at(10, 0),
            ..vertex("a", run)
        };
        let status = StatusResponse {
            vertexes: vec![started.clone()],
            logs: vec![log("a", "compiling\npartial ")],
            ..Default::default()
        };
        assert_eq!(lines(p.feed(status)), vec![run, "  compiling"]);
        let done = Vertex {
            completed: at(12, 500),
            ..started
        };
        let status = StatusResponse {
            vertexes: vec![done.clone()],
            logs: vec![log("a", "line\n")],
            ..Default::default()
        };
        // a message's output comes before the end it reports: the line is whole by then
        assert_eq!(
            lines(p.feed(status)),
            vec!["  partial line", "[build 2/3] RUN make ... done in 2.5s"]
        );
        // a repeated completion shows nothing
        let again = StatusResponse {
            vertexes: vec![done],
            ..Default::default()
        };
        assert!(p.feed(again).is_empty());
        assert_eq!((p.ran, p.cached), (1, 0));
    }

    #[test]
    fn cached_steps_say_so_and_internal_steps_stay_quiet() {
        let mut p = Progress::default();
        let status = StatusResponse {
            vertexes: vec![
                Vertex {
                    cached: true,
                    started: at(1, 0),
                    completed: at(1, 0),
                    ..vertex("a", "[2/3] RUN bundle install")
                },
                Vertex {
                    started: at(1, 0),
                    completed: at(1, 100),
                    ..vertex("b", "[internal] load build context")
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            lines(p.feed(status)),
            vec!["[2/3] RUN bundle install ... CACHED"]
        );
        assert_eq!((p.ran, p.cached), (0, 1));

        let mut verbose = Progress::new(true);
        let status = StatusResponse {
            vertexes: vec![Vertex {
                started: at(1, 0),
                completed: at(1, 100),
                ..vertex("b", "[internal] load build context")
            }],
            ..Default::default()
        };
        assert_eq!(
            lines(verbose.feed(status)),
            vec![
                "[internal] load build context",
                "[internal] load build context ... done in 0.1s"
            ]
        );
    }

    #[test]
    fn a_failed_step_keeps_its_error_and_last_lines_and_cancellations_do_not_replace_it() {
        let mut p = Progress::default();
        let mut logs = String::new();
        for i in 1..=12 {
            logs.push_str(&format!("out {i}\n"));
        }
        logs.push_str("no newline at the end");
        let status = StatusResponse {
            vertexes: vec![Vertex {
                started: at(1, 0),
                ..vertex("a", "[3/4] RUN ./test")
            }],
            logs: vec![log("a", &logs)],
            ..Default::default()
        };
        p.feed(status);
        let status = StatusResponse {
            vertexes: vec![
                Vertex {
                    started: at(1, 0),
                    completed: at(2, 0),
                    error:
                        "process \"/bin/sh -c ./test\" did not complete successfully: exit code: 3"
                            .into(),
                    ..vertex("a", "[3/4] RUN ./test")
                },
                Vertex {
                    started: at(1, 0),
                    completed: at(2, 0),
                    error: "context canceled".into(),
                    ..vertex("b", "[other 2/2] RUN sleep 9")
                },
            ],
            ..Default::default()
        };
        let shown = lines(p.feed(status));
        let at = |prefix: &str| shown.iter().position(|l| l.starts_with(prefix)).unwrap();
        assert!(at("  no newline at the end") < at("[3/4] RUN ./test ... ERROR: process"));
        let failed = p.failed().unwrap();
        assert_eq!(failed.step, "[3/4] RUN ./test");
        assert!(failed.error.ends_with("exit code: 3"));
        assert_eq!(failed.tail.len(), TAIL_LINES);
        assert_eq!(failed.tail.first().unwrap(), "out 4");
        assert_eq!(failed.tail.last().unwrap(), "no newline at the end");
    }

    #[test]
    fn carriage_returns_keep_the_last_drawing_and_warnings_are_warnings() {
        let mut p = Progress::default();
        let status = StatusResponse {
            vertexes: vec![Vertex {
                started: at(1, 0),
                ..vertex("a", "[1/1] RUN fetch")
            }],
            logs: vec![log("a", "10%\r50%\r100%\r\n")],
            warnings: vec![VertexWarning {
                vertex: "a".into(),
                short: b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            lines(p.feed(status)),
            vec![
                "[1/1] RUN fetch",
                "  100%",
                "warning: Dockerfile: FromAsCasing: 'as' and 'FROM' keywords' casing do not match"
            ]
        );
    }
}
