//! The sandbox's ECS state: clusters, task definitions, services, deployments and tasks, and
//! how each renders in the shapes the ECS API documents.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::Time;

/// How the sandbox reports what it runs, where ECS leaves room: behaviours a client has to
/// cope with, chosen at start (`Options::mode`) or through `/_sandbox/mode`. Unlike the faults
/// they are not random; every answer follows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mode {
    /// The ECS API reference documents its results as eventually consistent, and a
    /// deployment's `runningCount` as its tasks in the RUNNING state: nothing promises the
    /// count moves before the rollout does. With this set, the tasks of a deployment that is
    /// still IN_PROGRESS are counted as pending, not running, in DescribeServices (the
    /// deployment's counts and the service's) and DescribeServiceDeployments, until the
    /// rollout ends (COMPLETED or FAILED). DescribeTasks still shows each task as it is.
    pub late_running_count: bool,
    /// An ECS from before the ServiceDeployments API (an older region or emulator): List and
    /// DescribeServiceDeployments, DescribeServiceRevisions, Stop and
    /// ContinueServiceDeployment answer UnknownOperationException, as an endpoint without an
    /// operation does.
    pub without_service_deployments: bool,
    /// How many failed tasks of a replacement task set end CodeDeploy's Install event as
    /// failed. CodeDeploy's references leave it unsaid; by default the ECS circuit breaker's
    /// threshold for the set's desired count. A large limit leaves a crashing replacement to
    /// whoever watches the deployment and stops it.
    pub replacement_failure_limit: Option<u32>,
}

/// The operations [`Mode::without_service_deployments`] takes away.
pub const SERVICE_DEPLOYMENT_OPERATIONS: [&str; 5] = [
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "DescribeServiceRevisions",
    "StopServiceDeployment",
    "ContinueServiceDeployment",
];

/// The circuit breaker's failed-task threshold for `desired` tasks, as AWS documents it:
/// half the desired count, rounded up, at least 3 and at most 200.
pub fn breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// Most events a service keeps, newest first, as ECS does.
pub const MAX_EVENTS: usize = 100;

/// Where the sandbox says it is.
#[derive(Debug, Clone)]
pub struct Place {
    pub region: String,
    pub account: String,
}

impl Place {
    pub fn arn(&self, kind: &str, rest: &str) -> String {
        format!("arn:aws:ecs:{}:{}:{kind}/{rest}", self.region, self.account)
    }
}

#[derive(Debug, Clone)]
pub struct TaskDefinition {
    pub family: String,
    pub revision: u32,
    pub arn: String,
    pub active: bool,
    /// The registered input, as given (less read-only fields), for DescribeTaskDefinition.
    pub body: Value,
    pub tags: Value,
    pub registered_at: Time,
    pub deregistered_at: Option<Time>,
}

impl TaskDefinition {
    pub fn to_json(&self) -> Value {
        let mut v = self.body.clone();
        let obj = v.as_object_mut().expect("task definitions are objects");
        obj.insert("taskDefinitionArn".into(), json!(self.arn));
        obj.insert("family".into(), json!(self.family));
        obj.insert("revision".into(), json!(self.revision));
        obj.insert(
            "status".into(),
            json!(if self.active { "ACTIVE" } else { "INACTIVE" }),
        );
        obj.insert("registeredAt".into(), json!(self.registered_at));
        obj.insert("registeredBy".into(), json!("arn:aws:iam::sandbox:root"));
        obj.insert("compatibilities".into(), json!(["EC2", "FARGATE"]));
        obj.entry("requiresAttributes").or_insert(json!([]));
        if let Some(t) = self.deregistered_at {
            obj.insert("deregisteredAt".into(), json!(t));
        }
        v
    }

