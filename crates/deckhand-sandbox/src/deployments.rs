//! StopServiceDeployment and ContinueServiceDeployment, and the rollback of a BLUE_GREEN,
//! LINEAR or CANARY deployment that they, alarms, hooks and the breaker share.

use serde_json::{json, Value};

use super::ecs::{start_deployment, str_field, ApiError, Reply};
use super::lifecycle;
use super::model::{DeploymentStatus, Rollout, Service, State, Time};
use super::strategy;

/// The service and deployment id a service deployment ARN names (`…/<cluster>/<service>/<n>`).
fn service_deployment_mut<'a>(
    state: &'a mut State,
    arn: &str,
) -> Result<(&'a mut Service, String), ApiError> {
    let missing = || {
        ApiError::new(
            "ServiceDeploymentNotFoundException",
            format!("The service deployment {arn} does not exist."),
        )
    };
    let parts: Vec<&str> = arn.rsplit('/').collect();
    let [_, service, cluster, ..] = parts.as_slice() else {
        return Err(missing());
    };
    let service = state
        .clusters
        .get_mut(*cluster)
        .and_then(|c| c.services.get_mut(*service))
        .ok_or_else(missing)?;
    let id = service
        .deployments
        .iter()
        .chain(service.history.iter())
        .filter(|d| d.rollback_of.is_none())
        .find(|d| service.deployment_arn(&d.id) == arn)
        .map(|d| d.id.clone())
        .ok_or_else(missing)?;
    Ok((service, id))
}

/// The service deployment status of deployment `id`.
fn deployment_status(service: &Service, id: &str) -> &'static str {
    service
        .service_deployments_brief(&[])
        .iter()
        .find(|v| v["serviceDeploymentArn"] == service.deployment_arn(id).as_str())
        .and_then(|v| v["status"].as_str())
        .map(|s| match s {
            "ROLLBACK_REQUESTED" => "ROLLBACK_REQUESTED",
            "ROLLBACK_IN_PROGRESS" => "ROLLBACK_IN_PROGRESS",
            "IN_PROGRESS" => "IN_PROGRESS",
            "PENDING" => "PENDING",
            _ => "OVER",
        })
        .unwrap_or("OVER")
}

/// StopServiceDeployment: `ROLLBACK` (the default and the one valid stop type) sends an
/// in-progress deployment back to the source revision.
pub fn stop(state: &mut State, input: &Value, now: Time) -> Reply {
    let arn = str_field(input, "serviceDeploymentArn")?.to_string();
    match input["stopType"].as_str().unwrap_or("ROLLBACK") {
        "ROLLBACK" => {}
        other => {
            return Err(ApiError::invalid(format!(
                "stopType {other} is not supported: the valid value is ROLLBACK"
            )))
        }
    }
    let (service, id) = service_deployment_mut(state, &arn)?;
    match deployment_status(service, &id) {
        "IN_PROGRESS" | "PENDING" => {}
        "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" => {
            return Ok(json!({"serviceDeploymentArn": arn}))
        }
        _ => {
            return Err(ApiError::new(
                "ConflictException",
                format!("The service deployment {arn} is not in progress and cannot be stopped."),
            ))
        }
    }
    let reason = "Service deployment rolled back because of a stop request.";
    let has_progress = service
        .deployments
        .iter()
        .any(|d| d.id == id && d.progress.is_some());
    if has_progress {
        let source = service
            .deployments
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| d.progress.as_ref()?.source.clone());
        if !source.is_some_and(|src| service.deployments.iter().any(|d| d.id == src)) {
            return Err(ApiError::new(
                "ConflictException",
                format!("The service deployment {arn} has no source revision to roll back to."),
            ));
        }
        roll_back(service, &id, reason, now, true);
    } else {
        let Some(target) = crate::scheduler::rollback_target(service, &id).map(str::to_string)
        else {
            return Err(ApiError::new(
                "ConflictException",
                format!("The service deployment {arn} has no source revision to roll back to."),
            ));
        };
        if let Some(d) = service.deployments.iter_mut().find(|d| d.id == id) {
            d.rollout = Rollout::Failed;
            d.rollout_reason = reason.into();
            d.updated_at = now;
        }
        let new = start_deployment(service, &target, now, Some(&id));
        let msg = format!(
            "(service {}) rolling back to deployment {new}.",
            service.name
        );
        service.push_event(crate::random_hex(8) + "-sandbox", now, msg);
    }
    Ok(json!({"serviceDeploymentArn": arn}))
}

