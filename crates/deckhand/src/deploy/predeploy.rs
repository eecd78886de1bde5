//! The migration gate: a one-off task (e.g. `bin/rails db:migrate`) run with the new image
//! before any service changes. Its log is shown as it arrives; every essential container must
//! exit 0, or the deploy stops with nothing changed, the task's last lines in the summary and
//! the result.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::aws::{self, ecs};
use crate::config::PreDeploy;
use crate::error::{Error, Result};
use crate::signals::Interrupts;

use super::watch::{self, FailedTask};
use super::{taskdef, tasklogs};

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

/// Whether a stopped task succeeded: every essential container (ECS's default) exited 0.
pub fn outcome(body: &Value, task: &ecs::StoppedTask) -> std::result::Result<(), String> {
    let essential = |name: &str| {
        body["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .is_none_or(|c| c["essential"].as_bool().unwrap_or(true))
    };
    let failed: Vec<String> = task
        .containers
        .iter()
        .filter(|(name, code, _)| essential(name) && *code != Some(0))
        .map(|(name, code, reason)| match code {
            Some(c) => format!("{name} exited {c}"),
            None if reason.is_empty() => format!("{name} did not run ({})", task.reason),
            None => format!("{name} did not run ({reason})"),
        })
        .collect();
    if task.containers.is_empty() {
        return Err(format!("the task reported no containers ({})", task.reason));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// What a pre-deploy run needs from the deploy around it.
pub struct Context<'a> {
    pub reporter: &'a crate::report::Reporter,
    pub config: &'a aws_config::SdkConfig,
    pub client: &'a ecs::Ecs,
    pub cluster: &'a str,
    /// The image going out, and its commit for the `deckhand:sha` tag.
    pub image: &'a str,
    pub sha: Option<&'a str>,
    /// Launch settings of the first service, for awsvpc and Fargate.
    pub placement: &'a ecs::Placement,
    pub poll: Duration,
    pub timeout: Duration,
    /// `--log-lines`: the last lines of a failed task's containers kept for the summary and
    /// the result (0: none; the log is relayed as it arrives all the same).
    pub log_lines: usize,
}

/// The gate's task (`task_arn`, of `family` at `task_definition_arn`) that failed for
/// `reason`, as the result's `failed_tasks` reports it (pure).
pub fn failed_task(
    family: &str,
    task_definition_arn: &str,
    task_arn: &str,
    reason: String,
    logs: Vec<tasklogs::ContainerLog>,
) -> FailedTask {
    FailedTask {
        service: String::new(),
        task: watch::short(task_arn).to_string(),
        task_definition_arn: task_definition_arn.to_string(),
        reason,
        logs,
        pre_deploy: family.to_string(),
    }
}

/// Explains the gate's failed task `failed` (its logs still to read): the last `--log-lines`
/// lines of its essential containers go to the job summary (the log relayed them as they
/// came), and the task to the `failed` result's `failed_tasks`.
async fn explain(
    cx: &Context<'_>,
    logs: &aws_sdk_cloudwatchlogs::Client,
    body: &Value,
    mut failed: FailedTask,
) {
    if cx.log_lines > 0 {
        let containers = tasklogs::containers(body);
        failed.logs = tasklogs::last_lines(logs, &containers, &failed.task, cx.log_lines).await;
    }
    let label = format!("pre-deploy {}", failed.pre_deploy);
    for event in tasklogs::events(Some(&label), &failed.task, &failed.logs) {
        cx.reporter.summarise(event);
    }
    let tasks = serde_json::to_value([&failed]).expect("plain data serializes");
    cx.reporter.add_to_failure("failed_tasks", tasks);
}

/// Registers a revision of `task.family` with the new image, runs it with `task.command`, shows
/// its log and waits for it to stop. Any failure is exit 1: no service was changed.
pub async fn run(cx: &Context<'_>, task: &PreDeploy, interrupted: &mut Interrupts) -> Result<()> {
    let family = task.family.as_str();
    let command = task.command.args();
    cx.reporter
        .stage(format!("pre-deploy: {family}: {}", command.join(" ")));
    let source = taskdef::from_value(ecs::describe_task_definition(cx.client, family).await?)
        .map_err(|e| Error::failed(format!("pre-deploy task {family}: {e}")))?;
    source.register_secrets();
    let wanted: Vec<String> = task.container.iter().cloned().collect();
    let (new, chosen) = source
        .with_new_image(&wanted, cx.image, cx.sha)
        .map_err(|e| Error::failed(format!("pre-deploy task {family}: {e}")))?;
    let registered = ecs::register_task_definition(cx.client, &new.request()).await?;
    cx.reporter.step(format!("registered {}", registered.arn));
    let container = task.container.clone().unwrap_or_else(|| chosen[0].clone());
    let arn = ecs::run_task(
        cx.client,
        cx.cluster,
        &registered.arn,
        &container,
        &command,
        cx.placement,
    )
    .await?;
    let id = arn.rsplit('/').next().unwrap_or(&arn).to_string();
    cx.reporter.step(format!("task {id} started"));

    let logs = aws_sdk_cloudwatchlogs::Client::new(cx.config);
    let body = Value::Object(new.body.clone());
    let mut streams: Vec<Stream> = log_streams(&body, &id)
        .into_iter()
        .map(|(container, group, name)| Stream {
            container,
            group,
            name,
            token: None,
        })
        .collect();
    for c in tasklogs::containers(&body) {
        if let Some(note) = tasklogs::unreadable(&c.source) {
            cx.reporter.warn(format!(
                "{family} {}: {note}: its output cannot be shown",
                c.name
            ));
        }
    }
    let deadline = Instant::now() + cx.timeout;
    loop {
        let state = match ecs::describe_task(cx.client, cx.cluster, &arn).await {
            Ok(s) => Some(s),
            Err(e) => {
                cx.reporter.warn(format!(
                    "could not read the task's state ({e}); trying again"
                ));
                None
            }
        };
        show_logs(cx.reporter, &logs, family, &mut streams).await;
        if let Some((_, stopped)) = state.filter(|(status, _)| status == "STOPPED") {
            // Log delivery lags the task: read on until nothing new arrives.
            for _ in 0..10 {
                tokio::time::sleep(cx.poll).await;
                if streams.is_empty()
                    || show_logs(cx.reporter, &logs, family, &mut streams).await == 0
                {
                    break;
                }
            }
            return match outcome(&body, &stopped) {
                Ok(()) => {
                    cx.reporter
                        .step(format!("pre-deploy task {family} succeeded"));
                    Ok(())
                }
                Err(why) => {
                    cx.reporter
                        .error(format!("pre-deploy task {family} failed: {why}"));
                    let reason = watch::describe_stop(&stopped);
                    let failed = failed_task(family, &registered.arn, &arn, reason, Vec::new());
                    explain(cx, &logs, &body, failed).await;
                    Err(Error::failed(format!(
                        "the pre-deploy task {family} ({}) failed: {why}. No service was changed.",
                        command.join(" ")
                    )))
                }
            };
        }
        let why = if Instant::now() >= deadline {
            format!("did not finish within {:?}", cx.timeout)
        } else {
            tokio::select! {
                _ = tokio::time::sleep(cx.poll) => continue,
                _ = interrupted.recv() => "was interrupted".to_string(),
            }
        };
        // Never leave a half-run migration behind for the next attempt to race.
        let stopped = ecs::stop_task(
            cx.client,
            cx.cluster,
            &arn,
            &format!("deckhand: the pre-deploy task {why}"),
        )
        .await
        .map(|()| "it was stopped".to_string())
        .unwrap_or_else(|e| format!("stopping it failed ({e}); it may still be running"));
        let reason = format!("{why}; {stopped}");
        let failed = failed_task(family, &registered.arn, &arn, reason, Vec::new());
        explain(cx, &logs, &body, failed).await;
        return Err(Error::failed(format!(
            "the pre-deploy task {family} ({id}) {why}; {stopped}. No service was changed."
        )));
    }
}

/// One container's log stream, and how far it has been read.
struct Stream {
    container: String,
    group: String,
    name: String,
    token: Option<String>,
}

/// Prints what the streams got since the last look; returns how many lines.
async fn show_logs(
    reporter: &crate::report::Reporter,
    logs: &aws_sdk_cloudwatchlogs::Client,
    family: &str,
    streams: &mut [Stream],
) -> usize {
    let mut shown = 0;
    for s in streams.iter_mut() {
        match aws::logs::next_lines(logs, &s.group, &s.name, s.token.as_deref()).await {
            Ok((lines, next)) => {
                for line in &lines {
                    reporter.output(format!("{family} {} | {line}", s.container));
                }
                shown += lines.len();
                s.token = next;
            }
            Err(e) => reporter.warn(format!("{e}")),
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

    #[test]
    fn awslogs_streams_are_named_as_ecs_names_them() {
        assert_eq!(
            log_streams(&body(), "abc"),
            vec![("app".into(), "/ecs/app".into(), "migrate/app/abc".into())]
        );
    }

    #[test]
    fn a_failed_gate_task_is_reported_like_a_deploys_with_its_family() {
        let task = ecs::StoppedTask {
            arn: "arn:aws:ecs:us-east-1:1:task/c/abc123".into(),
            reason: "Essential container in task exited".into(),
            stop_code: "EssentialContainerExited".into(),
            containers: vec![("app".into(), Some(1), String::new())],
        };
        let logs = vec![tasklogs::ContainerLog {
            container: "app".into(),
            lines: vec!["duplicate column".into()],
            note: String::new(),
        }];
        let got = failed_task(
            "migrate",
            "arn:td/migrate:2",
            &task.arn,
            watch::describe_stop(&task),
            logs.clone(),
        );
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            json!({"service": "", "task": "abc123", "task_definition_arn": "arn:td/migrate:2",
                "reason": "Essential container in task exited (app exit code 1)",
                "logs": [{"container": "app", "lines": ["duplicate column"], "note": ""}],
                "pre_deploy": "migrate"})
        );
    }

    #[test]
    fn every_essential_container_must_exit_0() {
        let task = |app: Option<i32>, sidecar: Option<i32>| ecs::StoppedTask {
            arn: "t".into(),
            reason: "Essential container in task exited".into(),
            stop_code: "EssentialContainerExited".into(),
            containers: vec![
                ("app".into(), app, String::new()),
                ("sidecar".into(), sidecar, String::new()),
            ],
        };
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
}