    /// The container definitions of this revision.
    pub fn containers(&self) -> Vec<ContainerDef> {
        let task_memory = self.body["memory"].as_str().and_then(|m| m.parse().ok());
        self.body["containerDefinitions"]
            .as_array()
            .map(|defs| {
                defs.iter()
                    .map(|d| ContainerDef::from_json(d, task_memory))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Memory (MiB) and cpu units the task asks for: task level, else the containers' sum.
    pub fn demand(&self) -> (u64, u64) {
        let parse = |v: &Value| {
            v.as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| v.as_u64())
        };
        let containers = self.containers();
        let memory = parse(&self.body["memory"])
            .unwrap_or_else(|| containers.iter().map(|c| c.memory.unwrap_or(0)).sum());
        let cpu =
            parse(&self.body["cpu"]).unwrap_or_else(|| containers.iter().map(|c| c.cpu).sum());
        (memory, cpu)
    }
}

/// The parts of a container definition the sandbox runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDef {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub command: Vec<String>,
    pub entry_point: Vec<String>,
    pub environment: Vec<(String, String)>,
    /// Hard limit in MiB.
    pub memory: Option<u64>,
    /// Soft limit in MiB (`memoryReservation`).
    pub memory_reservation: Option<u64>,
    /// Seconds between SIGTERM and SIGKILL when stopping (`stopTimeout`, default 30).
    pub stop_timeout: u64,
    pub cpu: u64,
    pub health_check: Option<HealthCheck>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub retries: u64,
    pub start_period: u64,
}

impl ContainerDef {
    fn from_json(v: &Value, task_memory: Option<u64>) -> Self {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let health_check = v
            .get("healthCheck")
            .filter(|h| h.is_object())
            .map(|h| HealthCheck {
                command: strings(&h["command"]),
                interval: h["interval"].as_u64().unwrap_or(30),
                timeout: h["timeout"].as_u64().unwrap_or(5),
                retries: h["retries"].as_u64().unwrap_or(3),
                start_period: h["startPeriod"].as_u64().unwrap_or(0),
            });
        ContainerDef {
            name: v["name"].as_str().unwrap_or_default().to_string(),
            image: v["image"].as_str().unwrap_or_default().to_string(),
            essential: v["essential"].as_bool().unwrap_or(true),
            command: strings(&v["command"]),
            entry_point: strings(&v["entryPoint"]),
            environment: v["environment"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some((
                                e["name"].as_str()?.to_string(),
                                e["value"].as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            memory: v["memory"].as_u64().or(if v["memoryReservation"].is_u64() {
                None
            } else {
                task_memory
            }),
            memory_reservation: v["memoryReservation"].as_u64(),
            stop_timeout: v["stopTimeout"].as_u64().unwrap_or(30).min(120),
            cpu: v["cpu"].as_u64().unwrap_or(0),
            health_check,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Primary,
    Active,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    InProgress,
    Completed,
    Failed,
}

impl Rollout {
    pub fn as_str(self) -> &'static str {
        match self {
            Rollout::InProgress => "IN_PROGRESS",
            Rollout::Completed => "COMPLETED",
            Rollout::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: String,
    pub desired_count: u32,
    pub failed_tasks: u32,
    pub rollout: Rollout,
    pub rollout_reason: String,
    pub created_at: Time,
    pub updated_at: Time,
    /// Set on the deployment the circuit breaker started to undo the named one.
    pub rollback_of: Option<String>,
    /// The service's strategy configuration as this deployment started.
    pub config: crate::strategy::Config,
    /// Where a BLUE_GREEN, LINEAR or CANARY deployment is in its lifecycle (None: ROLLING).
    pub progress: Option<crate::lifecycle::Progress>,
    /// Alarms of `config.alarms` seen in ALARM while this deployment was watched.
    pub triggered_alarms: Vec<String>,
}

/// What ListServiceDeployments says of a deployment, and why (pure). `over` is true once the
/// deployment has left the service's deployment list.
pub fn service_deployment_status(
    d: &Deployment,
    rollback: Option<&Deployment>,
    over: bool,
) -> (&'static str, String) {
    if let Some(p) = &d.progress {
        return p.status();
    }
    match (d.rollout, rollback) {
        (Rollout::Completed, _) => ("SUCCESSFUL", d.rollout_reason.clone()),
        (Rollout::Failed, Some(r)) => match r.rollout {
            Rollout::Completed => ("ROLLBACK_SUCCESSFUL", d.rollout_reason.clone()),
            Rollout::Failed => ("ROLLBACK_FAILED", r.rollout_reason.clone()),
            Rollout::InProgress => ("ROLLBACK_IN_PROGRESS", d.rollout_reason.clone()),
        },
        (Rollout::Failed, None) => ("STOPPED", d.rollout_reason.clone()),
        (Rollout::InProgress, _) if over => ("STOPPED", "Superseded by a newer deployment.".into()),
        (Rollout::InProgress, _) => ("IN_PROGRESS", d.rollout_reason.clone()),
    }
}

/// True for the service deployment statuses the developer guide calls ongoing (or pending).
pub fn is_ongoing(status: &str) -> bool {
    matches!(
        status,
        "PENDING"
            | "IN_PROGRESS"
            | "STOP_REQUESTED"
            | "ROLLBACK_REQUESTED"
            | "ROLLBACK_IN_PROGRESS"
    )
}

/// `deploymentCircuitBreaker.status` of a service deployment.
fn breaker_status(enable: bool, d: &Deployment) -> &'static str {
    let tripped = d.failed_tasks >= breaker_threshold(d.desired_count);
    match &d.progress {
        _ if !enable => "DISABLED",
        Some(_) if tripped => "TRIGGERED",
        Some(p) if p.active() => "MONITORING",
        Some(_) => "MONITORING_COMPLETE",
        None if d.rollout == Rollout::Failed && tripped => "TRIGGERED",
        None if d.rollout == Rollout::InProgress => "MONITORING",
        None => "MONITORING_COMPLETE",
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub arn: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub maximum_percent: u32,
    pub minimum_healthy_percent: u32,
    pub breaker: CircuitBreaker,
    /// `strategy`, bake time, linear/canary steps, lifecycle hooks and alarms.
    pub strategy: crate::strategy::Config,
    pub deployments: Vec<Deployment>,
    /// Newest first.
    pub events: VecDeque<ServiceEvent>,
    pub created_at: Time,
    pub active: bool,
    pub tags: Value,
    /// Deployments that are over (completed and replaced, or failed), newest last, for
    /// ListServiceDeployments.
    pub history: Vec<Deployment>,
    /// `deploymentController.type`: ECS deploys with `deployments`, the others with
    /// `task_sets`.
    pub controller: crate::taskset::Controller,
    /// `loadBalancers` as given (`[{targetGroupArn, containerName, containerPort}]`).
    pub load_balancers: Value,
    /// The task sets of a CODE_DEPLOY or EXTERNAL service.
    pub task_sets: Vec<crate::taskset::TaskSet>,
}

#[derive(Debug, Clone)]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: Time,
    pub message: String,
}

impl Service {
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary)
    }

    /// The number that names a deployment in service-deployment and revision ARNs.
    fn deployment_number(id: &str) -> &str {
        id.rsplit('/').next().unwrap_or(id)
    }

    /// `arn:aws:ecs:…:service-deployment/<cluster>/<service>/<n>` for a deployment id.
    pub fn deployment_arn(&self, id: &str) -> String {
        format!(
            "{}/{}",
            self.arn.replace(":service/", ":service-deployment/"),
            Self::deployment_number(id)
        )
    }

    fn revision_arn(&self, id: &str) -> String {
        format!(
            "{}/{}",
            self.arn.replace(":service/", ":service-revision/"),
            Self::deployment_number(id)
        )
    }

    /// Every deployment this service has had that is listed on its own (rollbacks are folded
    /// into the deployment they undo), newest first, with whether it is over.
    fn listed_deployments(&self) -> Vec<(&Deployment, bool)> {
        let mut all: Vec<(&Deployment, bool)> = self
            .deployments
            .iter()
            .map(|d| (d, false))
            .chain(self.history.iter().map(|d| (d, true)))
            .filter(|(d, _)| d.rollback_of.is_none())
            .collect();
        all.sort_by(|a, b| b.0.created_at.total_cmp(&a.0.created_at));
        all
    }

    fn rollback_for(&self, id: &str) -> Option<&Deployment> {
        self.deployments
            .iter()
            .chain(self.history.iter())
            .find(|d| d.rollback_of.as_deref() == Some(id))
    }

    /// The DescribeServiceRevisions entry for the revision named by `arn` (every deployment,
    /// rollbacks included, has one).
    pub fn service_revision(&self, arn: &str) -> Option<Value> {
        let d = self
            .deployments
            .iter()
            .chain(self.history.iter())
            .find(|d| self.revision_arn(&d.id) == arn)?;
        Some(json!({
            "serviceRevisionArn": arn,
            "serviceArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinition": d.task_definition,
            "launchType": "EC2",
            "createdAt": d.created_at,
        }))
    }

    /// Brief entries for ListServiceDeployments, filtered by status when `statuses` is not empty.
    pub fn service_deployments_brief(&self, statuses: &[String]) -> Vec<Value> {
        self.listed_deployments()
            .into_iter()
            .filter_map(|(d, over)| {
                let over = over || d.status != DeploymentStatus::Primary;
                let (status, reason) = service_deployment_status(d, self.rollback_for(&d.id), over);
                if !statuses.is_empty() && !statuses.iter().any(|s| s == status) {
                    return None;
                }
                let mut v = json!({
                    "serviceDeploymentArn": self.deployment_arn(&d.id),
                    "serviceArn": self.arn,
                    "clusterArn": self.cluster_arn,
                    "createdAt": d.created_at,
                    "startedAt": d.created_at,
                    "targetServiceRevisionArn": self.revision_arn(&d.id),
                    "status": status,
                    "statusReason": reason,
                });
                if !is_ongoing(status) {
                    v["finishedAt"] = json!(d.updated_at);
                }
                Some(v)
            })
            .collect()
    }

    /// The full DescribeServiceDeployments entry for the deployment named by `arn`, its task
    /// counts as `mode` reports them.
    pub fn service_deployment(
        &self,
        arn: &str,
        tasks: &BTreeMap<String, Task>,
        mode: Mode,
    ) -> Option<Value> {
        let (d, over) = self
            .listed_deployments()
            .into_iter()
            .find(|(d, _)| self.deployment_arn(&d.id) == arn)?;
        let rollback = self.rollback_for(&d.id);
        let over = over || d.status != DeploymentStatus::Primary;
        let (status, reason) = service_deployment_status(d, rollback, over);
        let counts = |dep: &Deployment| {
            let mine = tasks
                .values()
                .filter(|t| t.started_by == dep.id && t.is_live());
            let running = mine
                .clone()
                .filter(|t| self.reported_status(t, mode) == "RUNNING")
                .count();
            (running, mine.count() - running)
        };
        let (running, pending) = counts(d);
        let progress = d.progress.as_ref();
        // Traffic weights, for the strategies that shift traffic: back at 0 once rolled back.
        let (production, test) = match progress {
            Some(p) if p.rollback.is_some() => (Some(0.0), Some(0.0)),
            Some(p) => (Some(p.production_weight), Some(p.test_weight)),
            None => (None, None),
        };
        let source = match progress {
            Some(p) => p.source.as_ref().and_then(|id| {
                self.deployments
                    .iter()
                    .chain(self.history.iter())
                    .find(|o| &o.id == id)
            }),
            None => self
                .deployments
                .iter()
                .chain(self.history.iter())
                .filter(|o| {
                    o.id != d.id && o.created_at < d.created_at && o.rollout == Rollout::Completed
                })
                .max_by(|a, b| a.created_at.total_cmp(&b.created_at)),
        };
        let sources: Vec<Value> = source
            .map(|o| {
                let (r, p) = counts(o);
                let mut v = json!({"arn": self.revision_arn(&o.id), "requestedTaskCount": o.desired_count,
                       "runningTaskCount": r, "pendingTaskCount": p});
                if let (Some(prod), Some(test)) = (production, test) {
                    v["requestedProductionTrafficWeight"] = json!(100.0 - prod);
                    v["requestedTestTrafficWeight"] = json!(100.0 - test);
                }
                v
            })
            .into_iter()
            .collect();
        let mut v = json!({
            "serviceDeploymentArn": arn,
            "serviceArn": self.arn,
            "clusterArn": self.cluster_arn,
            "createdAt": d.created_at,
            "startedAt": d.created_at,
            "updatedAt": d.updated_at,
            "sourceServiceRevisions": sources,
            "targetServiceRevision": {"arn": self.revision_arn(&d.id), "requestedTaskCount": d.desired_count,
                                      "runningTaskCount": running, "pendingTaskCount": pending},
            "status": status,
            "statusReason": reason,
            "deploymentConfiguration": self.deployment_configuration(&d.config),
            "deploymentCircuitBreaker": {
                "status": breaker_status(self.breaker.enable, d),
                "failureCount": d.failed_tasks,
                "threshold": breaker_threshold(d.desired_count),
            },
        });
        if let (Some(prod), Some(test)) = (production, test) {
            v["targetServiceRevision"]["requestedProductionTrafficWeight"] = json!(prod);
            v["targetServiceRevision"]["requestedTestTrafficWeight"] = json!(test);
        }
        if !is_ongoing(status) {
            v["finishedAt"] = json!(d.updated_at);
        }
        if status.starts_with("STOP") || status.starts_with("ROLLBACK") {
            v["stoppedAt"] = json!(d.updated_at);
        }
        if let Some(r) = rollback {
            v["rollback"] = json!({"reason": d.rollout_reason, "startedAt": r.created_at,
                                   "serviceRevisionArn": self.revision_arn(&r.id)});
        }
        if let Some(p) = progress {
            v["lifecycleStage"] = json!(p.stage().as_str());
            v["lifecycleHookDetails"] = Value::Array(p.hooks.iter().map(|h| h.to_json()).collect());
            if let (Some(r), Some(src)) = (&p.rollback, source) {
                v["rollback"] = json!({"reason": r.reason, "startedAt": r.started_at,
                                       "serviceRevisionArn": self.revision_arn(&src.id)});
            }
        }
        v["alarms"] = match &d.config.alarms {
            Some(a) if a.enable => json!({
                "status": if !d.triggered_alarms.is_empty() { "TRIGGERED" } else if is_ongoing(status) { "MONITORING" } else { "MONITORING_COMPLETE" },
                "alarmNames": a.names,
                "triggeredAlarmNames": d.triggered_alarms,
            }),
            Some(a) => {
                json!({"status": "DISABLED", "alarmNames": a.names, "triggeredAlarmNames": []})
            }
            None => json!({"status": "DISABLED", "alarmNames": [], "triggeredAlarmNames": []}),
        };
        Some(v)
    }

    /// `deploymentConfiguration` as DescribeServices and DescribeServiceDeployments show it.
    fn deployment_configuration(&self, strategy: &crate::strategy::Config) -> Value {
        let mut v = json!({
            "deploymentCircuitBreaker": {"enable": self.breaker.enable, "rollback": self.breaker.rollback},
            "maximumPercent": self.maximum_percent,
            "minimumHealthyPercent": self.minimum_healthy_percent,
        });
        crate::strategy::write(strategy, &mut v);
        v
    }

    /// A task's status as the service's counts report it under `mode`: RUNNING tasks of a
    /// deployment still rolling out are reported PENDING with [`Mode::late_running_count`].
    pub fn reported_status<'t>(&self, task: &'t Task, mode: Mode) -> &'t str {
        let rolling_out = || {
            self.deployments
                .iter()
                .any(|d| d.id == task.started_by && d.rollout == Rollout::InProgress)
        };
        if mode.late_running_count && task.last_status == "RUNNING" && rolling_out() {
            "PENDING"
        } else {
            &task.last_status
        }
    }

    pub fn push_event(&mut self, id: String, now: Time, message: String) {
        self.events.push_front(ServiceEvent {
            id,
            created_at: now,
            message,
        });
        self.events.truncate(MAX_EVENTS);
    }

    /// The DescribeServices entry, its counts as `mode` reports them.
    pub fn to_json(&self, tasks: &BTreeMap<String, Task>, mode: Mode) -> Value {
        let count = |dep: Option<&str>, status: &str| {
            tasks
                .values()
                .filter(|t| t.group == format!("service:{}", self.name))
                .filter(|t| dep.is_none_or(|d| t.started_by == d))
                .filter(|t| self.reported_status(t, mode) == status)
                .count()
        };
        let pending = |dep: Option<&str>| count(dep, "PROVISIONING") + count(dep, "PENDING");
        let deployments: Vec<Value> = self
            .deployments
            .iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "status": match d.status { DeploymentStatus::Primary => "PRIMARY", DeploymentStatus::Active => "ACTIVE" },
                    "taskDefinition": d.task_definition,
                    "desiredCount": d.desired_count,
                    "pendingCount": pending(Some(&d.id)),
                    "runningCount": count(Some(&d.id), "RUNNING"),
                    "failedTasks": d.failed_tasks,
                    "createdAt": d.created_at,
                    "updatedAt": d.updated_at,
                    "launchType": "EC2",
                    "rolloutState": d.rollout.as_str(),
                    "rolloutStateReason": d.rollout_reason,
                })
            })
            .collect();
        let deployments = if self.controller.uses_task_sets() {
            Vec::new()
        } else {
            deployments
        };
        let mut v = json!({
            "serviceArn": self.arn,
            "serviceName": self.name,
            "clusterArn": self.cluster_arn,
            "status": match (self.active, count(None, "RUNNING") + pending(None)) {
                (true, _) => "ACTIVE",
                (false, 0) => "INACTIVE",
                (false, _) => "DRAINING",
            },
            "desiredCount": self.desired_count,
            "runningCount": count(None, "RUNNING"),
            "pendingCount": pending(None),
            "launchType": "EC2",
            "taskDefinition": self.task_definition,
            "deploymentConfiguration": self.deployment_configuration(&self.strategy),
            "deploymentController": {"type": self.controller.as_str()},
            "deployments": deployments,
            "loadBalancers": self.load_balancers,
            "events": self.events.iter().map(|e| json!({"id": e.id, "createdAt": e.created_at, "message": e.message})).collect::<Vec<_>>(),
            "createdAt": self.created_at,
            "schedulingStrategy": "REPLICA",
            "tags": self.tags,
        });
        if self.controller.uses_task_sets() {
            let group = format!("service:{}", self.name);
            v["taskSets"] = self
                .task_sets
                .iter()
                .map(|t| t.to_json(self, tasks.values().filter(|t| t.group == group)))
                .collect();
        }
        v
    }
}

