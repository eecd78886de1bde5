//! CodeDeploy calls deckhand makes for services with the CODE_DEPLOY controller: finding the
//! deployment group, creating, reading, stopping and continuing deployments. No decisions.

use aws_config::SdkConfig;
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentStatus, DeploymentWaitType, RevisionLocation, RevisionLocationType,
};
pub use aws_sdk_codedeploy::Client;

use crate::error::{Error, Result};

/// An SDK enum's name, or empty when CodeDeploy sent none.
fn text(value: Option<&impl AsRef<str>>) -> String {
    value.map(|v| v.as_ref().to_string()).unwrap_or_default()
}

/// The CodeDeploy client.
pub fn client(config: &SdkConfig) -> Client {
    Client::new(config)
}

/// A deployment group of the ECS compute platform, as deckhand needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub application: String,
    pub name: String,
    /// (cluster name, service name) of each ECS service it deploys.
    pub services: Vec<(String, String)>,
    pub config: String,
    /// Whether CodeDeploy rolls back a failed deployment by itself.
    pub auto_rollback: bool,
    /// `deploymentReadyOption`: (actionOnTimeout, waitTimeInMinutes).
    pub ready_wait: Option<(String, i32)>,
    /// `terminateBlueInstancesOnDeploymentSuccess.terminationWaitTimeInMinutes`.
    pub termination_wait: i32,
}

/// The statuses of a deployment that is not over.
pub const ACTIVE: [&str; 5] = ["Created", "Queued", "InProgress", "Baking", "Ready"];

