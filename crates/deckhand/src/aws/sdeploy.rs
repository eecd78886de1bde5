//! ECS's service deployments, the verdict's source of truth for every strategy (rolling,
//! blue/green, linear, canary): finding the one an UpdateService started, reading it,
//! stopping it with a rollback, continuing a paused one. No decisions.

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, ServiceDeploymentStatus, StopServiceDeploymentStopType,
};
use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::error::Result;

/// One service deployment as deckhand reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceDeployment {
    pub arn: String,
    /// PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, STOP_REQUESTED, ROLLBACK_REQUESTED,
    /// ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED.
    pub status: String,
    pub status_reason: String,
    /// RECONCILE_SERVICE … CLEAN_UP, when ECS reports one.
    pub stage: Option<String>,
    /// ROLLING, BLUE_GREEN, LINEAR, CANARY.
    pub strategy: Option<String>,
    pub bake_minutes: Option<i32>,
    pub target_revision: String,
    pub target_requested: i32,
    pub target_running: i32,
    /// The share of production (test) traffic asked of the target revision, in percent.
    pub production_weight: Option<f64>,
    pub test_weight: Option<f64>,
    /// Why ECS rolled it back, once it did.
    pub rollback_reason: Option<String>,
    /// The circuit breaker: status (TRIGGERED, MONITORING…), failures counted, threshold.
    pub breaker: Option<(String, i32, i32)>,
    /// The alarms: status, and those that triggered.
    pub alarms: Option<(String, Vec<String>)>,
    pub hooks: Vec<Hook>,
}

/// A lifecycle hook of a service deployment (a PAUSE hook awaiting action, above all).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hook {
    pub id: String,
    /// PAUSE, LAMBDA…
    pub target_type: String,
    /// AWAITING_ACTION, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT.
    pub status: String,
    /// Seconds since the epoch.
    pub expires_at: Option<f64>,
    /// CONTINUE or ROLLBACK.
    pub timeout_action: Option<String>,
}

/// What a search for our service deployment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// This ECS has no ServiceDeployments API (an old emulator, a region without it).
    Unavailable,
    /// Not listed yet (the API is eventually consistent).
    NotYet,
    Ours(String),
}

/// Whether an error says the operation does not exist here, rather than that it failed.
fn unavailable<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            matches!(
                se.err().code(),
                Some(
                    "UnknownOperationException"
                        | "UnknownOperation"
                        | "InvalidAction"
                        | "NotImplemented"
                        | "UnsupportedOperation"
                )
            ) || se.raw().status().as_u16() == 501
        }
        _ => false,
    }
}

/// The newest service deployment of `service` created since `since` (seconds since the epoch)
/// whose target revision runs `task_definition`.
pub async fn find(
    client: &Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
    since: f64,
) -> Result<Found> {
    let after = aws_sdk_ecs::types::CreatedAt::builder()
        .after(aws_smithy_types::DateTime::from_secs_f64(since))
        .build();
    let listed = match client
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .created_at(after)
        .send()
        .await
    {
        Ok(l) => l,
        Err(e) if unavailable(&e) => return Ok(Found::Unavailable),
        Err(e) => return Err(super::failure("ECS ListServiceDeployments", &e)),
    };
    let mut briefs: Vec<(f64, String, String)> = listed
        .service_deployments()
        .iter()
        .filter_map(|b| {
            Some((
                b.created_at().map_or(0.0, |t| t.as_secs_f64()),
                b.service_deployment_arn()?.to_string(),
                b.target_service_revision_arn()?.to_string(),
            ))
        })
        .collect();
    if briefs.is_empty() {
        return Ok(Found::NotYet);
    }
    briefs.sort_by(|a, b| b.0.total_cmp(&a.0));
    briefs.truncate(20);
    let revisions: Vec<String> = briefs.iter().map(|b| b.2.clone()).collect();
    let described = client
        .describe_service_revisions()
        .set_service_revision_arns(Some(revisions))
        .send()
        .await
        .map_err(|e| super::failure("ECS DescribeServiceRevisions", &e))?;
    let runs_ours = |revision: &str| {
        described.service_revisions().iter().any(|r| {
            r.service_revision_arn() == Some(revision)
                && r.task_definition() == Some(task_definition)
        })
    };
    Ok(briefs
        .into_iter()
        .find(|(_, _, revision)| runs_ours(revision))
        .map_or(Found::NotYet, |(_, arn, _)| Found::Ours(arn)))
}

