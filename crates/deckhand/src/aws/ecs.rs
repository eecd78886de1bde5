//! ECS calls deckhand makes itself. RegisterTaskDefinition sends the task definition exactly
//! as rendered, so fields this SDK version does not model (newer ECS features) survive.

use aws_config::SdkConfig;
use aws_sdk_ecs::types::ContainerDefinition;
use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

use super::types::{DeploymentStatus, RolloutState};
use crate::error::{Error, Result};

/// The ECS edge, built once from the SDK configuration. RegisterTaskDefinition and
/// DescribeTaskDefinition add their interceptors per call, so the plain client is all it holds;
/// it derefs to that client for every other call.
#[derive(Debug, Clone)]
pub struct Ecs {
    client: Client,
}

impl Ecs {
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(Client::new(config))
    }

    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    /// The plain SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl std::ops::Deref for Ecs {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Replaces the serialized request body before it is signed.
#[derive(Debug)]
struct SendBody(Vec<u8>);

impl Intercept for SendBody {
    fn name(&self) -> &'static str {
        "deckhand::SendBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        *request.body_mut() = SdkBody::from(self.0.clone());
        request
            .headers_mut()
            .insert("content-length", self.0.len().to_string());
        Ok(())
    }
}

/// A registered revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub arn: String,
    pub revision: i32,
}

/// RegisterTaskDefinition with `body` (the full request JSON, tags included) as the payload.
pub async fn register_task_definition(ecs: &Ecs, body: &Value) -> Result<Registered> {
    let family = body["family"].as_str().unwrap_or_default();
    let bytes = serde_json::to_vec(body)
        .map_err(|e| Error::failed(format!("cannot encode the task definition: {e}")))?;
    let out = ecs
        .client()
        .register_task_definition()
        // What the SDK requires to build the call; the interceptor sends `body` instead.
        .family(family)
        .container_definitions(ContainerDefinition::builder().build())
        .customize()
        .interceptor(SendBody(bytes))
        .send()
        .await
        .map_err(|e| {
            super::failure(
                &format!("ECS RegisterTaskDefinition for family {family:?}"),
                &e,
            )
        })?;
    let td = out
        .task_definition()
        .ok_or_else(|| Error::failed("ECS RegisterTaskDefinition returned no task definition"))?;
    Ok(Registered {
        arn: td.task_definition_arn().unwrap_or_default().to_string(),
        revision: td.revision(),
    })
}

/// Keeps a copy of the raw response body (to read fields the SDK does not model).
#[derive(Debug, Clone, Default)]
struct KeepBody(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl Intercept for KeepBody {
    fn name(&self) -> &'static str {
        "deckhand::KeepBody"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes.to_vec());
        }
        Ok(())
    }
}

/// DescribeTaskDefinition (with tags) as the raw JSON ECS sent: every field, modelled or not.
pub async fn describe_task_definition(ecs: &Ecs, reference: &str) -> Result<Value> {
    let keep = KeepBody::default();
    ecs.client()
        .describe_task_definition()
        .task_definition(reference)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .customize()
        .interceptor(keep.clone())
        .send()
        .await
        .map_err(|e| super::failure(&format!("ECS DescribeTaskDefinition {reference}"), &e))?;
    let bytes = keep
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::failed(format!(
            "ECS DescribeTaskDefinition returned unreadable JSON: {e}"
        ))
    })
}

/// One service event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub at: f64,
    pub message: String,
}

/// What the watcher reads from DescribeServices.
#[derive(Debug, Clone, Default)]
pub struct ServiceView {
    pub name: String,
    pub arn: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub deployments: Vec<super::types::DeploymentView>,
    /// Newest first, as ECS sends them.
    pub events: Vec<Event>,
    /// Where its tasks run: what a one-off task beside it needs (awsvpc subnets, Fargate).
    pub placement: Placement,
    /// Its deployment strategy (ROLLING, BLUE_GREEN, LINEAR, CANARY), when ECS says.
    pub strategy: Option<String>,
    /// Its deployment controller: ECS (also when ECS names none), CODE_DEPLOY or EXTERNAL.
    pub controller: String,
    /// Its load balancers: (container name, container port), in ECS's order.
    pub load_balancers: Vec<(String, i32)>,
    /// Its task sets (CODE_DEPLOY and EXTERNAL services).
    pub task_sets: Vec<TaskSetView>,
}

