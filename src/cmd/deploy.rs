//! `deckhand deploy`: register a revision with the new image, update the service, watch our
//! deployment to a verdict, and roll back to the last good revision when it fails.

use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::aws::{self, ecs};
use crate::cli::{DeployArgs, GlobalArgs, OutputFormat, RollbackMode};
use crate::deploy::taskdef::{self, TaskDef};
use crate::deploy::verdict::{Failure, Limits, Verdict};
use crate::deploy::watch::{self, Ended, Seen, Watcher};
use crate::error::{Error, Exit, Result};

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Serialize)]
pub struct DeployResult {
    /// deployed | rolled-back | failed | dry-run | started
    pub result: String,
    pub image: String,
    pub task_definition_arn: String,
    pub deployment_id: String,
    pub rolled_back: bool,
    pub reason: String,
}

/// Runs the deploy; the exit code follows the README's table.
pub async fn run(global: &GlobalArgs, args: &DeployArgs) -> Result<()> {
    let [service] = args.services.as_slice() else {
        return Err(Error::usage(
            "deploy one --service at a time in this version",
        ));
    };
    let config = aws::config::load(global.region.as_deref()).await?;
    let client = aws_sdk_ecs::Client::new(&config);
    let cluster = args.cluster.as_str();

    info!("==> service {service} in {cluster}");
    let before = ecs::describe_service(&client, cluster, service).await?;
    let target = rollback_target(&before)?;
    info!("running {} (the rollback target)", target);

    let source = match &args.task_definition {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::usage(format!(
                    "cannot read --task-definition {}: {e}",
                    path.display()
                ))
            })?;
            taskdef::parse(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))?
        }
        None => taskdef::from_value(
            ecs::describe_task_definition(&config, &before.task_definition).await?,
        )
        .map_err(|e| {
            Error::failed(format!(
                "the service's task definition cannot be reused: {e}"
            ))
        })?,
    };
    let new = render(&source, args)?;
    let old_json = source.request();
    println_diff(&old_json, &new.request());

    if args.dry_run {
        info!("dry run: nothing registered, the service is unchanged");
        return finish(
            global,
            outcome("dry-run", args, "", "", false, ""),
            Exit::Success,
        );
    }

    info!("==> register {}", new.family());
    let registered = ecs::register_task_definition(&config, &new.request()).await?;
    info!("registered {}", registered.arn);
    let since = crate::sandbox::now();
    let deployment = ecs::update_service(&client, cluster, service, &registered.arn).await?;
    info!("==> deployment {deployment} started");
    if args.no_wait {
        return finish(
            global,
            outcome("started", args, &registered.arn, &deployment, false, ""),
            Exit::Success,
        );
    }

    let watcher = Watcher {
        client: &client,
        cluster,
        service,
        poll: args.poll,
        limits: Limits {
            failed_tasks: args.max_failed_tasks.max(1),
            ..Limits::default()
        },
        since,
    };
    let mut seen = Seen::default();
    let mut interrupted = Box::pin(crate::signals::interrupted());
    let deadline = Instant::now() + args.timeout;
    let (ended, failures) = watcher
        .watch(
            &deployment,
            &registered.arn,
            deadline,
            &mut seen,
            &mut interrupted,
        )
        .await?;
    let failure = match ended {
        Ended::Verdict(Verdict::Stable { nothing_running }) => {
            if nothing_running {
                warn!("the service's desiredCount is 0: the deployment completed but no task ran, so nothing was verified");
            }
            info!("==> deployed: {deployment} is stable on {}", registered.arn);
            return finish(
                global,
                outcome("deployed", args, &registered.arn, &deployment, false, ""),
                Exit::Success,
            );
        }
        Ended::Verdict(Verdict::Failed(f)) => f,
        Ended::Verdict(Verdict::Pending) => unreachable!("watch returns only verdicts"),
        Ended::Interrupted => {
            warn!("interrupted while the deployment was unverified");
            Failure::TimedOut
        }
    };
    let reason = explain(&failure);
    error!("the deployment failed: {reason}");
    for t in &failures {
        error!(
            "  task {}: {}",
            watch::short(&t.arn),
            watch::describe_stop(t)
        );
    }

    // What to do about it.
    let rollback_from = |result: &str, why: String| {
        outcome(result, args, &registered.arn, &deployment, false, &why)
    };
    match &failure {
        Failure::Replaced { by } => {
            error!("another deployment ({by}) replaced ours; deckhand does not roll back over it");
            return finish(global, rollback_from("failed", reason), Exit::NeedsPerson);
        }
        Failure::RolledBackByEcs { to } => {
            info!("==> ECS's circuit breaker is rolling back to {to}; watching it");
            let view = ecs::describe_service(&client, cluster, service).await?;
            let primary = view
                .deployments
                .iter()
                .find(|d| d.status == "PRIMARY")
                .map(|d| d.id.clone())
                .unwrap_or_default();
            return confirm_rollback(
                global,
                args,
                &watcher,
                &primary,
                to,
                &mut seen,
                &registered.arn,
                &deployment,
                reason,
            )
            .await;
        }
        _ => {}
    }
    if args.rollback == RollbackMode::Never {
        error!("--rollback never: the service is left on the failed revision");
        return finish(global, rollback_from("failed", reason), Exit::NeedsPerson);
    }
    info!("==> rolling back to {target}");
    let back = ecs::update_service(&client, cluster, service, &target).await?;
    confirm_rollback(
        global,
        args,
        &watcher,
        &back,
        &target,
        &mut seen,
        &registered.arn,
        &deployment,
        reason,
    )
    .await
}