/// One container of a running task, as the sandbox tracks it.
#[derive(Debug, Clone)]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub docker_id: Option<String>,
    pub last_status: String,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub health: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub arn: String,
    pub cluster_arn: String,
    pub task_definition: String,
    pub started_by: String,
    pub group: String,
    pub last_status: String,
    pub desired_status: String,
    pub health_status: String,
    pub containers: Vec<ContainerState>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    pub created_at: Time,
    pub started_at: Option<Time>,
    /// The latest moment Docker was seen running every essential container (a look that
    /// began then found them running).
    pub seen_running_at: Option<Time>,
    pub stopped_at: Option<Time>,
    pub memory: u64,
    pub cpu: u64,
    /// True when an essential container has a health check: the task must turn HEALTHY.
    pub has_health_check: bool,
    /// True once a failure of this task has been counted against its deployment.
    pub failure_counted: bool,
    /// Grace period between SIGTERM and SIGKILL, seconds (the largest of its containers').
    pub stop_timeout: u64,
    /// RunTask's `overrides.containerOverrides[].command`, by container name.
    pub command_overrides: BTreeMap<String, Vec<String>>,
    /// RunTask's `overrides.containerOverrides[].environment`, by container name.
    pub environment_overrides: BTreeMap<String, Vec<(String, String)>>,
    /// Each container's output (its last lines), kept when the container is removed: what
    /// GetLogEvents serves.
    pub logs: BTreeMap<String, Vec<String>>,
    /// When a running task's output was last copied into `logs` (wall-clock seconds).
    pub logs_read_at: Option<Time>,
}