/// A task set of a CODE_DEPLOY (or EXTERNAL) service.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskSetView {
    pub id: String,
    /// PRIMARY, ACTIVE or DRAINING.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
}

/// How a service's tasks are launched, copied to one-off tasks run beside it.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub network: Option<aws_sdk_ecs::types::NetworkConfiguration>,
    pub launch_type: Option<aws_sdk_ecs::types::LaunchType>,
    pub capacity_providers: Vec<aws_sdk_ecs::types::CapacityProviderStrategyItem>,
    pub platform_version: Option<String>,
}

/// DescribeServices for one service; an unknown cluster or service is an error saying so.
pub async fn describe_service(
    client: &Client,
    cluster: &str,
    service: &str,
) -> Result<ServiceView> {
    let mut views = describe_services(client, cluster, &[service.to_string()]).await?;
    Ok(views.remove(0))
}

/// The most services one DescribeServices call takes.
pub const DESCRIBE_BATCH: usize = 10;

/// DescribeServices for `services`, in batches of ten, in the order given; an unknown cluster
/// or service is an error naming it.
pub async fn describe_services(
    client: &Client,
    cluster: &str,
    services: &[String],
) -> Result<Vec<ServiceView>> {
    let mut views = Vec::with_capacity(services.len());
    for batch in services.chunks(DESCRIBE_BATCH) {
        let out = client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_cluster_not_found_exception() => Error::failed(format!(
                    "the ECS cluster {cluster:?} does not exist (in this account and region). Check --cluster and --region."
                )),
                _ => super::failure("ECS DescribeServices", &e),
            })?;
        for name in batch {
            let s = out
                .services()
                .iter()
                .find(|s| {
                    s.status() != Some("INACTIVE")
                        && (s.service_name() == Some(name.as_str())
                            || s.service_arn() == Some(name.as_str()))
                })
                .ok_or_else(|| {
                    Error::failed(format!(
                        "the ECS service {name:?} does not exist in cluster {cluster:?}. Check --service."
                    ))
                })?;
            views.push(view_of(s));
        }
    }
    Ok(views)
}

fn view_of(s: &aws_sdk_ecs::types::Service) -> ServiceView {
    let when = |t: Option<&aws_smithy_types::DateTime>| t.map(|d| d.as_secs_f64()).unwrap_or(0.0);
    ServiceView {
        name: s.service_name().unwrap_or_default().to_string(),
        arn: s.service_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        desired: s.desired_count(),
        running: s.running_count(),
        pending: s.pending_count(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| super::types::DeploymentView {
                id: d.id().unwrap_or_default().to_string(),
                status: DeploymentStatus::of(d),
                task_definition: d.task_definition().unwrap_or_default().to_string(),
                rollout_state: RolloutState::of(d),
                rollout_reason: d.rollout_state_reason().map(str::to_string),
                desired: d.desired_count(),
                running: d.running_count(),
                pending: d.pending_count(),
                failed: d.failed_tasks(),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .map(|e| Event {
                id: e.id().unwrap_or_default().to_string(),
                at: when(e.created_at()),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect(),
        placement: Placement {
            network: s.network_configuration().cloned(),
            launch_type: s.launch_type().cloned(),
            capacity_providers: s.capacity_provider_strategy().to_vec(),
            platform_version: s.platform_version().map(str::to_string),
        },
        strategy: s
            .deployment_configuration()
            .and_then(|c| c.strategy())
            .map(|st| st.as_str().to_string()),
        controller: s
            .deployment_controller()
            .map_or("ECS", |c| c.r#type().as_str())
            .to_string(),
        load_balancers: s
            .load_balancers()
            .iter()
            .filter_map(|lb| Some((lb.container_name()?.to_string(), lb.container_port()?)))
            .collect(),
        task_sets: s
            .task_sets()
            .iter()
            .map(|t| TaskSetView {
                id: t.id().unwrap_or_default().to_string(),
                status: t.status().unwrap_or_default().to_string(),
                task_definition: t.task_definition().unwrap_or_default().to_string(),
                desired: t.computed_desired_count(),
                running: t.running_count(),
                pending: t.pending_count(),
            })
            .collect(),
    }
}

/// UpdateService to `task_definition`; returns the id of the deployment it started.
pub async fn update_service(
    client: &Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
) -> Result<String> {
    let out = client
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| super::failure("ECS UpdateService", &e))?;
    out.service()
        .and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| DeploymentStatus::of(d) == DeploymentStatus::Primary)
        })
        .and_then(|d| d.id())
        .map(str::to_string)
        .ok_or_else(|| Error::failed("ECS UpdateService returned no PRIMARY deployment"))
}

/// A stopped task of a deployment, as a person needs to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoppedTask {
    pub arn: String,
    pub reason: String,
    pub stop_code: String,
    /// (container, exit code, container reason)
    pub containers: Vec<(String, Option<i32>, String)>,
}