/// Rolls a BLUE_GREEN, LINEAR or CANARY deployment back: production traffic returns to the
/// source revision at once (it becomes PRIMARY again) and the green tasks are stopped on the
/// next ticks. `requested` (StopServiceDeployment, ContinueServiceDeployment) shows
/// ROLLBACK_REQUESTED until then. Without a source revision the deployment just stops; false
/// then.
pub fn roll_back(
    service: &mut Service,
    id: &str,
    reason: &str,
    now: Time,
    requested: bool,
) -> bool {
    let Some(pos) = service.deployments.iter().position(|d| d.id == id) else {
        return false;
    };
    if !service.deployments[pos]
        .progress
        .as_ref()
        .is_some_and(|p| p.active())
    {
        return false;
    }
    let d = &mut service.deployments[pos];
    d.rollout = Rollout::Failed;
    d.rollout_reason = reason.to_string();
    d.updated_at = now;
    let p = d.progress.as_ref().expect("checked");
    let source = p
        .source
        .clone()
        .and_then(|src| service.deployments.iter().position(|o| o.id == src));
    let d = &mut service.deployments[pos];
    let p = d.progress.as_mut().expect("checked");
    let Some(src) = source else {
        p.stopped = Some(reason.to_string());
        return false;
    };
    p.rollback = Some(lifecycle::Rollback {
        reason: reason.to_string(),
        started_at: now,
        started: !requested,
        done: false,
    });
    // Only the source stays: the rolled-back deployment and any it superseded are over.
    let source_id = service.deployments[src].id.clone();
    let mut over = Vec::new();
    service.deployments.retain(|d| {
        let keep = d.id == source_id;
        if !keep {
            over.push(d.clone());
        }
        keep
    });
    service.history.extend(over);
    let src = 0;
    let source = &mut service.deployments[src];
    source.status = DeploymentStatus::Primary;
    source.updated_at = now;
    service.task_definition = source.task_definition.clone();
    let msg = format!(
        "(service {}) (deployment {id}) rolling back to (deployment {}): {reason}",
        service.name, service.deployments[src].id
    );
    service.push_event(crate::random_hex(8) + "-sandbox", now, msg);
    true
}

/// ContinueServiceDeployment: resolves a PAUSE hook awaiting action, `CONTINUE` (the default)
/// or `ROLLBACK`.
pub fn resume(state: &mut State, input: &Value, now: Time) -> Reply {
    let arn = str_field(input, "serviceDeploymentArn")?.to_string();
    let hook_id = str_field(input, "hookId")?.to_string();
    let action = match input["action"].as_str() {
        None => strategy::HookAction::Continue,
        Some(a) => strategy::HookAction::parse(a).ok_or_else(|| {
            ApiError::invalid(format!("action must be CONTINUE or ROLLBACK, not {a}"))
        })?,
    };
    let (service, id) = service_deployment_mut(state, &arn)?;
    if deployment_status(service, &id) != "IN_PROGRESS" {
        return Err(ApiError::invalid(format!(
            "The service deployment {arn} is not IN_PROGRESS."
        )));
    }
    let d = service
        .deployments
        .iter_mut()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::invalid("The service deployment is not IN_PROGRESS."))?;
    let stage = d
        .progress
        .as_ref()
        .map(|p| p.stage().as_str())
        .unwrap_or_default();
    let hook = d
        .progress
        .as_mut()
        .and_then(|p| p.awaiting(&hook_id))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "The lifecycle hook {hook_id} is not awaiting action in service deployment {arn}."
            ))
        })?;
    match action {
        strategy::HookAction::Continue => hook.status = lifecycle::HookStatus::Succeeded,
        strategy::HookAction::Rollback => {
            hook.status = lifecycle::HookStatus::Failed;
            let reason = format!("Rolled back at {stage} by the lifecycle hook {hook_id}.");
            roll_back(service, &id, &reason, now, true);
        }
    }
    Ok(json!({"serviceDeploymentArn": arn}))
}