impl Task {
    pub fn is_live(&self) -> bool {
        self.last_status != "STOPPED"
    }

    /// Running and, where a health check is defined, healthy; a task without a health check
    /// must have been seen running `stable` seconds after it started, so a container that
    /// exits at once is never counted as a success, however slow the looks at it are.
    pub fn is_healthy(&self, stable: f64) -> bool {
        if self.last_status != "RUNNING" {
            return false;
        }
        if self.has_health_check {
            return self.health_status == "HEALTHY";
        }
        // Seen running that long after it started, not merely that long ago: a container that
        // exits at once must never count because a look at it came late.
        match (self.started_at, self.seen_running_at) {
            (Some(start), Some(seen)) => seen - start >= stable,
            _ => false,
        }
    }

    pub fn to_json(&self) -> Value {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let mut v = json!({
                    "containerArn": format!("{}/{}", self.arn.replace(":task/", ":container/"), c.name),
                    "taskArn": self.arn,
                    "name": c.name,
                    "image": c.image,
                    "lastStatus": c.last_status,
                    "healthStatus": c.health.clone().unwrap_or_else(|| "UNKNOWN".into()),
                });
                if let Some(code) = c.exit_code {
                    v["exitCode"] = json!(code);
                }
                if let Some(reason) = &c.reason {
                    v["reason"] = json!(reason);
                }
                v
            })
            .collect();
        let health = self.health_status.as_str();
        let mut v = json!({
            "taskArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": self.task_definition,
            "startedBy": self.started_by,
            "group": self.group,
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "healthStatus": health,
            "containers": containers,
            "createdAt": self.created_at,
            "launchType": "EC2",
            "memory": self.memory.to_string(),
            "cpu": self.cpu.to_string(),
        });
        if let Some(t) = self.started_at {
            v["startedAt"] = json!(t);
        }
        if let Some(t) = self.stopped_at {
            v["stoppedAt"] = json!(t);
            v["stoppingAt"] = json!(t);
        }
        if let Some(r) = &self.stopped_reason {
            v["stoppedReason"] = json!(r);
        }
        if let Some(c) = &self.stop_code {
            v["stopCode"] = json!(c);
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub services: BTreeMap<String, Service>,
    pub tasks: BTreeMap<String, Task>,
}

