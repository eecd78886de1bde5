//! A one-off task followed to its end, for the pre-deploy gate and `deckhand run`: its awslogs
//! output relayed as it arrives, how each container ended, and a stop when it outlives its
//! timeout or the run is interrupted.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::aws::{self, ecs};
use crate::report::{Event, Reporter};
use crate::signals::Interrupts;

use super::tasklogs;

/// Deregisters a one-off task's revision once the task is over: it is not left as the family's
/// newest revision for `FAMILY` to name or `--keep-revisions` to count. A failure is a warning.
pub async fn retire(r: &Reporter, client: &ecs::Ecs, arn: &str) {
    match ecs::deregister_task_definition(client, arn).await {
        Ok(()) => r.step(format!("deregistered {}", super::watch::short(arn))),
        Err(e) => r.warn(format!(
            "could not deregister {} ({e}); it is tagged {} and never a rollback target",
            super::watch::short(arn),
            super::history::ONE_OFF_TAG
        )),
    }
}

/// Where one container's `awslogs` output goes: (container, log group, log stream).
pub fn log_streams(body: &Value, task_id: &str) -> Vec<(String, String, String)> {
    tasklogs::containers(body)
        .into_iter()
        .filter_map(|c| match c.source {
            tasklogs::Source::CloudWatch {
                group,
                prefix: Some(prefix),
                ..
            } => {
                let stream = tasklogs::stream(&prefix, &c.name, task_id);
                Some((c.name, group, stream))
            }
            _ => None,
        })
        .collect()
}

/// How one container of a stopped task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerExit {
    pub name: String,
    /// Whether its task definition marks it essential (ECS's default).
    pub essential: bool,
    /// `None`: it never ran (or ECS does not know how it ended).
    pub exit_code: Option<i32>,
    /// ECS's reason for the container, when it gives one (CannotPullContainerError…).
    pub reason: String,
}

/// Each container of stopped `task` (of task definition `body`) and how it ended (pure).
pub fn exits(body: &Value, task: &ecs::StoppedTask) -> Vec<ContainerExit> {
    let essential = |name: &str| {
        body["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .is_none_or(|c| c["essential"].as_bool().unwrap_or(true))
    };
    task.containers
        .iter()
        .map(|(name, code, reason)| ContainerExit {
            name: name.clone(),
            essential: essential(name),
            exit_code: *code,
            reason: reason.clone(),
        })
        .collect()
}

/// Whether a stopped task succeeded: every essential container exited 0 (pure); else what
/// each failed one did.
pub fn outcome(body: &Value, task: &ecs::StoppedTask) -> std::result::Result<(), String> {
    if task.containers.is_empty() {
        return Err(format!("the task reported no containers ({})", task.reason));
    }
    let failed: Vec<String> = exits(body, task)
        .into_iter()
        .filter(|c| c.essential && c.exit_code != Some(0))
        .map(|c| match c.exit_code {
            Some(code) => format!("{} exited {code}", c.name),
            None if c.reason.is_empty() => format!("{} did not run ({})", c.name, task.reason),
            None => format!("{} did not run ({})", c.name, c.reason),
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// How a one-off task is followed.
pub struct Follow<'a> {
    pub reporter: &'a Reporter,
    pub client: &'a ecs::Ecs,
    pub logs: &'a aws_sdk_cloudwatchlogs::Client,
    pub cluster: &'a str,
    /// Put before each relayed line and warning (the family).
    pub label: &'a str,
    /// What the task is, for the reason StopTask records ("the pre-deploy task").
    pub what: &'a str,
    pub poll: Duration,
    pub timeout: Duration,
    /// After deckhand stops the task, how long to wait to see it STOPPED (zero: not at all).
    pub settle: Duration,
}

/// Why deckhand stopped a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    TimedOut(Duration),
    Interrupted,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::TimedOut(d) => write!(f, "did not finish within {d:?}"),
            Cut::Interrupted => f.write_str("was interrupted"),
        }
    }
}

/// How a followed task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// It stopped by itself.
    Stopped(ecs::StoppedTask),
    /// deckhand stopped it: why, what stopping it came to ("it was stopped"), and the task as
    /// seen STOPPED afterwards, if it was within [`Follow::settle`].
    Cut {
        cut: Cut,
        stopping: String,
        last: Option<ecs::StoppedTask>,
    },
}

/// Follows task `arn` (of task definition `body`) until it stops, relaying its containers'
/// awslogs lines as they arrive; stops it past the timeout or on SIGINT/SIGTERM.
pub async fn follow(
    f: &Follow<'_>,
    body: &Value,
    arn: &str,
    interrupted: &mut Interrupts,
) -> Ended {
    let id = arn.rsplit('/').next().unwrap_or(arn);
    let mut streams = streams(f.reporter, f.label, body, id);
    let deadline = Instant::now() + f.timeout;
    let mut last_status = String::new();
    loop {
        let state = match ecs::describe_task(f.client, f.cluster, arn).await {
            Ok(s) => {
                if s.0 != last_status && s.0 != "STOPPED" {
                    f.reporter.step(format!("task {id}: {}", s.0));
                    last_status.clone_from(&s.0);
                }
                Some(s)
            }
            Err(e) => {
                f.reporter.warn(format!(
                    "could not read the task's state ({e}); trying again"
                ));
                None
            }
        };
        show_logs(f, &mut streams).await;
        if let Some((_, stopped)) = state.filter(|(status, _)| status == "STOPPED") {
            drain(f, &mut streams).await;
            return Ended::Stopped(stopped);
        }
        let cut = if Instant::now() >= deadline {
            Cut::TimedOut(f.timeout)
        } else {
            tokio::select! {
                _ = tokio::time::sleep(f.poll) => continue,
                _ = interrupted.recv() => Cut::Interrupted,
            }
        };
        let reason = format!("deckhand: {} {cut}", f.what);
        let (stopping, last) = match ecs::stop_task(f.client, f.cluster, arn, &reason).await {
            Ok(()) => settle(f, arn, interrupted).await,
            Err(e) => (
                format!("stopping it failed ({e}); it may still be running"),
                None,
            ),
        };
        if last.is_some() {
            drain(f, &mut streams).await;
        } else {
            show_logs(f, &mut streams).await;
        }
        return Ended::Cut {
            cut,
            stopping,
            last,
        };
    }
}