fn group_of(g: &aws_sdk_codedeploy::types::DeploymentGroupInfo) -> Group {
    let bg = g.blue_green_deployment_configuration();
    Group {
        application: g.application_name().unwrap_or_default().to_string(),
        name: g.deployment_group_name().unwrap_or_default().to_string(),
        services: g
            .ecs_services()
            .iter()
            .map(|s| {
                (
                    s.cluster_name().unwrap_or_default().to_string(),
                    s.service_name().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        config: g
            .deployment_config_name()
            .unwrap_or("CodeDeployDefault.ECSAllAtOnce")
            .to_string(),
        auto_rollback: g.auto_rollback_configuration().is_some_and(|a| a.enabled()),
        ready_wait: bg
            .and_then(|b| b.deployment_ready_option())
            .map(|r| (text(r.action_on_timeout()), r.wait_time_in_minutes())),
        termination_wait: bg
            .and_then(|b| b.terminate_blue_instances_on_deployment_success())
            .map_or(0, |t| t.termination_wait_time_in_minutes()),
    }
}

/// GetDeploymentGroup; an unknown application or group is an error naming it.
pub async fn group(client: &Client, application: &str, name: &str) -> Result<Group> {
    let out = client
        .get_deployment_group()
        .application_name(application)
        .deployment_group_name(name)
        .send()
        .await
        .map_err(|e| {
            let missing = e.as_service_error().and_then(|s| {
                if s.is_application_does_not_exist_exception() {
                    Some(format!("CodeDeploy has no application {application}"))
                } else if s.is_deployment_group_does_not_exist_exception() {
                    Some(format!(
                        "CodeDeploy application {application} has no deployment group {name}"
                    ))
                } else {
                    None
                }
            });
            match missing {
                Some(why) => Error::failed(format!(
                    "{why} (in this account and region): check --codedeploy-application and \
                     --codedeploy-deployment-group, or deckhand.toml's codedeploy tables (or \
                     leave both out to find the group from the service); nothing was changed"
                )),
                None => super::failure("CodeDeploy GetDeploymentGroup", &e),
            }
        })?;
    out.deployment_group_info()
        .map(group_of)
        .ok_or_else(|| Error::failed("CodeDeploy GetDeploymentGroup returned no group"))
}

/// Every deployment group of every ECS application in the account and region (ListApplications,
/// ListDeploymentGroups, BatchGetDeploymentGroups).
pub async fn groups(client: &Client) -> Result<Vec<Group>> {
    let mut applications = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_applications()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| super::failure("CodeDeploy ListApplications", &e))?;
        applications.extend(out.applications().iter().cloned());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut found = Vec::new();
    for app in applications {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = client
                .list_deployment_groups()
                .application_name(&app)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| super::failure("CodeDeploy ListDeploymentGroups", &e))?;
            names.extend(out.deployment_groups().iter().cloned());
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        for batch in names.chunks(25) {
            let out = client
                .batch_get_deployment_groups()
                .application_name(&app)
                .set_deployment_group_names(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| super::failure("CodeDeploy BatchGetDeploymentGroups", &e))?;
            found.extend(
                out.deployment_groups_info()
                    .iter()
                    .filter(|g| {
                        g.compute_platform().map(|p| p.as_str()) == Some("ECS")
                            || !g.ecs_services().is_empty()
                    })
                    .map(group_of),
            );
        }
    }
    Ok(found)
}

/// CreateDeployment of `appspec` (JSON) to `group`; returns the deployment id.
pub async fn create_deployment(
    client: &Client,
    group: &Group,
    appspec: &str,
    description: &str,
) -> Result<String> {
    use sha2::Digest;
    let sha = hex(&sha2::Sha256::digest(appspec.as_bytes()));
    let revision = RevisionLocation::builder()
        .revision_type(RevisionLocationType::AppSpecContent)
        .app_spec_content(
            AppSpecContent::builder()
                .content(appspec)
                .sha256(sha)
                .build(),
        )
        .build();
    let out = client
        .create_deployment()
        .application_name(&group.application)
        .deployment_group_name(&group.name)
        .revision(revision)
        .description(description)
        // Not retried by the SDK: a try whose answer was lost may have started a deployment,
        // which the caller looks for before trying again.
        .customize()
        .config_override(
            aws_sdk_codedeploy::config::Builder::default()
                .retry_config(aws_config::retry::RetryConfig::disabled()),
        )
        .send()
        .await
        .map_err(|e| super::failure("CodeDeploy CreateDeployment", &e))?;
    out.deployment_id()
        .map(str::to_string)
        .ok_or_else(|| Error::failed("CodeDeploy CreateDeployment returned no deployment id"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CodeDeploy deployment as deckhand judges it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deployment {
    pub id: String,
    /// Created, Queued, InProgress, Baking, Ready, Succeeded, Failed, Stopped.
    pub status: String,
    /// `errorInformation`: (code, message).
    pub error: Option<(String, String)>,
    /// `rollbackInfo.rollbackDeploymentId`: the deployment that undoes this one.
    pub rolled_back_by: Option<String>,
    /// `rollbackInfo.rollbackTriggeringDeploymentId`: the one this deployment undoes.
    pub rollback_of: Option<String>,
    pub rollback_message: Option<String>,
    /// user, autoscaling, codeDeployRollback, …
    pub creator: String,
    pub created_at: f64,
    pub description: String,
    /// The task definition its AppSpec deploys (JSON AppSpecs; `None` for others).
    pub task_definition: Option<String>,
}

/// GetDeployment.
pub async fn deployment(client: &Client, id: &str) -> Result<Deployment> {
    let out = client
        .get_deployment()
        .deployment_id(id)
        .send()
        .await
        .map_err(|e| super::failure("CodeDeploy GetDeployment", &e))?;
    let d = out
        .deployment_info()
        .ok_or_else(|| Error::failed("CodeDeploy GetDeployment returned no deployment"))?;
    Ok(view_of(d))
}

fn view_of(d: &aws_sdk_codedeploy::types::DeploymentInfo) -> Deployment {
    let rollback = d.rollback_info();
    Deployment {
        id: d.deployment_id().unwrap_or_default().to_string(),
        status: text(d.status()),
        error: d
            .error_information()
            .map(|e| (text(e.code()), e.message().unwrap_or_default().to_string())),
        rolled_back_by: rollback
            .and_then(|r| r.rollback_deployment_id())
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        rollback_of: rollback
            .and_then(|r| r.rollback_triggering_deployment_id())
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        rollback_message: rollback
            .and_then(|r| r.rollback_message())
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        creator: text(d.creator()),
        created_at: d.create_time().map_or(0.0, |t| t.as_secs_f64()),
        description: d.description().unwrap_or_default().to_string(),
        task_definition: d
            .revision()
            .and_then(|r| r.app_spec_content())
            .and_then(|c| c.content())
            .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            .and_then(|v| {
                v.pointer("/Resources/0/TargetService/Properties/TaskDefinition")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            }),
    }
}

/// BatchGetDeployments of `ids`, 25 a call.
async fn batch(client: &Client, ids: &[String]) -> Result<Vec<Deployment>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(25) {
        let out = client
            .batch_get_deployments()
            .set_deployment_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| super::failure("CodeDeploy BatchGetDeployments", &e))?;
        found.extend(out.deployments_info().iter().map(view_of));
    }
    Ok(found)
}

/// The group's deployments created since `since` (seconds since the epoch), in any status.
pub async fn recent(client: &Client, group: &Group, since: f64) -> Result<Vec<Deployment>> {
    let range = aws_sdk_codedeploy::types::TimeRange::builder()
        .start(aws_smithy_types::DateTime::from_secs_f64(since))
        .build();
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_deployments()
            .application_name(&group.application)
            .deployment_group_name(&group.name)
            .create_time_range(range.clone())
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| super::failure("CodeDeploy ListDeployments", &e))?;
        ids.extend(out.deployments().iter().cloned());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    batch(client, &ids).await
}

/// One lifecycle event of the ECS target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub name: String,
    /// Pending, InProgress, Succeeded, Failed, Skipped, Unknown.
    pub status: String,
    /// `diagnostics`: (errorCode, message).
    pub diagnostics: Option<(String, String)>,
}

/// One task set of the ECS target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSet {
    pub id: String,
    /// Blue (the original) or Green (the replacement).
    pub label: String,
    pub desired: i64,
    pub running: i64,
    pub pending: i64,
    pub status: String,
    pub traffic: f64,
}

