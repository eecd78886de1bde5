//! `deckhand rollback`: put a service back on its last good revision (or the one asked for)
//! and watch that deployment like any other; for the person paged at 3 a.m.

use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::aws::{self, ecs};
use crate::cli::{GlobalArgs, RollbackArgs};
use crate::cmd::deploy::{explain, report_state};
use crate::deploy::history;
use crate::deploy::verdict::{self, Verdict};
use crate::deploy::watch::{self, Ended, Seen, Watched, Watcher};
use crate::error::{Error, Exit, Result};

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackResult {
    /// rolled-back | unchanged | started | failed
    pub result: String,
    /// The revision rolled back to.
    pub task_definition_arn: String,
    /// The revision the service ran before.
    pub previous_task_definition_arn: String,
    pub deployment_id: String,
    pub reason: String,
}

/// Runs the rollback: 0 when the service is stable on the target, 1 when nothing was changed,
/// 4 when it was changed but is not confirmed stable.
pub async fn run(global: &GlobalArgs, args: &RollbackArgs) -> Result<()> {
    let [service] = args.target.services.as_slice() else {
        return Err(Error::usage("roll back one --service at a time"));
    };
    let cluster = args.target.cluster.as_str();
    if let Some(spec) = &args.to {
        // The syntax is checked before any call; the family comes from the service later.
        history::resolve_to(spec, "family:1").map_err(Error::usage)?;
    }
    let config = aws::config::load(global.region.as_deref()).await?;
    let client = ecs::Ecs::new(&config);

    info!("==> service {service} in {cluster}");
    let view = ecs::describe_service(&client, cluster, service).await?;
    let current = view.task_definition.clone();
    info!("running {current}");
    let target = match &args.to {
        Some(spec) => {
            let reference = history::resolve_to(spec, &current).map_err(Error::usage)?;
            // Resolves `family:N` to an ARN, and fails (nothing changed) if it does not exist.
            let described = ecs::describe_task_definition(&client, &reference).await?;
            described["taskDefinition"]["taskDefinitionArn"]
                .as_str()
                .unwrap_or(&reference)
                .to_string()
        }
        None => {
            let successful = ecs::successful_task_definitions(&client, cluster, service)
                .await
                .map_err(|e| {
                    Error::failed(format!(
                        "cannot read the service's deployment history ({e}). Pass --to REVISION to choose the revision."
                    ))
                })?;
            history::last_good(&current, &successful)
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::failed(
                        "the service's deployment history has no successful deployment of another \
                         revision to go back to. Pass --to REVISION to choose one; nothing was changed.",
                    )
                })?
        }
    };
    let mut result = RollbackResult {
        task_definition_arn: target.clone(),
        previous_task_definition_arn: current.clone(),
        ..RollbackResult::default()
    };

    let busy = verdict::busy(&view.deployments);
    if history::same_revision(&target, &current) && busy.is_none() {
        info!("the service already runs {target} and no deployment is in progress: nothing to do");
        result.result = "unchanged".into();
        return finish(global, result, Exit::Success);
    }
    if let Some(d) = busy {
        // A person asked for this: a rollback may replace a deployment that is going wrong.
        warn!(
            "replacing the deployment in progress: {}",
            watch::describe_deployment(d)
        );
    }

    let watcher = Watcher::new(&client, cluster, &args.watch);
    let mut interrupted = crate::signals::Interrupts::new();
    info!("==> rolling back to {target}");
    let deployment = watcher.start(service, &target).await?;
    info!("deployment {deployment} started");
    result.deployment_id = deployment.clone();
    if args.no_wait {
        result.result = "started".into();
        return finish(global, result, Exit::Success);
    }

    let deadline = Instant::now() + args.watch.timeout;
    let mut watched = [Watched::new(service, &deployment, &target)];
    let ended = watcher
        .watch(
            &mut watched,
            deadline,
            &mut Seen::after(std::slice::from_ref(&view)),
            &mut interrupted,
            true,
        )
        .await;
    let why = match (ended, &watched[0].verdict) {
        (Ok(Ended::Decided), Some(Verdict::Stable { .. })) => {
            info!("==> rolled back: the service is stable on {target}");
            result.result = "rolled-back".into();
            return finish(global, result, Exit::Success);
        }
        (Ok(Ended::Decided), Some(Verdict::Failed(f))) => explain(f),
        (Ok(_), _) => "the wait was interrupted".to_string(),
        (Err(e), _) => e.message,
    };
    error!("the rollback to {target} ({deployment}) was not confirmed: {why}");
    report_state(&watcher, std::slice::from_ref(service)).await;
    result.result = "failed".into();
    result.reason = why;
    finish(global, result, Exit::NeedsPerson)
}

fn finish(global: &GlobalArgs, result: RollbackResult, exit: Exit) -> Result<()> {
    let text = format!("{} {}", result.result, result.task_definition_arn);
    crate::output::print_result(global.output, &result, &text);
    match exit {
        Exit::Success => Ok(()),
        _ => Err(Error {
            exit,
            message: format!(
                "the rollback was started but the service is not confirmed healthy: {}",
                result.reason
            ),
        }),
    }
}