/// Watches a rollback deployment: exit 3 if the service is back and stable, else 4.
#[allow(clippy::too_many_arguments)]
async fn confirm_rollback(
    global: &GlobalArgs,
    args: &DeployArgs,
    watcher: &Watcher<'_>,
    rollback: &str,
    target: &str,
    seen: &mut Seen,
    failed_td: &str,
    failed_deployment: &str,
    reason: String,
) -> Result<()> {
    let deadline = Instant::now() + args.timeout;
    let mut never = Box::pin(std::future::pending::<()>());
    let (ended, _) = watcher
        .watch(rollback, target, deadline, seen, &mut never)
        .await?;
    if let Ended::Verdict(Verdict::Stable { .. }) = ended {
        info!("==> rolled back: the service is stable on {target}");
        let result = outcome(
            "rolled-back",
            args,
            failed_td,
            failed_deployment,
            true,
            &reason,
        );
        return finish(global, result, Exit::RolledBack);
    }
    error!(
        "the rollback to {target} did not become stable ({ended:?}): the service needs a person"
    );
    finish(
        global,
        outcome("failed", args, failed_td, failed_deployment, false, &reason),
        Exit::NeedsPerson,
    )
}

/// The revision to roll back to: what the service runs now, if its deployment is complete.
/// A deployment still in progress means another pipeline is at work: stop (exit 1).
fn rollback_target(view: &ecs::ServiceView) -> Result<String> {
    if let Some(busy) = view
        .deployments
        .iter()
        .find(|d| d.rollout_state.as_deref() == Some("IN_PROGRESS"))
    {
        return Err(Error::failed(format!(
            "the service already has a deployment in progress ({}, {}). Wait for it to finish, then run again; \
             nothing was changed.",
            busy.id, busy.task_definition
        )));
    }
    Ok(view.task_definition.clone())
}

/// The task definition with the new image in the chosen containers and the deckhand tag.
fn render(source: &TaskDef, args: &DeployArgs) -> Result<TaskDef> {
    let repository = taskdef::image_repository(&args.image);
    let chosen = source
        .select(&args.containers, repository)
        .map_err(Error::failed)?;
    let mut new = source.with_image(&chosen, &args.image);
    if let Some(sha) = sha_of(&args.image) {
        new.tag("deckhand:sha", sha);
    }
    info!("new image for {}: {}", chosen.join(", "), args.image);
    Ok(new)
}

/// The commit SHA in an image reference tagged by `deckhand push` (`repo:<40 hex>`).
fn sha_of(image: &str) -> Option<&str> {
    let (_, tag) = image.split('@').next()?.rsplit_once(':')?;
    (tag.len() == 40 && tag.chars().all(|c| c.is_ascii_hexdigit())).then_some(tag)
}

fn println_diff(old: &serde_json::Value, new: &serde_json::Value) {
    let d = taskdef::diff(old, new);
    if d.is_empty() {
        info!("task definition: no change besides a new revision");
    } else {
        info!("task definition change:\n{d}");
    }
}

/// One sentence on why the deploy failed.
pub fn explain(f: &Failure) -> String {
    match f {
        Failure::RolloutFailed { reason } => format!("ECS marked the deployment FAILED ({reason})"),
        Failure::RolledBackByEcs { to } => {
            format!("ECS's circuit breaker failed the deployment and rolled back to {to}")
        }
        Failure::TasksFailing { count, last_reason } => {
            format!("{count} tasks of the new revision stopped; the last: {last_reason}")
        }
        Failure::Unplaceable { events } => {
            format!("ECS could not place the new tasks ({events} \"unable to place\" events)")
        }
        Failure::Replaced { by } => format!("another deployment ({by}) replaced ours"),
        Failure::TimedOut => "the deployment did not become stable in time".to_string(),
    }
}

fn outcome(
    result: &str,
    args: &DeployArgs,
    td: &str,
    deployment: &str,
    rolled_back: bool,
    reason: &str,
) -> DeployResult {
    DeployResult {
        result: result.into(),
        image: args.image.clone(),
        task_definition_arn: td.into(),
        deployment_id: deployment.into(),
        rolled_back,
        reason: reason.into(),
    }
}

/// Prints the result and turns the exit code into the command's outcome.
fn finish(global: &GlobalArgs, result: DeployResult, exit: Exit) -> Result<()> {
    match global.output {
        OutputFormat::Json => {
            crate::redact::println_stdout(&serde_json::to_string(&result).expect("plain data"))
        }
        OutputFormat::Text => crate::redact::println_stdout(
            format!("{} {}", result.result, result.task_definition_arn).trim_end(),
        ),
    }
    match exit {
        Exit::Success => Ok(()),
        _ => Err(Error {
            exit,
            message: match exit {
                Exit::RolledBack => {
                    format!("the deploy failed and was rolled back: {}", result.reason)
                }
                _ => format!(
                    "the deploy failed and the service is not confirmed healthy: {}",
                    result.reason
                ),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha_is_read_from_a_push_tag() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(sha_of(&format!("127.0.0.1:5000/web:{sha}")), Some(sha));
        assert_eq!(sha_of("127.0.0.1:5000/web:latest"), None);
        assert_eq!(sha_of("web@sha256:00"), None);
    }
}
