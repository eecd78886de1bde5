//! What a run tells as it goes, as typed events: the pipeline says what happened, the renderers
//! at the edge decide how it looks (plain text, GitHub, GitLab) and the job summary is built
//! from the same events.

/// One thing worth telling. Messages are plain sentences; renderers add prefixes and dressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A stage of the pipeline begins ("register", "deploy", "rolling back web to web:3").
    Stage(String),
    /// Progress within a stage.
    Step(String),
    /// Output relayed from elsewhere (build steps, push progress, a task's log lines): shown,
    /// never summarised.
    Output(String),
    /// A service event from ECS, shown once.
    ServiceEvent(String),
    /// One line a one-off task's container logged (`deckhand run`, the pre-deploy gate),
    /// relayed as it arrives under the task's `label` and the container's name: shown, never
    /// summarised.
    TaskOutput {
        label: String,
        container: String,
        line: String,
    },
    /// A task of the watched revision stopped for a failure.
    TaskStopped {
        /// The service, when several are watched.
        service: Option<String>,
        task: String,
        reason: String,
    },
    /// The last log lines of one container of a failed task (or why there are none), shown
    /// under the stopped-task line.
    TaskLog {
        service: Option<String>,
        task: String,
        container: String,
        lines: Vec<String>,
        /// Why there are no lines, when there are none.
        note: String,
    },
    /// The run reached a verdict for a service ("web is stable on web:3").
    Verdict(String),
    /// Something a person should know; the run goes on.
    Warning(String),
    /// Something failed.
    Error(String),
}

/// How loud an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Event {
    pub fn level(&self) -> Level {
        match self {
            Event::Error(_) => Level::Error,
            Event::Warning(_) | Event::TaskStopped { .. } | Event::TaskLog { .. } => Level::Warning,
            _ => Level::Info,
        }
    }

    /// The event as one line of text, without any dressing.
    pub fn message(&self) -> String {
        match self {
            Event::Stage(m)
            | Event::Step(m)
            | Event::Output(m)
            | Event::Verdict(m)
            | Event::Warning(m)
            | Event::Error(m) => m.clone(),
            Event::ServiceEvent(m) => format!("event: {m}"),
            Event::TaskOutput {
                label,
                container,
                line,
            } => format!("{label} {container} | {line}"),
            Event::TaskStopped {
                service,
                task,
                reason,
            } => format!(
                "{}task {task} stopped: {reason}",
                service
                    .as_deref()
                    .map(|s| format!("{s}: "))
                    .unwrap_or_default()
            ),
            Event::TaskLog {
                container,
                lines,
                note,
                ..
            } => {
                if lines.is_empty() {
                    format!("  {container}: {note}")
                } else {
                    lines
                        .iter()
                        .map(|l| format!("  {container} | {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            }
        }
    }

    /// A heading for a [`Event::TaskLog`]: "web: task abc, container app: last 2 log lines".
    pub fn log_heading(&self) -> Option<String> {
        let Event::TaskLog {
            service,
            task,
            container,
            lines,
            ..
        } = self
        else {
            return None;
        };
        Some(format!(
            "{}task {task}, container {container}: last {} log line{}",
            service
                .as_deref()
                .map(|s| format!("{s}: "))
                .unwrap_or_default(),
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        ))
    }

    /// The event with `f` applied to every text in it (to mask secrets before any renderer
    /// escapes or rewrites the text, which would hide a secret from a later masking).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> Event {
        match self {
            Event::Stage(m) => Event::Stage(f(&m)),
            Event::Step(m) => Event::Step(f(&m)),
            Event::Output(m) => Event::Output(f(&m)),
            Event::ServiceEvent(m) => Event::ServiceEvent(f(&m)),
            Event::TaskOutput {
                label,
                container,
                line,
            } => Event::TaskOutput {
                label: f(&label),
                container: f(&container),
                line: f(&line),
            },
            Event::Verdict(m) => Event::Verdict(f(&m)),
            Event::Warning(m) => Event::Warning(f(&m)),
            Event::Error(m) => Event::Error(f(&m)),
            Event::TaskStopped {
                service,
                task,
                reason,
            } => Event::TaskStopped {
                service: service.map(|s| f(&s)),
                task: f(&task),
                reason: f(&reason),
            },
            Event::TaskLog {
                service,
                task,
                container,
                lines,
                note,
            } => Event::TaskLog {
                service: service.map(|s| f(&s)),
                task: f(&task),
                container: f(&container),
                lines: lines.iter().map(|l| f(l)).collect(),
                note: f(&note),
            },
        }
    }

    /// Whether the job summary's timeline or problem list keeps it.
    pub fn summarised(&self) -> bool {
        !matches!(
            self,
            Event::Step(_) | Event::Output(_) | Event::TaskOutput { .. }
        )
    }
}
