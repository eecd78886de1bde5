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
    /// The CodeDeploy deployment acted on (CODE_DEPLOY services).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub codedeploy_deployment_id: String,
}

/// Acts on the paused hook: 0 once ECS took the action, 1 (nothing changed) when no deployment
/// of the service is paused.
pub async fn run(r: &Reporter, region: Option<&str>, s: &ContinueSettings) -> Result<()> {
    let config = aws::config::load(region).await?;
    let client = ecs::Ecs::new(&config);
    let service = &s.service;
    let view = ecs::describe_service(&client, &s.cluster, service).await?;
    if view.controller == "CODE_DEPLOY" {
        return codedeploy(r, &config, s, &view).await;
    }
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
        codedeploy_deployment_id: String::new(),
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

/// How long `deckhand continue` keeps trying CodeDeploy through throttling.
const ACTION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// A CODE_DEPLOY service's deployment waiting before production traffic is re-routed (status
/// Ready) goes on (ContinueDeployment) or back (StopDeployment with CodeDeploy's rollback).
async fn codedeploy(
    r: &Reporter,
    config: &aws_config::SdkConfig,
    s: &ContinueSettings,
    view: &ecs::ServiceView,
) -> Result<()> {
    use crate::aws::codedeploy as cd;
    let client = cd::client(config);
    let service = &s.service;
    let group = crate::deploy::codedeploy::group(&client, &s.cluster, view, &s.codedeploy).await?;
    let ready = cd::list(&client, &group, &["Ready"]).await?;
    let Some(id) = ready.first() else {
        // Why not: another status, or none in progress.
        let active = cd::list(&client, &group, &cd::ACTIVE).await?;
        return Err(Error::failed(match active.first() {
            Some(id) => format!(
                "{service}'s CodeDeploy deployment {id} is not waiting for traffic \
                 re-routing (status Ready): nothing to continue, nothing was changed"
            ),
            None => format!(
                "no CodeDeploy deployment of {service} ({}/{}) is in progress: nothing to \
                 continue, nothing was changed",
                group.application, group.name
            ),
        }));
    };
    if s.rollback {
        r.stage(format!(
            "{service}: StopDeployment of {id} with CodeDeploy's rollback"
        ));
    } else {
        r.stage(format!(
            "{service}: ContinueDeployment of {id}: production traffic goes to the replacement \
             task set"
        ));
    }
    // Tried again through throttling; an answer that was lost is told by the deployment
    // having left Ready.
    let deadline = tokio::time::Instant::now() + ACTION_PATIENCE;
    let what = format!(
        "{service}: CodeDeploy {}",
        if s.rollback {
            "StopDeployment"
        } else {
            "ContinueDeployment"
        }
    );
    let acted = crate::deploy::persist::until(r, deadline, &what, || async {
        if s.rollback {
            cd::stop(&client, id, true).await
        } else {
            cd::continue_ready(&client, id).await
        }
    })
    .await;
    if let Err(e) = acted {
        let status = cd::deployment(&client, id).await.map(|d| d.status);
        let took = match status.as_deref() {
            Ok("Stopped") => s.rollback,
            Ok("Ready") | Err(_) => false,
            Ok(_) => !s.rollback,
        };
        if !took {
            return Err(e);
        }
    }
    let result = Continued {
        result: if s.rollback {
            "rolling-back"
        } else {
            "continued"
        }
        .into(),
        service: service.clone(),
        service_deployment_arn: String::new(),
        hook_id: String::new(),
        stage: "Ready".into(),
        codedeploy_deployment_id: id.clone(),
    };
    r.verdict(format!("{}: {} {id}", result.result, service));
    r.result(&result, &format!("{} {id}", result.result));
    Ok(())
}
