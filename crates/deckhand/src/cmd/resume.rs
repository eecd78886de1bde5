//! `deckhand continue`: the service's deployment paused at a PAUSE lifecycle hook goes on to
//! its next stage (ContinueServiceDeployment CONTINUE), or back (ROLLBACK); a deploy waiting
//! on it then reaches its verdict.

use serde::Serialize;

use crate::aws::{self, ecs, sdeploy};
use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::settings::ContinueSettings;

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Continued {
    /// continued | rolling-back
    pub result: String,
    pub service: String,
    pub service_deployment_arn: String,
    pub hook_id: String,
    /// The lifecycle stage it was paused at.
    pub stage: String,
}

/// Acts on the paused hook: 0 once ECS took the action, 1 (nothing changed) when no deployment
/// of the service is paused.
pub async fn run(r: &Reporter, region: Option<&str>, s: &ContinueSettings) -> Result<()> {
    let config = aws::config::load(region).await?;
    let client = ecs::Ecs::new(&config);
    let service = &s.service;
    let Some(sd) = sdeploy::current(&client, &s.cluster, service).await? else {
        return Err(Error::failed(format!(
            "no service deployment of {service} in cluster {} is in progress: nothing to \
             continue, nothing was changed",
            s.cluster
        )));
    };
    let stage = sd.stage.clone().unwrap_or_default();
    let Some(hook) = sd.hooks.iter().find(|h| h.status == "AWAITING_ACTION") else {
        return Err(Error::failed(format!(
            "{service}'s service deployment {} is {} at {}, not paused at a hook awaiting \
             action: nothing was changed",
            sd.arn,
            sd.status,
            if stage.is_empty() { "no stage" } else { &stage }
        )));
    };
    let action = if s.rollback { "ROLLBACK" } else { "CONTINUE" };
    r.stage(format!("{service}: {action} at {stage} (hook {})", hook.id));
    sdeploy::resume(&client, &sd.arn, &hook.id, s.rollback).await?;
    let result = Continued {
        result: if s.rollback {
            "rolling-back"
        } else {
            "continued"
        }
        .into(),
        service: service.clone(),
        service_deployment_arn: sd.arn.clone(),
        hook_id: hook.id.clone(),
        stage,
    };
    r.verdict(format!(
        "{}: {} {}",
        result.result, service, result.service_deployment_arn
    ));
    r.result(
        &result,
        &format!("{} {}", result.result, result.service_deployment_arn),
    );
    Ok(())
}