impl Cluster {
    pub fn to_json(&self) -> Value {
        let running = self
            .tasks
            .values()
            .filter(|t| t.last_status == "RUNNING")
            .count();
        let pending = self
            .tasks
            .values()
            .filter(|t| t.is_live() && t.last_status != "RUNNING")
            .count();
        json!({
            "clusterArn": self.arn,
            "clusterName": self.name,
            "status": "ACTIVE",
            "runningTasksCount": running,
            "pendingTasksCount": pending,
            "activeServicesCount": self.services.values().filter(|s| s.active).count(),
            "registeredContainerInstancesCount": 1,
        })
    }
}

/// Everything the sandbox knows.
#[derive(Debug, Clone)]
pub struct State {
    pub place: Place,
    pub clusters: BTreeMap<String, Cluster>,
    /// Revisions per family, revision 1 first.
    pub families: BTreeMap<String, Vec<TaskDefinition>>,
    /// ECR repositories and what the registry holds.
    pub ecr: super::ecr::Registry,
    /// How answers report what runs.
    pub mode: Mode,
    /// CloudWatch alarm states by name (`ALARM`, `OK`), set through `/_sandbox/alarms`.
    pub alarms: BTreeMap<String, String>,
    /// CodeDeploy's applications, groups, configurations and deployments.
    pub codedeploy: crate::codedeploy::CodeDeploy,
}