/// The service's newest service deployment that is still going (PENDING, IN_PROGRESS or
/// rolling back), if any; `None` also where the API is not there.
pub async fn current(
    client: &Client,
    cluster: &str,
    service: &str,
) -> Result<Option<ServiceDeployment>> {
    use ServiceDeploymentStatus as S;
    let mut request = client
        .list_service_deployments()
        .cluster(cluster)
        .service(service);
    for s in [
        S::Pending,
        S::InProgress,
        S::RollbackRequested,
        S::RollbackInProgress,
    ] {
        request = request.status(s);
    }
    let listed = match request.send().await {
        Ok(l) => l,
        Err(e) if unavailable(&e) => return Ok(None),
        Err(e) => return Err(super::failure("ECS ListServiceDeployments", &e)),
    };
    let newest = listed
        .service_deployments()
        .iter()
        .max_by(|a, b| {
            let at = |x: &aws_sdk_ecs::types::ServiceDeploymentBrief| {
                x.created_at().map_or(0.0, |t| t.as_secs_f64())
            };
            at(a).total_cmp(&at(b))
        })
        .and_then(|b| b.service_deployment_arn())
        .map(str::to_string);
    match newest {
        Some(arn) => Ok(describe(client, &[arn]).await?.into_iter().next()),
        None => Ok(None),
    }
}

/// DescribeServiceDeployments for `arns` (at most 20 per call), in the order ECS returns.
pub async fn describe(client: &Client, arns: &[String]) -> Result<Vec<ServiceDeployment>> {
    let mut out = Vec::with_capacity(arns.len());
    for batch in arns.chunks(20) {
        let got = client
            .describe_service_deployments()
            .set_service_deployment_arns(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| super::failure("ECS DescribeServiceDeployments", &e))?;
        out.extend(got.service_deployments().iter().map(view_of));
    }
    Ok(out)
}

fn view_of(d: &aws_sdk_ecs::types::ServiceDeployment) -> ServiceDeployment {
    let config = d.deployment_configuration();
    let target = d.target_service_revision();
    ServiceDeployment {
        arn: d.service_deployment_arn().unwrap_or_default().to_string(),
        status: d
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        status_reason: d.status_reason().unwrap_or_default().to_string(),
        stage: d.lifecycle_stage().map(|s| s.as_str().to_string()),
        strategy: config
            .and_then(|c| c.strategy())
            .map(|s| s.as_str().to_string()),
        bake_minutes: config.and_then(|c| c.bake_time_in_minutes()),
        target_revision: target.and_then(|t| t.arn()).unwrap_or_default().to_string(),
        target_requested: target.map_or(0, |t| t.requested_task_count()),
        target_running: target.map_or(0, |t| t.running_task_count()),
        production_weight: target.and_then(|t| t.requested_production_traffic_weight()),
        test_weight: target.and_then(|t| t.requested_test_traffic_weight()),
        rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_string),
        breaker: d.deployment_circuit_breaker().map(|b| {
            (
                b.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                b.failure_count(),
                b.threshold(),
            )
        }),
        alarms: d.alarms().map(|a| {
            (
                a.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                a.triggered_alarm_names().to_vec(),
            )
        }),
        hooks: d
            .lifecycle_hook_details()
            .iter()
            .map(|h| Hook {
                id: h.hook_id().unwrap_or_default().to_string(),
                target_type: h
                    .target_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                status: h
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                expires_at: h.expires_at().map(|t| t.as_secs_f64()),
                timeout_action: h.timeout_action().map(|a| a.as_str().to_string()),
            })
            .collect(),
    }
}

/// StopServiceDeployment with stopType ROLLBACK: ECS sends traffic back to the source
/// revision and rolls the deployment back.
pub async fn stop_with_rollback(client: &Client, arn: &str) -> Result<()> {
    client
        .stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map_err(|e| super::failure("ECS StopServiceDeployment", &e))?;
    Ok(())
}

/// ContinueServiceDeployment for the paused hook `hook`: CONTINUE, or ROLLBACK.
pub async fn resume(client: &Client, arn: &str, hook: &str, rollback: bool) -> Result<()> {
    let action = if rollback {
        DeploymentLifecycleHookAction::Rollback
    } else {
        DeploymentLifecycleHookAction::Continue
    };
    client
        .continue_service_deployment()
        .service_deployment_arn(arn)
        .hook_id(hook)
        .action(action)
        .send()
        .await
        .map_err(|e| super::failure("ECS ContinueServiceDeployment", &e))?;
    Ok(())
}