/// The stopped tasks that `deployment` started.
pub async fn stopped_tasks(
    client: &Client,
    cluster: &str,
    deployment: &str,
) -> Result<Vec<StoppedTask>> {
    let list = client
        .list_tasks()
        .cluster(cluster)
        .started_by(deployment)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .map_err(|e| super::failure("ECS ListTasks", &e))?;
    if list.task_arns().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // DescribeTasks takes at most 100 tasks per call.
    for chunk in list.task_arns().chunks(100) {
        let described = client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| super::failure("ECS DescribeTasks", &e))?;
        out.extend(described.tasks().iter().map(stopped_task));
    }
    Ok(out)
}

/// The ACTIVE revisions of a task definition family, newest first.
pub async fn active_revisions(client: &Client, family: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pages = client
        .list_task_definitions()
        .family_prefix(family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            super::failure(
                &format!("ECS ListTaskDefinitions for family {family:?}"),
                &e,
            )
        })?;
        // familyPrefix also matches longer family names: keep this family's own.
        out.extend(
            page.task_definition_arns()
                .iter()
                .filter(|arn| super::types::family_of(arn) == family)
                .cloned(),
        );
    }
    Ok(out)
}

/// DeregisterTaskDefinition for one revision.
pub async fn deregister_task_definition(client: &Client, arn: &str) -> Result<()> {
    client
        .deregister_task_definition()
        .task_definition(arn)
        .send()
        .await
        .map_err(|e| super::failure(&format!("ECS DeregisterTaskDefinition {arn}"), &e))?;
    Ok(())
}