impl State {
    pub fn new(place: Place) -> Self {
        Self {
            place,
            clusters: BTreeMap::new(),
            families: BTreeMap::new(),
            ecr: super::ecr::Registry::default(),
            mode: Mode::default(),
            alarms: BTreeMap::new(),
            codedeploy: Default::default(),
        }
    }

    /// Finds a task definition by ARN, `family:revision` or `family` (latest ACTIVE).
    pub fn task_definition(&self, reference: &str) -> Option<&TaskDefinition> {
        let name = reference
            .rsplit_once(":task-definition/")
            .map(|(_, r)| r)
            .unwrap_or(reference);
        match name.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev.parse().ok()?;
                self.families
                    .get(family)?
                    .iter()
                    .find(|d| d.revision == rev)
            }
            None => self.families.get(name)?.iter().rev().find(|d| d.active),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(rollout: Rollout) -> Deployment {
        Deployment {
            id: "ecs-svc/1".into(),
            status: DeploymentStatus::Primary,
            task_definition: "td".into(),
            desired_count: 1,
            failed_tasks: 0,
            rollout,
            rollout_reason: "why".into(),
            created_at: 0.0,
            updated_at: 0.0,
            rollback_of: None,
            config: Default::default(),
            progress: None,
            triggered_alarms: Vec::new(),
        }
    }

    #[test]
    fn service_deployment_statuses_follow_the_rollout_and_its_rollback() {
        use Rollout::*;
        let cases = [
            (d(InProgress), None, false, "IN_PROGRESS"),
            (d(InProgress), None, true, "STOPPED"),
            (d(Completed), None, true, "SUCCESSFUL"),
            (d(Failed), None, false, "STOPPED"),
            (
                d(Failed),
                Some(d(InProgress)),
                false,
                "ROLLBACK_IN_PROGRESS",
            ),
            (d(Failed), Some(d(Completed)), true, "ROLLBACK_SUCCESSFUL"),
            (d(Failed), Some(d(Failed)), true, "ROLLBACK_FAILED"),
        ];
        for (dep, rollback, over, want) in cases {
            let (status, _) = service_deployment_status(&dep, rollback.as_ref(), over);
            assert_eq!(
                status,
                want,
                "{:?} rollback {:?} over {over}",
                dep.rollout,
                rollback.map(|r| r.rollout)
            );
        }
    }
}