/// After StopTask: waits up to [`Follow::settle`] (or another signal) to see the task STOPPED.
async fn settle(
    f: &Follow<'_>,
    arn: &str,
    interrupted: &mut Interrupts,
) -> (String, Option<ecs::StoppedTask>) {
    if f.settle.is_zero() {
        return ("it was stopped".into(), None);
    }
    let until = Instant::now() + f.settle;
    loop {
        if let Ok((status, task)) = ecs::describe_task(f.client, f.cluster, arn).await {
            if status == "STOPPED" {
                return ("it was stopped".into(), Some(task));
            }
        }
        if Instant::now() >= until {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(f.poll) => {}
            _ = interrupted.recv() => break,
        }
    }
    (
        "it was asked to stop and was still stopping when deckhand left".into(),
        None,
    )
}

/// Log delivery lags the task: reads on until nothing new arrives.
async fn drain(f: &Follow<'_>, streams: &mut [Stream]) {
    for _ in 0..10 {
        if streams.is_empty() {
            break;
        }
        tokio::time::sleep(f.poll).await;
        if show_logs(f, streams).await == 0 {
            break;
        }
    }
}

/// One container's log stream, and how far it has been read.
struct Stream {
    container: String,
    group: String,
    name: String,
    token: Option<String>,
}

/// The streams of task `id`'s containers that log to CloudWatch; a warning for each that
/// does not, whose output cannot be shown.
fn streams(reporter: &Reporter, label: &str, body: &Value, id: &str) -> Vec<Stream> {
    for c in tasklogs::containers(body) {
        if let Some(note) = tasklogs::unreadable(&c.source) {
            reporter.warn(format!(
                "{label} {}: {note}: its output cannot be shown",
                c.name
            ));
        }
    }
    log_streams(body, id)
        .into_iter()
        .map(|(container, group, name)| Stream {
            container,
            group,
            name,
            token: None,
        })
        .collect()
}

/// Relays what the streams got since the last look; returns how many lines.
async fn show_logs(f: &Follow<'_>, streams: &mut [Stream]) -> usize {
    let mut shown = 0;
    for s in streams.iter_mut() {
        match aws::logs::next_lines(f.logs, &s.group, &s.name, s.token.as_deref()).await {
            Ok((lines, next)) => {
                for line in lines.iter() {
                    f.reporter.emit(Event::TaskOutput {
                        label: f.label.to_string(),
                        container: s.container.clone(),
                        line: line.trim_end().to_string(),
                    });
                }
                shown += lines.len();
                s.token = next;
            }
            Err(e) => f.reporter.warn(format!("{e}")),
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({"containerDefinitions": [
            {"name": "app", "logConfiguration": {"logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/app", "awslogs-stream-prefix": "migrate"}}},
            {"name": "sidecar", "essential": false}
        ]})
    }

    fn task(app: Option<i32>, sidecar: Option<i32>) -> ecs::StoppedTask {
        ecs::StoppedTask {
            arn: "t".into(),
            reason: "Essential container in task exited".into(),
            stop_code: "EssentialContainerExited".into(),
            containers: vec![
                ("app".into(), app, String::new()),
                ("sidecar".into(), sidecar, "killed".into()),
            ],
        }
    }

    #[test]
    fn awslogs_streams_are_named_as_ecs_names_them() {
        assert_eq!(
            log_streams(&body(), "abc"),
            vec![("app".into(), "/ecs/app".into(), "migrate/app/abc".into())]
        );
    }

    #[test]
    fn every_essential_container_must_exit_0() {
        assert_eq!(outcome(&body(), &task(Some(0), Some(1))), Ok(()));
        assert_eq!(
            outcome(&body(), &task(Some(1), Some(0))),
            Err("app exited 1".into())
        );
        assert_eq!(
            outcome(&body(), &task(None, None)),
            Err("app did not run (Essential container in task exited)".into())
        );
        let mut empty = task(Some(0), Some(0));
        empty.containers.clear();
        assert!(
            outcome(&body(), &empty).is_err(),
            "no containers is no success"
        );
    }

    #[test]
    fn each_container_is_reported_with_its_exit_code_and_whether_it_counts() {
        assert_eq!(
            exits(&body(), &task(Some(7), None)),
            vec![
                ContainerExit {
                    name: "app".into(),
                    essential: true,
                    exit_code: Some(7),
                    reason: String::new(),
                },
                ContainerExit {
                    name: "sidecar".into(),
                    essential: false,
                    exit_code: None,
                    reason: "killed".into(),
                },
            ]
        );
    }

    #[test]
    fn a_cut_says_why() {
        assert_eq!(
            Cut::TimedOut(Duration::from_secs(2)).to_string(),
            "did not finish within 2s"
        );
        assert_eq!(Cut::Interrupted.to_string(), "was interrupted");
    }
}