/// The task definitions of the service's SUCCESSFUL deployments, newest first (of the newest
/// 20), from ListServiceDeployments and DescribeServiceRevisions.
pub async fn successful_task_definitions(
    client: &Client,
    cluster: &str,
    service: &str,
) -> Result<Vec<String>> {
    let mut briefs = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .status(aws_sdk_ecs::types::ServiceDeploymentStatus::Successful)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| super::failure("ECS ListServiceDeployments", &e))?;
        briefs.extend(page.service_deployments().iter().map(|b| {
            (
                b.created_at().map(|t| t.as_secs_f64()).unwrap_or(0.0),
                b.target_service_revision_arn()
                    .unwrap_or_default()
                    .to_string(),
            )
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    briefs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let revisions: Vec<String> = briefs
        .into_iter()
        .map(|(_, arn)| arn)
        .filter(|a| !a.is_empty())
        .take(20)
        .collect();
    if revisions.is_empty() {
        return Ok(Vec::new());
    }
    let described = client
        .describe_service_revisions()
        .set_service_revision_arns(Some(revisions.clone()))
        .send()
        .await
        .map_err(|e| super::failure("ECS DescribeServiceRevisions", &e))?;
    Ok(revisions
        .iter()
        .filter_map(|arn| {
            described
                .service_revisions()
                .iter()
                .find(|r| r.service_revision_arn() == Some(arn.as_str()))
                .and_then(|r| r.task_definition())
                .map(str::to_string)
        })
        .collect())
}

/// What RunTask changes in one container of the task: its command and extra environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverride {
    pub container: String,
    /// Replaces the image's command when `Some`.
    pub command: Option<Vec<String>>,
    /// Added to (or replacing the same names in) the container's environment.
    pub environment: Vec<(String, String)>,
}

/// RunTask of one task of `task_definition` beside a service (`placement`), with `overrides`
/// for its containers; returns the task's ARN.
pub async fn run_task(
    client: &Client,
    cluster: &str,
    task_definition: &str,
    overrides: &[ContainerOverride],
    placement: &Placement,
) -> Result<String> {
    let overrides = aws_sdk_ecs::types::TaskOverride::builder()
        .set_container_overrides(Some(
            overrides
                .iter()
                .map(|o| {
                    let environment = o.environment.iter().map(|(k, v)| {
                        aws_sdk_ecs::types::KeyValuePair::builder()
                            .name(k)
                            .value(v)
                            .build()
                    });
                    aws_sdk_ecs::types::ContainerOverride::builder()
                        .name(&o.container)
                        .set_command(o.command.clone())
                        .set_environment((!o.environment.is_empty()).then(|| environment.collect()))
                        .build()
                })
                .collect(),
        ))
        .build();
    let mut call = client
        .run_task()
        .cluster(cluster)
        .task_definition(task_definition)
        .started_by("deckhand")
        .overrides(overrides)
        .set_network_configuration(placement.network.clone())
        .set_platform_version(placement.platform_version.clone());
    call = if placement.capacity_providers.is_empty() {
        call.set_launch_type(placement.launch_type.clone())
    } else {
        call.set_capacity_provider_strategy(Some(placement.capacity_providers.clone()))
    };
    let out = call
        .send()
        .await
        .map_err(|e| super::failure("ECS RunTask", &e))?;
    if let Some(f) = out.failures().first() {
        return Err(Error::failed(format!(
            "ECS RunTask could not start the task: {} {}",
            f.reason().unwrap_or_default(),
            f.detail().unwrap_or_default()
        )));
    }
    out.tasks()
        .first()
        .and_then(|t| t.task_arn())
        .map(str::to_string)
        .ok_or_else(|| Error::failed("ECS RunTask started no task"))
}

/// One task's state: its last status and, once stopped, why and how each container ended.
pub async fn describe_task(
    client: &Client,
    cluster: &str,
    task: &str,
) -> Result<(String, StoppedTask)> {
    let out = client
        .describe_tasks()
        .cluster(cluster)
        .tasks(task)
        .send()
        .await
        .map_err(|e| super::failure("ECS DescribeTasks", &e))?;
    let t = out
        .tasks()
        .first()
        .ok_or_else(|| Error::failed(format!("ECS does not know the task {task}")))?;
    Ok((
        t.last_status().unwrap_or_default().to_string(),
        stopped_task(t),
    ))
}

fn stopped_task(t: &aws_sdk_ecs::types::Task) -> StoppedTask {
    StoppedTask {
        arn: t.task_arn().unwrap_or_default().to_string(),
        reason: t.stopped_reason().unwrap_or_default().to_string(),
        stop_code: t
            .stop_code()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        containers: t
            .containers()
            .iter()
            .map(|c| {
                (
                    c.name().unwrap_or_default().to_string(),
                    c.exit_code(),
                    c.reason().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    }
}

/// StopTask, with the reason ECS records.
pub async fn stop_task(client: &Client, cluster: &str, task: &str, reason: &str) -> Result<()> {
    client
        .stop_task()
        .cluster(cluster)
        .task(task)
        .reason(reason)
        .send()
        .await
        .map_err(|e| super::failure(&format!("ECS StopTask {task}"), &e))?;
    Ok(())
}

/// TagResource: sets one tag on an ECS resource (a task definition revision here).
pub async fn tag_resource(client: &Client, arn: &str, key: &str, value: &str) -> Result<()> {
    let tag = aws_sdk_ecs::types::Tag::builder()
        .key(key)
        .value(value)
        .build();
    client
        .tag_resource()
        .resource_arn(arn)
        .tags(tag)
        .send()
        .await
        .map_err(|e| super::failure("ECS TagResource", &e))?;
    Ok(())
}

/// A revision's ARN and tags, read through [`describe_task_definition`] (which asks for TAGS).
pub async fn task_definition_tags(
    ecs: &Ecs,
    reference: &str,
) -> Result<(String, Vec<(String, String)>)> {
    let described = describe_task_definition(ecs, reference).await?;
    let arn = described["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap_or(reference)
        .to_string();
    let tags = described["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            (text("key"), text("value"))
        })
        .collect();
    Ok((arn, tags))
}
