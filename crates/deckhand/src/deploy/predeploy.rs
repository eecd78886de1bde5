//! The migration gate: a one-off task (e.g. `bin/rails db:migrate`) run with the new image
//! before any service changes. Its log is shown as it arrives; every essential container must
//! exit 0, or the deploy stops with nothing changed, the task's last lines in the summary and
//! the result.

use std::time::Duration;

use crate::aws::ecs;
use crate::config::PreDeploy;
use crate::error::{Error, Result};
use crate::signals::Interrupts;
use serde_json::Value;

use super::watch::{self, FailedTask};
use super::{history, oneoff, taskdef, tasklogs};

/// What a pre-deploy run needs from the deploy around it.
pub struct Context<'a> {
    pub reporter: &'a crate::report::Reporter,
    pub config: &'a aws_config::SdkConfig,
    pub client: &'a ecs::Ecs,
    pub cluster: &'a str,
    /// The image going out, and its commit for the `deckhand:sha` tag.
    pub image: &'a str,
    pub sha: Option<&'a str>,
    /// The first service's per-deploy changes (`--env`, roles, sizes…) and the region for an
    /// awslogs driver: the task runs as that service's new revision will.
    pub changes: &'a super::render::Changes,
    pub region: Option<&'a str>,
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
    let (mut new, chosen) = source
        .with_new_image(&wanted, cx.image, cx.sha)
        .map_err(|e| Error::failed(format!("pre-deploy task {family}: {e}")))?;
    // A prefix naming a container this family lacks was checked against the services already.
    new = super::render::apply(&new, &chosen, cx.changes, cx.region)
        .map_err(|e| Error::usage(format!("pre-deploy task {family}: {e}")))?
        .td;
    new.register_secrets();
    history::mark_one_off(&mut new, "pre-deploy");
    let registered = ecs::register_task_definition(cx.client, &new.request()).await?;
    cx.reporter.step(format!("registered {}", registered.arn));
    let ran = run_registered(cx, task, &new, &registered.arn, &chosen, interrupted).await;
    // Its revision is not left as the family's newest for `deckhand run FAMILY` or
    // --keep-revisions to count.
    oneoff::retire(cx.reporter, cx.client, &registered.arn).await;
    ran
}

/// Runs the gate's registered revision and waits for its verdict.
async fn run_registered(
    cx: &Context<'_>,
    task: &PreDeploy,
    new: &taskdef::TaskDef,
    registered: &str,
    chosen: &[String],
    interrupted: &mut Interrupts,
) -> Result<()> {
    let family = task.family.as_str();
    let command = task.command.args();
    let container = task.container.clone().unwrap_or_else(|| chosen[0].clone());
    let overrides = [ecs::ContainerOverride {
        container,
        command: Some(command.clone()),
        environment: Vec::new(),
    }];
    let arn = ecs::run_task(cx.client, cx.cluster, registered, &overrides, cx.placement).await?;
    let id = arn.rsplit('/').next().unwrap_or(&arn).to_string();
    cx.reporter.step(format!("task {id} started"));

    let logs = aws_sdk_cloudwatchlogs::Client::new(cx.config);
    let body = Value::Object(new.body.clone());
    let follow = oneoff::Follow {
        reporter: cx.reporter,
        client: cx.client,
        logs: &logs,
        cluster: cx.cluster,
        label: family,
        what: "the pre-deploy task",
        poll: cx.poll,
        timeout: cx.timeout,
        settle: Duration::ZERO,
    };
    match oneoff::follow(&follow, &body, &arn, interrupted).await {
        oneoff::Ended::Stopped(stopped) => match oneoff::outcome(&body, &stopped) {
            Ok(()) => {
                cx.reporter
                    .step(format!("pre-deploy task {family} succeeded"));
                Ok(())
            }
            Err(why) => {
                cx.reporter
                    .error(format!("pre-deploy task {family} failed: {why}"));
                let reason = watch::describe_stop(&stopped);
                let failed = failed_task(family, registered, &arn, reason, Vec::new());
                explain(cx, &logs, &body, failed).await;
                Err(Error::failed(format!(
                    "the pre-deploy task {family} ({}) failed: {why}. No service was changed.",
                    command.join(" ")
                )))
            }
        },
        // Never leave a half-run migration behind for the next attempt to race.
        oneoff::Ended::Cut { cut, stopping, .. } => {
            let reason = format!("{cut}; {stopping}");
            let failed = failed_task(family, registered, &arn, reason, Vec::new());
            explain(cx, &logs, &body, failed).await;
            Err(Error::failed(format!(
                "the pre-deploy task {family} ({id}) {cut}; {stopping}. No service was changed."
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