/// The ECS target of a deployment (GetDeploymentTarget).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub status: String,
    pub events: Vec<LifecycleEvent>,
    pub task_sets: Vec<TaskSet>,
}

/// GetDeploymentTarget for the ECS service `cluster:service`; `None` while CodeDeploy has not
/// made the target yet.
pub async fn target(client: &Client, id: &str, target_id: &str) -> Result<Option<Target>> {
    let out = match client
        .get_deployment_target()
        .deployment_id(id)
        .target_id(target_id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_deployment_target_does_not_exist_exception()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(super::failure("CodeDeploy GetDeploymentTarget", &e)),
    };
    let Some(t) = out.deployment_target().and_then(|t| t.ecs_target()) else {
        return Ok(None);
    };
    Ok(Some(Target {
        status: text(t.status()),
        events: t
            .lifecycle_events()
            .iter()
            .map(|e| LifecycleEvent {
                name: e.lifecycle_event_name().unwrap_or_default().to_string(),
                status: text(e.status()),
                diagnostics: e.diagnostics().map(|d| {
                    (
                        text(d.error_code()),
                        d.message().unwrap_or_default().to_string(),
                    )
                }),
            })
            .collect(),
        task_sets: t
            .task_sets_info()
            .iter()
            .map(|s| TaskSet {
                id: s.identifer().unwrap_or_default().to_string(),
                label: text(s.task_set_label()),
                desired: s.desired_count(),
                running: s.running_count(),
                pending: s.pending_count(),
                status: s.status().unwrap_or_default().to_string(),
                traffic: s.traffic_weight(),
            })
            .collect(),
    }))
}

/// ListDeployments of `group` in `statuses` (all when empty), newest first.
pub async fn list(client: &Client, group: &Group, statuses: &[&str]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_deployments()
            .application_name(&group.application)
            .deployment_group_name(&group.name)
            .set_include_only_statuses((!statuses.is_empty()).then(|| {
                statuses
                    .iter()
                    .map(|s| DeploymentStatus::from(*s))
                    .collect()
            }))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| super::failure("CodeDeploy ListDeployments", &e))?;
        ids.extend(out.deployments().iter().cloned());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(ids)
}

/// StopDeployment, with CodeDeploy's rollback when `rollback`.
pub async fn stop(client: &Client, id: &str, rollback: bool) -> Result<()> {
    client
        .stop_deployment()
        .deployment_id(id)
        .auto_rollback_enabled(rollback)
        .send()
        .await
        .map_err(|e| super::failure("CodeDeploy StopDeployment", &e))?;
    Ok(())
}

/// ContinueDeployment of a deployment waiting to re-route traffic (READY_WAIT).
pub async fn continue_ready(client: &Client, id: &str) -> Result<()> {
    client
        .continue_deployment()
        .deployment_id(id)
        .deployment_wait_type(DeploymentWaitType::ReadyWait)
        .send()
        .await
        .map_err(|e| super::failure("CodeDeploy ContinueDeployment", &e))?;
    Ok(())
}

/// How the deployment config shifts traffic, in words ("canary: 10% then the rest after 5
/// minutes"); `None` if it cannot be read (only shown, never judged).
pub async fn traffic_routing(client: &Client, config: &str) -> Option<String> {
    let out = client
        .get_deployment_config()
        .deployment_config_name(config)
        .send()
        .await
        .ok()?;
    let routing = out.deployment_config_info()?.traffic_routing_config()?;
    let kind = routing.r#type()?.as_str();
    Some(match kind {
        "TimeBasedCanary" => {
            let c = routing.time_based_canary()?;
            format!(
                "canary: {}% first, the rest after {} minute{}",
                c.canary_percentage(),
                c.canary_interval(),
                if c.canary_interval() == 1 { "" } else { "s" }
            )
        }
        "TimeBasedLinear" => {
            let l = routing.time_based_linear()?;
            format!(
                "linear: {}% more every {} minute{}",
                l.linear_percentage(),
                l.linear_interval(),
                if l.linear_interval() == 1 { "" } else { "s" }
            )
        }
        _ => "all at once".to_string(),
    })
}

/// How far back a service's CodeDeploy history is read (CodeDeploy keeps deployments for a
/// year at most).
const HISTORY_WINDOW: f64 = 90.0 * 24.0 * 3600.0;

/// The task definitions of the group's succeeded deployments (of the last 90 days), newest
/// first; those whose AppSpec names none (YAML) are left out.
pub async fn succeeded_task_definitions(client: &Client, group: &Group) -> Result<Vec<String>> {
    let since = crate::clock::now() - HISTORY_WINDOW;
    let mut found: Vec<Deployment> = recent(client, group, since)
        .await?
        .into_iter()
        .filter(|d| d.status == "Succeeded" && d.task_definition.is_some())
        .collect();
    found.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
    Ok(found
        .into_iter()
        .filter_map(|d| d.task_definition)
        .collect())
}
