//! AWS CodeDeploy for Amazon ECS blue/green, as its API reference documents it: applications,
//! deployment groups, deployment configurations, deployments and their ECS target, read from
//! and rendered in the documented shapes. The deployments themselves are moved along by
//! [`crate::bluegreen`] on the runner's ticks.
//!
//! Choices where the reference leaves room:
//! - The AppSpec is read as JSON only (YAML is refused, saying so).
//! - A deployment is `Created` until the runner's next tick starts it; GetDeploymentTarget
//!   answers from then on (its target `Pending`), not DeploymentNotStartedException.
//! - An ECS deployment group watches one ECS service, whose deployment controller must be
//!   CODE_DEPLOY and which must be in no other group (InvalidECSServiceException,
//!   ECSServiceMappingLimitExceededException).
//! - A second deployment while one is in progress is refused with
//!   DeploymentLimitExceededException, naming the active deployment.
//! - The target's `taskSetsInfo` keeps naming a task set that has been deleted (DRAINING,
//!   no tasks, no traffic), so its stopped tasks can still be found by its id.
//! - A rollback deployment names the group's last revision that succeeded (the one it
//!   undoes, when none has).
//! - StopDeployment applies at once and answers `Succeeded`; without `autoRollbackEnabled`
//!   it rolls back when the group's automatic rollback lists DEPLOYMENT_STOP_ON_REQUEST.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::Digest;

use super::ecs::ApiError;
use super::model::{State, Time};
use super::taskset::Controller;

type Reply = Result<Value, ApiError>;

/// The X-Amz-Target prefix of CodeDeploy calls.
pub const PREFIX: &str = "CodeDeploy_20141006.";

/// The ECS lifecycle events in the order a deployment goes through them.
pub const EVENTS: [&str; 8] = [
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// The events an ECS AppSpec may name a hook function for.
pub const HOOK_EVENTS: [&str; 5] = [
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// The default deployment configuration of an ECS deployment group.
pub const DEFAULT_CONFIG: &str = "CodeDeployDefault.ECSAllAtOnce";

/// How production traffic moves to the replacement task set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Routing {
    AllAtOnce,
    /// (percentage, minutes): that share first, the rest after the interval.
    Canary(f64, f64),
    /// (percentage, minutes): that much more every interval.
    Linear(f64, f64),
}

impl Routing {
    /// `trafficRoutingConfig`, its percentages and intervals whole numbers as the API types
    /// them.
    fn to_json(self) -> Value {
        let (p, i) = match self {
            Routing::AllAtOnce => (0, 0),
            Routing::Canary(p, i) | Routing::Linear(p, i) => (p as i64, i as i64),
        };
        match self {
            Routing::AllAtOnce => json!({"type": "AllAtOnce"}),
            Routing::Canary(..) => json!({"type": "TimeBasedCanary",
                "timeBasedCanary": {"canaryPercentage": p, "canaryInterval": i}}),
            Routing::Linear(..) => json!({"type": "TimeBasedLinear",
                "timeBasedLinear": {"linearPercentage": p, "linearInterval": i}}),
        }
    }

    /// Reads `trafficRoutingConfig` (AllAtOnce when left out).
    pub fn read(v: &Value) -> Result<Routing, String> {
        let whole = |v: &Value, name: &str, lo: f64, hi: f64| {
            v[name]
                .as_f64()
                .filter(|n| *n >= lo && *n <= hi && n.fract() == 0.0)
                .ok_or_else(|| format!("{name} must be a whole number from {lo} to {hi}"))
        };
        match v["type"].as_str() {
            None | Some("AllAtOnce") => Ok(Routing::AllAtOnce),
            Some("TimeBasedCanary") => {
                let c = &v["timeBasedCanary"];
                Ok(Routing::Canary(
                    whole(c, "canaryPercentage", 1.0, 99.0)?,
                    whole(c, "canaryInterval", 1.0, 2880.0)?,
                ))
            }
            Some("TimeBasedLinear") => {
                let c = &v["timeBasedLinear"];
                Ok(Routing::Linear(
                    whole(c, "linearPercentage", 1.0, 99.0)?,
                    whole(c, "linearInterval", 1.0, 2880.0)?,
                ))
            }
            Some(t) => Err(format!(
                "trafficRoutingConfig.type must be AllAtOnce, TimeBasedCanary or TimeBasedLinear, not {t:?}"
            )),
        }
    }
}

/// The predefined ECS deployment configurations.
pub fn predefined(name: &str) -> Option<Routing> {
    Some(match name {
        "CodeDeployDefault.ECSAllAtOnce" => Routing::AllAtOnce,
        "CodeDeployDefault.ECSCanary10Percent5Minutes" => Routing::Canary(10.0, 5.0),
        "CodeDeployDefault.ECSCanary10Percent15Minutes" => Routing::Canary(10.0, 15.0),
        "CodeDeployDefault.ECSLinear10PercentEvery1Minutes" => Routing::Linear(10.0, 1.0),
        "CodeDeployDefault.ECSLinear10PercentEvery3Minutes" => Routing::Linear(10.0, 3.0),
        _ => return None,
    })
}

#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub routing: Routing,
    pub platform: String,
    pub created: Time,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub id: String,
    pub platform: String,
    pub created: Time,
    pub groups: BTreeMap<String, Group>,
}

/// What a deployment group says of how to deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `deploymentReadyOption`: (STOP_DEPLOYMENT, waitTimeInMinutes).
    pub ready_stop: bool,
    pub ready_wait_minutes: f64,
    pub termination_wait_minutes: f64,
    pub auto_rollback: bool,
    pub rollback_events: Vec<String>,
    pub alarms_enabled: bool,
    pub alarms: Vec<String>,
    pub test_listeners: bool,
    pub target_groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub service_role: String,
    pub config: String,
    pub cluster: String,
    pub service: String,
    pub settings: Settings,
    /// The sections as they are echoed back, defaults filled in.
    pub echo: Value,
}

/// `status` of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    InProgress,
    Ready,
    Baking,
    Succeeded,
    Failed,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "Created",
            Status::InProgress => "InProgress",
            Status::Ready => "Ready",
            Status::Baking => "Baking",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        }
    }

    pub fn is_over(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Stopped)
    }

    /// The ECS target's status while the deployment has this status (the target's statuses
    /// have no Baking or Stopped).
    pub fn target_status(self) -> &'static str {
        match self {
            Status::Created => "Pending",
            Status::InProgress | Status::Baking => "InProgress",
            Status::Ready => "Ready",
            Status::Succeeded => "Succeeded",
            Status::Failed | Status::Stopped => "Failed",
        }
    }
}

/// The status a deployment ends in for an error code: the stops (by hand, by alarm, by a
/// ready wait running out) are Stopped, the rest Failed.
pub fn status_for(code: &str) -> Status {
    match code {
        "MANUAL_STOP" | "ALARM_ACTIVE" | "TIMEOUT" => Status::Stopped,
        _ => Status::Failed,
    }
}

/// Which automatic rollback event an error code is.
pub fn rollback_event(code: &str) -> &'static str {
    match code {
        "MANUAL_STOP" => "DEPLOYMENT_STOP_ON_REQUEST",
        "ALARM_ACTIVE" => "DEPLOYMENT_STOP_ON_ALARM",
        _ => "DEPLOYMENT_FAILURE",
    }
}

/// `lifecycleEvents[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Pending,
    InProgress,
    Succeeded,
    Failed,
    Skipped,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "Pending",
            EventStatus::InProgress => "InProgress",
            EventStatus::Succeeded => "Succeeded",
            EventStatus::Failed => "Failed",
            EventStatus::Skipped => "Skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: &'static str,
    pub status: EventStatus,
    pub start: Option<Time>,
    pub end: Option<Time>,
    /// (errorCode, scriptName, message).
    pub diagnostics: Option<(String, String, String)>,
}

/// The parts of an ECS AppSpec the sandbox uses.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub task_definition: String,
    pub container_name: String,
    pub container_port: u64,
    /// Hook function (name or ARN) by lifecycle event.
    pub hooks: BTreeMap<String, String>,
}

/// Reads an ECS AppSpec given as JSON; the error says what is wrong.
pub fn parse_appspec(content: &str) -> Result<AppSpec, String> {
    let v: Value = serde_json::from_str(content).map_err(|e| {
        format!("the sandbox reads JSON AppSpecs only, and this one is not JSON ({e})")
    })?;
    let resources = v["Resources"]
        .as_array()
        .filter(|r| r.len() == 1)
        .ok_or("the AppSpec must have Resources with exactly one ECS service")?;
    let (_, target) = resources[0]
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or("Resources[0] must be {NAME: {Type, Properties}}")?;
    if target["Type"] != "AWS::ECS::Service" {
        return Err(format!(
            "the resource's Type must be AWS::ECS::Service, not {}",
            target["Type"]
        ));
    }
    let p = &target["Properties"];
    let task_definition = p["TaskDefinition"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("Properties.TaskDefinition is required")?
        .to_string();
    let lb = &p["LoadBalancerInfo"];
    let container_name = lb["ContainerName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("Properties.LoadBalancerInfo.ContainerName is required")?
        .to_string();
    let container_port = lb["ContainerPort"]
        .as_u64()
        .or_else(|| lb["ContainerPort"].as_str().and_then(|s| s.parse().ok()))
        .ok_or("Properties.LoadBalancerInfo.ContainerPort is required")?;
    let mut hooks = BTreeMap::new();
    for h in v["Hooks"].as_array().into_iter().flatten() {
        let Some(o) = h.as_object() else {
            return Err("each Hooks entry must be {EVENT: FUNCTION}".into());
        };
        for (event, function) in o {
            if !HOOK_EVENTS.contains(&event.as_str()) {
                return Err(format!(
                    "{event} is not an ECS lifecycle event with hooks; use one of {}",
                    HOOK_EVENTS.join(", ")
                ));
            }
            let function = function
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the hook for {event} must name a Lambda function"))?;
            hooks.insert(event.clone(), function.to_string());
        }
    }
    Ok(AppSpec {
        task_definition,
        container_name,
        container_port,
        hooks,
    })
}

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// At lifecycle event `EVENTS[i]`.
    Event(usize),
    /// After AfterAllowTestTraffic: the deploymentReadyOption wait.
    ReadyWait,
    /// After AfterAllowTraffic: the wait before the original task set is terminated.
    TerminationWait,
    Done,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: String,
    pub application: String,
    pub group: String,
    pub config: String,
    pub routing: Routing,
    pub revision: Value,
    pub description: Option<String>,
    pub app_spec: AppSpec,
    pub status: Status,
    /// (code, message).
    pub error: Option<(String, String)>,
    pub created: Time,
    pub started: Option<Time>,
    pub completed: Option<Time>,
    pub updated: Time,
    /// `user` or `codeDeployRollback`.
    pub creator: &'static str,
    pub rollback_deployment: Option<String>,
    pub rollback_of: Option<String>,
    pub rollback_message: Option<String>,
    pub cluster: String,
    pub service: String,
    /// The original and replacement task sets.
    pub blue: Option<String>,
    pub green: Option<String>,
    /// The replacement's share of production traffic.
    pub green_weight: f64,
    pub events: Vec<Event>,
    pub phase: Phase,
    pub phase_since: Time,
    pub ready_released: bool,
    pub termination_released: bool,
    pub settings: Settings,
    /// The group's sections as they were when the deployment was made.
    pub echo: Value,
    pub messages: Vec<String>,
}

impl Deployment {
    fn to_json(&self) -> Value {
        let target = self.status.target_status();
        let overview = [
            "Pending",
            "InProgress",
            "Succeeded",
            "Failed",
            "Skipped",
            "Ready",
        ]
        .map(|s| (s, u32::from(s == target)));
        let mut v = json!({
            "applicationName": self.application,
            "deploymentGroupName": self.group,
            "deploymentConfigName": self.config,
            "deploymentId": self.id,
            "revision": self.revision,
            "status": self.status.as_str(),
            "createTime": self.created,
            "creator": self.creator,
            "ignoreApplicationStopFailures": false,
            "updateOutdatedInstancesOnly": false,
            "deploymentOverview": overview.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "computePlatform": "ECS",
            "deploymentStyle": self.echo["deploymentStyle"],
            "blueGreenDeploymentConfiguration": self.echo["blueGreenDeploymentConfiguration"],
            "loadBalancerInfo": self.echo["loadBalancerInfo"],
            "autoRollbackConfiguration": self.echo["autoRollbackConfiguration"],
            "deploymentStatusMessages": self.messages,
            "instanceTerminationWaitTimeStarted": self.phase == Phase::TerminationWait || (self.status == Status::Succeeded && self.rollback_of.is_none()),
        });
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if let Some(t) = self.started {
            v["startTime"] = json!(t);
        }
        if let Some(t) = self.completed {
            v["completeTime"] = json!(t);
        }
        if let Some((code, message)) = &self.error {
            v["errorInformation"] = json!({"code": code, "message": message});
        }
        if self.rollback_deployment.is_some() || self.rollback_of.is_some() {
            let mut r = json!({});
            if let Some(id) = &self.rollback_deployment {
                r["rollbackDeploymentId"] = json!(id);
            }
            if let Some(id) = &self.rollback_of {
                r["rollbackTriggeringDeploymentId"] = json!(id);
            }
            if let Some(m) = &self.rollback_message {
                r["rollbackMessage"] = json!(m);
            }
            v["rollbackInfo"] = r;
        }
        if self.status == Status::Created {
            v["deploymentOverview"]["Pending"] = json!(1);
        }
        v
    }

    pub fn target_id(&self) -> String {
        format!("{}:{}", self.cluster, self.service)
    }

    /// The ECS target: its lifecycle events and the task sets it moves traffic between.
    fn target_json(&self, state: &State) -> Value {
        let service = state
            .clusters
            .get(&self.cluster)
            .and_then(|c| c.services.get(&self.service).map(|s| (c, s)));
        let mut sets = Vec::new();
        let mut arn = Value::Null;
        if let Some((c, s)) = service {
            arn = json!(s.arn);
            let group = format!("service:{}", s.name);
            for (label, id, weight, tg) in [
                ("Blue", &self.blue, 100.0 - self.green_weight, 0),
                ("Green", &self.green, self.green_weight, 1),
            ] {
                let Some(id) = id else { continue };
                let Some(set) = s.task_sets.iter().find(|t| &t.id == id) else {
                    // Deleted: still named, so a client can look up its stopped tasks.
                    sets.push(
                        json!({"identifer": id, "desiredCount": 0, "pendingCount": 0,
                                     "runningCount": 0, "status": "DRAINING",
                                     "trafficWeight": 0.0, "taskSetLabel": label}),
                    );
                    continue;
                };
                let (pending, running) =
                    crate::taskset::counts(&set.id, c.tasks.values().filter(|t| t.group == group));
                let mut info = json!({
                    "identifer": set.id,
                    "desiredCount": set.desired(s),
                    "pendingCount": pending,
                    "runningCount": running,
                    "status": set.status.as_str(),
                    "trafficWeight": weight,
                    "taskSetLabel": label,
                });
                if let Some(name) = self.settings.target_groups.get(tg) {
                    info["targetGroup"] = json!({"name": name});
                }
                sets.push(info);
            }
        }
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|e| {
                let mut v = json!({"lifecycleEventName": e.name, "status": e.status.as_str()});
                if let Some(t) = e.start {
                    v["startTime"] = json!(t);
                }
                if let Some(t) = e.end {
                    v["endTime"] = json!(t);
                }
                if let Some((code, script, message)) = &e.diagnostics {
                    v["diagnostics"] = json!({"errorCode": code, "scriptName": script,
                                              "message": message, "logTail": ""});
                }
                v
            })
            .collect();
        json!({
            "deploymentTargetType": "ECSTarget",
            "ecsTarget": {
                "deploymentId": self.id,
                "targetId": self.target_id(),
                "targetArn": arn,
                "lastUpdatedAt": self.updated,
                "lifecycleEvents": events,
                "status": self.status.target_status(),
                "taskSetsInfo": sets,
            }
        })
    }
}

/// Everything the sandbox knows of CodeDeploy.
#[derive(Debug, Clone, Default)]
pub struct CodeDeploy {
    pub applications: BTreeMap<String, Application>,
    /// Configurations made with CreateDeploymentConfig.
    pub configs: BTreeMap<String, Config>,
    pub deployments: BTreeMap<String, Deployment>,
    /// How hook functions end (`Succeeded` or `Failed`), by name or ARN, set through
    /// `/_sandbox/hooks`; a function not named here succeeds.
    pub hooks: BTreeMap<String, String>,
}

/// True when the hook `function` (a name or ARN) is set to fail in `hooks`, which names
/// functions by name or ARN.
pub fn hook_fails(hooks: &BTreeMap<String, String>, function: &str) -> bool {
    let name = |f: &str| {
        f.split(":function:")
            .nth(1)
            .map(|rest| rest.split(':').next().unwrap_or(rest).to_string())
            .unwrap_or_else(|| f.to_string())
    };
    hooks
        .get(function)
        .or_else(|| {
            hooks
                .iter()
                .find(|(k, _)| name(k) == name(function))
                .map(|(_, v)| v)
        })
        .is_some_and(|r| r == "Failed")
}

fn required<'a>(input: &'a Value, field: &str, kind: &'static str) -> Result<&'a str, ApiError> {
    input[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new(kind, format!("{field} is required.")))
}

fn err(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(kind, message)
}

/// `n` random upper-case letters and digits.
fn random_upper(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn uuid() -> String {
    use super::random_hex;
    format!(
        "{}-{}-{}-{}-{}",
        random_hex(8),
        random_hex(4),
        random_hex(4),
        random_hex(4),
        random_hex(12)
    )
}

/// Runs one CodeDeploy operation against the state.
pub fn handle(state: &mut State, op: &str, input: &Value, now: Time) -> Reply {
    match op {
        "CreateApplication" => create_application(state, input, now),
        "GetApplication" => {
            let name = required(input, "applicationName", "ApplicationNameRequiredException")?;
            Ok(json!({"application": application_json(state, name)?}))
        }
        "BatchGetApplications" => {
            let names = strings(&input["applicationNames"]);
            let apps = names
                .iter()
                .map(|n| application_json(state, n))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"applicationsInfo": apps}))
        }
        "ListApplications" => {
            Ok(json!({"applications": state.codedeploy.applications.keys().collect::<Vec<_>>()}))
        }
        "CreateDeploymentGroup" => create_group(state, input),
        "GetDeploymentGroup" => {
            let (app, group) = group_names(input)?;
            Ok(json!({"deploymentGroupInfo": group_json(state, app, group)?}))
        }
        "BatchGetDeploymentGroups" => {
            let app = required(input, "applicationName", "ApplicationNameRequiredException")?;
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for g in strings(&input["deploymentGroupNames"]) {
                match group_json(state, app, &g) {
                    Ok(v) => found.push(v),
                    Err(e) if e.kind == "DeploymentGroupDoesNotExistException" => missing.push(g),
                    Err(e) => return Err(e),
                }
            }
            let mut out = json!({"deploymentGroupsInfo": found});
            if !missing.is_empty() {
                out["errorMessage"] = json!(format!(
                    "Deployment groups not found: {}",
                    missing.join(", ")
                ));
            }
            Ok(out)
        }
        "ListDeploymentGroups" => {
            let app = required(input, "applicationName", "ApplicationNameRequiredException")?;
            let a = application(state, app)?;
            Ok(
                json!({"applicationName": app, "deploymentGroups": a.groups.keys().collect::<Vec<_>>()}),
            )
        }
        "GetDeploymentConfig" => get_config(state, input),
        "CreateDeploymentConfig" => create_config(state, input, now),
        "ListDeploymentConfigs" => {
            let mut names: Vec<String> = [
                "CodeDeployDefault.ECSAllAtOnce",
                "CodeDeployDefault.ECSCanary10Percent5Minutes",
                "CodeDeployDefault.ECSCanary10Percent15Minutes",
                "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
                "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
            ]
            .map(String::from)
            .to_vec();
            names.extend(state.codedeploy.configs.keys().cloned());
            Ok(json!({"deploymentConfigsList": names}))
        }
        "CreateDeployment" => create_deployment(state, input, now),
        "GetDeployment" => {
            let d = deployment(state, input)?;
            Ok(json!({"deploymentInfo": d.to_json()}))
        }
        "BatchGetDeployments" => {
            let infos: Vec<Value> = strings(&input["deploymentIds"])
                .iter()
                .filter_map(|id| state.codedeploy.deployments.get(id))
                .map(Deployment::to_json)
                .collect();
            Ok(json!({"deploymentsInfo": infos}))
        }
        "ListDeployments" => list_deployments(state, input),
        "ListDeploymentTargets" => {
            let d = deployment(state, input)?;
            Ok(json!({"targetIds": [d.target_id()]}))
        }
        "GetDeploymentTarget" => {
            let d = deployment(state, input)?;
            let target = required(input, "targetId", "DeploymentTargetIdRequiredException")?;
            if target != d.target_id() {
                return Err(err(
                    "DeploymentTargetDoesNotExistException",
                    format!("The target {target} is not part of deployment {}.", d.id),
                ));
            }
            Ok(json!({"deploymentTarget": d.target_json(state)}))
        }
        "BatchGetDeploymentTargets" => {
            let d = deployment(state, input)?;
            let targets: Vec<Value> = strings(&input["targetIds"])
                .iter()
                .filter(|t| **t == d.target_id())
                .map(|_| d.target_json(state))
                .collect();
            Ok(json!({"deploymentTargets": targets}))
        }
        "StopDeployment" => stop_deployment(state, input, now),
        "ContinueDeployment" => continue_deployment(state, input, now),
        _ => Err(err(
            "UnknownOperationException",
            format!("the sandbox does not implement CodeDeploy {op}"),
        )),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn application<'a>(state: &'a State, name: &str) -> Result<&'a Application, ApiError> {
    state.codedeploy.applications.get(name).ok_or_else(|| {
        err(
            "ApplicationDoesNotExistException",
            format!("No application found for name: {name}"),
        )
    })
}

fn application_json(state: &State, name: &str) -> Result<Value, ApiError> {
    let a = application(state, name)?;
    Ok(
        json!({"applicationId": a.id, "applicationName": name, "createTime": a.created,
              "linkedToGitHub": false, "computePlatform": a.platform}),
    )
}

fn create_application(state: &mut State, input: &Value, now: Time) -> Reply {
    let name = required(input, "applicationName", "ApplicationNameRequiredException")?;
    let platform = input["computePlatform"].as_str().unwrap_or("Server");
    if !["Server", "Lambda", "ECS"].contains(&platform) {
        return Err(err(
            "InvalidComputePlatformException",
            format!("computePlatform must be Server, Lambda or ECS, not {platform:?}"),
        ));
    }
    if state.codedeploy.applications.contains_key(name) {
        return Err(err(
            "ApplicationAlreadyExistsException",
            format!("{name} already exists in your account"),
        ));
    }
    let id = uuid();
    state.codedeploy.applications.insert(
        name.to_string(),
        Application {
            id: id.clone(),
            platform: platform.to_string(),
            created: now,
            groups: BTreeMap::new(),
        },
    );
    Ok(json!({"applicationId": id}))
}

fn group_names(input: &Value) -> Result<(&str, &str), ApiError> {
    Ok((
        required(input, "applicationName", "ApplicationNameRequiredException")?,
        required(
            input,
            "deploymentGroupName",
            "DeploymentGroupNameRequiredException",
        )?,
    ))
}

fn group<'a>(state: &'a State, app: &str, name: &str) -> Result<&'a Group, ApiError> {
    application(state, app)?.groups.get(name).ok_or_else(|| {
        err(
            "DeploymentGroupDoesNotExistException",
            format!("No Deployment Group found for name: {name}"),
        )
    })
}

fn group_json(state: &State, app: &str, name: &str) -> Result<Value, ApiError> {
    let g = group(state, app, name)?;
    let mut v = g.echo.clone();
    v["applicationName"] = json!(app);
    v["deploymentGroupId"] = json!(g.id);
    v["deploymentGroupName"] = json!(g.name);
    v["deploymentConfigName"] = json!(g.config);
    v["serviceRoleArn"] = json!(g.service_role);
    v["computePlatform"] = json!("ECS");
    v["ecsServices"] = json!([{"serviceName": g.service, "clusterName": g.cluster}]);
    let mut of_group: Vec<&Deployment> = state
        .codedeploy
        .deployments
        .values()
        .filter(|d| d.application == app && d.group == name)
        .collect();
    of_group.sort_by(|a, b| a.created.total_cmp(&b.created));
    let brief = |d: &Deployment| {
        json!({"deploymentId": d.id, "status": d.status.as_str(),
               "endTime": d.completed, "createTime": d.created})
    };
    if let Some(d) = of_group.last() {
        v["lastAttemptedDeployment"] = brief(d);
    }
    if let Some(d) = of_group
        .iter()
        .rev()
        .find(|d| d.status == Status::Succeeded)
    {
        v["lastSuccessfulDeployment"] = brief(d);
    }
    Ok(v)
}

/// A deployment configuration by name: predefined or made with CreateDeploymentConfig.
fn config(state: &State, name: &str) -> Result<(Routing, String), ApiError> {
    if let Some(r) = predefined(name) {
        return Ok((r, "ECS".into()));
    }
    state
        .codedeploy
        .configs
        .get(name)
        .map(|c| (c.routing, c.platform.clone()))
        .ok_or_else(|| {
            err(
                "DeploymentConfigDoesNotExistException",
                format!("No deployment configuration found for name: {name}"),
            )
        })
}

fn get_config(state: &State, input: &Value) -> Reply {
    let name = required(
        input,
        "deploymentConfigName",
        "DeploymentConfigNameRequiredException",
    )?;
    let (routing, platform) = config(state, name)?;
    let (id, created) = state
        .codedeploy
        .configs
        .get(name)
        .map(|c| (c.id.clone(), c.created))
        .unwrap_or_else(|| {
            (
                format!("{:0>8}-0000-0000-0000-000000000000", name.len()),
                0.0,
            )
        });
    Ok(json!({"deploymentConfigInfo": {
        "deploymentConfigId": id,
        "deploymentConfigName": name,
        "createTime": created,
        "computePlatform": platform,
        "trafficRoutingConfig": routing.to_json(),
    }}))
}

fn create_config(state: &mut State, input: &Value, now: Time) -> Reply {
    let name = required(
        input,
        "deploymentConfigName",
        "DeploymentConfigNameRequiredException",
    )?;
    if predefined(name).is_some() || state.codedeploy.configs.contains_key(name) {
        return Err(err(
            "DeploymentConfigAlreadyExistsException",
            format!("A deployment configuration named {name} already exists."),
        ));
    }
    let platform = input["computePlatform"].as_str().unwrap_or("Server");
    if platform != "ECS" {
        return Err(err(
            "InvalidComputePlatformException",
            "the sandbox makes deployment configurations for the ECS compute platform only",
        ));
    }
    let routing = Routing::read(&input["trafficRoutingConfig"])
        .map_err(|m| err("InvalidTrafficRoutingConfigurationException", m))?;
    let id = uuid();
    state.codedeploy.configs.insert(
        name.to_string(),
        Config {
            id: id.clone(),
            routing,
            platform: platform.into(),
            created: now,
        },
    );
    Ok(json!({"deploymentConfigId": id}))
}

/// Reads and checks the ECS parts of a CreateDeploymentGroup input: the settings, and the
/// sections as they are echoed back.
pub fn read_group(input: &Value) -> Result<(Settings, Value), ApiError> {
    let style = &input["deploymentStyle"];
    let ty = style["deploymentType"].as_str().unwrap_or("BLUE_GREEN");
    let option = style["deploymentOption"]
        .as_str()
        .unwrap_or("WITH_TRAFFIC_CONTROL");
    if ty != "BLUE_GREEN" || option != "WITH_TRAFFIC_CONTROL" {
        return Err(err(
            "InvalidDeploymentStyleException",
            "An ECS deployment group must use deploymentType BLUE_GREEN and deploymentOption WITH_TRAFFIC_CONTROL.",
        ));
    }
    let bg = &input["blueGreenDeploymentConfiguration"];
    let bad_bg = |m: &str| err("InvalidBlueGreenDeploymentConfigurationException", m);
    let ready = &bg["deploymentReadyOption"];
    let action = ready["actionOnTimeout"]
        .as_str()
        .unwrap_or("CONTINUE_DEPLOYMENT");
    if !["CONTINUE_DEPLOYMENT", "STOP_DEPLOYMENT"].contains(&action) {
        return Err(bad_bg(
            "deploymentReadyOption.actionOnTimeout must be CONTINUE_DEPLOYMENT or STOP_DEPLOYMENT",
        ));
    }
    let minutes = |v: &Value, name: &str| match v {
        Value::Null => Ok(0),
        v => v
            .as_i64()
            .filter(|m| (0..=2880).contains(m))
            .ok_or_else(|| bad_bg(&format!("{name} must be from 0 to 2880 minutes"))),
    };
    let ready_wait = minutes(&ready["waitTimeInMinutes"], "waitTimeInMinutes")?;
    let term = &bg["terminateBlueInstancesOnDeploymentSuccess"];
    let term_action = term["action"].as_str().unwrap_or("TERMINATE");
    if term_action != "TERMINATE" {
        return Err(bad_bg(
            "For ECS, terminateBlueInstancesOnDeploymentSuccess.action must be TERMINATE",
        ));
    }
    let term_wait = minutes(
        &term["terminationWaitTimeInMinutes"],
        "terminationWaitTimeInMinutes",
    )?;
    let lb = &input["loadBalancerInfo"];
    let pairs = lb["targetGroupPairInfoList"]
        .as_array()
        .filter(|p| p.len() == 1)
        .ok_or_else(|| {
            err(
                "InvalidTargetGroupPairException",
                "An ECS deployment group needs loadBalancerInfo.targetGroupPairInfoList with one pair of target groups.",
            )
        })?;
    let pair = &pairs[0];
    let target_groups: Vec<String> = pair["targetGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    if target_groups.len() != 2 || target_groups[0] == target_groups[1] {
        return Err(err(
            "InvalidTargetGroupPairException",
            "The target group pair must name two different target groups.",
        ));
    }
    if pair["prodTrafficRoute"]["listenerArns"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return Err(err(
            "InvalidTargetGroupPairException",
            "The target group pair needs a prodTrafficRoute with a listener ARN.",
        ));
    }
    let test_listeners = pair["testTrafficRoute"]["listenerArns"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    let rollback = &input["autoRollbackConfiguration"];
    let auto_rollback = rollback["enabled"].as_bool().unwrap_or(false);
    let rollback_events = strings(&rollback["events"]);
    const ROLLBACK_EVENTS: [&str; 3] = [
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
        "DEPLOYMENT_STOP_ON_REQUEST",
    ];
    if rollback_events
        .iter()
        .any(|e| !ROLLBACK_EVENTS.contains(&e.as_str()))
        || (auto_rollback && rollback_events.is_empty())
    {
        return Err(err(
            "InvalidAutoRollbackConfigException",
            format!(
                "Automatic rollback needs one or more events of {}.",
                ROLLBACK_EVENTS.join(", ")
            ),
        ));
    }
    let alarm = &input["alarmConfiguration"];
    let alarms_enabled = alarm["enabled"].as_bool().unwrap_or(false);
    let alarms: Vec<String> = alarm["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    if alarms_enabled && alarms.is_empty() {
        return Err(err(
            "InvalidAlarmConfigException",
            "The alarm configuration is enabled but names no alarm.",
        ));
    }
    if alarms.len() > 10 {
        return Err(err(
            "AlarmsLimitExceededException",
            "A deployment group watches at most 10 alarms.",
        ));
    }
    let settings = Settings {
        ready_stop: action == "STOP_DEPLOYMENT",
        ready_wait_minutes: ready_wait as f64,
        termination_wait_minutes: term_wait as f64,
        auto_rollback,
        rollback_events: rollback_events.clone(),
        alarms_enabled,
        alarms: alarms.clone(),
        test_listeners,
        target_groups,
    };
    let echo = json!({
        "deploymentStyle": {"deploymentType": ty, "deploymentOption": option},
        "blueGreenDeploymentConfiguration": {
            "terminateBlueInstancesOnDeploymentSuccess": {"action": term_action, "terminationWaitTimeInMinutes": term_wait},
            "deploymentReadyOption": {"actionOnTimeout": action, "waitTimeInMinutes": ready_wait},
        },
        "loadBalancerInfo": {"targetGroupPairInfoList": [pair]},
        "autoRollbackConfiguration": {"enabled": auto_rollback, "events": rollback_events},
        "alarmConfiguration": {"enabled": alarms_enabled, "ignorePollAlarmFailure": alarm["ignorePollAlarmFailure"].as_bool().unwrap_or(false),
                               "alarms": alarms.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()},
        "triggerConfigurations": [],
        "outdatedInstancesStrategy": "UPDATE",
    });
    Ok((settings, echo))
}

fn create_group(state: &mut State, input: &Value) -> Reply {
    let (app, name) = group_names(input)?;
    let a = application(state, app)?;
    if a.groups.contains_key(name) {
        return Err(err(
            "DeploymentGroupAlreadyExistsException",
            format!("A deployment group named {name} already exists for application {app}."),
        ));
    }
    let role = required(input, "serviceRoleArn", "RoleRequiredException")?;
    if !role.starts_with("arn:") {
        return Err(err(
            "InvalidRoleException",
            format!("serviceRoleArn must be an IAM role ARN, not {role:?}"),
        ));
    }
    if a.platform != "ECS" {
        return Err(err(
            "InvalidComputePlatformException",
            "the sandbox deploys to ECS only: the application's computePlatform must be ECS",
        ));
    }
    let config_name = input["deploymentConfigName"]
        .as_str()
        .unwrap_or(DEFAULT_CONFIG);
    let (_, platform) = config(state, config_name)?;
    if platform != "ECS" {
        return Err(err(
            "InvalidDeploymentConfigNameException",
            format!("{config_name} is not a deployment configuration for ECS."),
        ));
    }
    let services = input["ecsServices"].as_array().cloned().unwrap_or_default();
    let [svc] = services.as_slice() else {
        return Err(err(
            "InvalidECSServiceException",
            "An ECS deployment group needs ecsServices with exactly one service.",
        ));
    };
    let (cluster, service) = match (svc["clusterName"].as_str(), svc["serviceName"].as_str()) {
        (Some(c), Some(s)) => (
            c.rsplit('/').next().unwrap_or(c).to_string(),
            s.rsplit('/').next().unwrap_or(s).to_string(),
        ),
        _ => {
            return Err(err(
                "InvalidECSServiceException",
                "ecsServices[0] needs serviceName and clusterName.",
            ))
        }
    };
    let found = state
        .clusters
        .get(&cluster)
        .and_then(|c| c.services.get(&service))
        .filter(|s| s.active);
    match found {
        None => {
            return Err(err(
                "InvalidECSServiceException",
                format!("The ECS service {service} in cluster {cluster} does not exist."),
            ))
        }
        Some(s) if s.controller != Controller::CodeDeploy => {
            return Err(err(
                "InvalidECSServiceException",
                format!(
                    "The ECS service {service} uses the {} deployment controller; CodeDeploy deploys only services with the CODE_DEPLOY controller.",
                    s.controller.as_str()
                ),
            ))
        }
        Some(_) => {}
    }
    let taken = state
        .codedeploy
        .applications
        .values()
        .flat_map(|a| a.groups.values())
        .any(|g| g.cluster == cluster && g.service == service);
    if taken {
        return Err(err(
            "ECSServiceMappingLimitExceededException",
            format!("The ECS service {service} is already in another deployment group."),
        ));
    }
    let (settings, echo) = read_group(input)?;
    let id = uuid();
    let g = Group {
        id: id.clone(),
        name: name.to_string(),
        service_role: role.to_string(),
        config: config_name.to_string(),
        cluster,
        service,
        settings,
        echo,
    };
    state
        .codedeploy
        .applications
        .get_mut(app)
        .expect("found above")
        .groups
        .insert(name.to_string(), g);
    Ok(json!({"deploymentGroupId": id}))
}

fn deployment<'a>(state: &'a State, input: &Value) -> Result<&'a Deployment, ApiError> {
    let id = required(input, "deploymentId", "DeploymentIdRequiredException")?;
    state.codedeploy.deployments.get(id).ok_or_else(|| {
        if id.starts_with("d-") {
            err(
                "DeploymentDoesNotExistException",
                format!("Deployment {id} does not exist."),
            )
        } else {
            err(
                "InvalidDeploymentIdException",
                format!("{id} is not a deployment id."),
            )
        }
    })
}

/// Checks a CreateDeployment revision against the group's service; returns the AppSpec.
fn read_revision(state: &State, g: &Group, revision: &Value) -> Result<AppSpec, ApiError> {
    let bad = |m: String| err("InvalidRevisionException", m);
    if revision.is_null() {
        return Err(err(
            "RevisionRequiredException",
            "An ECS deployment needs a revision.",
        ));
    }
    if revision["revisionType"] != "AppSpecContent" {
        return Err(bad(format!(
            "the sandbox deploys revisionType AppSpecContent only, not {}",
            revision["revisionType"]
        )));
    }
    let content = revision["appSpecContent"]["content"]
        .as_str()
        .ok_or_else(|| bad("appSpecContent.content is required".into()))?;
    if let Some(sha) = revision["appSpecContent"]["sha256"].as_str() {
        let actual = format!("{:x}", sha2::Sha256::digest(content.as_bytes()));
        if !sha.eq_ignore_ascii_case(&actual) {
            return Err(bad(format!(
                "appSpecContent.sha256 {sha} is not the SHA-256 of the content ({actual})"
            )));
        }
    }
    let spec = parse_appspec(content).map_err(bad)?;
    let td = state
        .task_definition(&spec.task_definition)
        .ok_or_else(|| {
            bad(format!(
                "The task definition {} does not exist.",
                spec.task_definition
            ))
        })?;
    if !td.active {
        return Err(bad(format!("The task definition {} is inactive.", td.arn)));
    }
    let service = &state.clusters[&g.cluster].services[&g.service];
    let lb = service
        .load_balancers
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    if lb["containerName"].as_str() != Some(spec.container_name.as_str())
        || lb["containerPort"].as_u64() != Some(spec.container_port)
    {
        return Err(bad(format!(
            "The AppSpec's LoadBalancerInfo ({}:{}) does not match the ECS service's load balancer ({}:{}).",
            spec.container_name, spec.container_port, lb["containerName"], lb["containerPort"]
        )));
    }
    if !td
        .containers()
        .iter()
        .any(|c| c.name == spec.container_name)
    {
        return Err(bad(format!(
            "The task definition {} has no container named {}.",
            td.arn, spec.container_name
        )));
    }
    Ok(AppSpec {
        task_definition: td.arn.clone(),
        ..spec
    })
}

/// A fresh deployment record of group `g` of `app`.
#[allow(clippy::too_many_arguments)]
fn new_deployment(
    app: &str,
    g: &Group,
    config: &str,
    routing: Routing,
    revision: Value,
    app_spec: AppSpec,
    creator: &'static str,
    now: Time,
) -> Deployment {
    Deployment {
        id: format!("d-{}", random_upper(9)),
        application: app.to_string(),
        group: g.name.clone(),
        config: config.to_string(),
        routing,
        revision,
        description: None,
        app_spec,
        status: Status::Created,
        error: None,
        created: now,
        started: None,
        completed: None,
        updated: now,
        creator,
        rollback_deployment: None,
        rollback_of: None,
        rollback_message: None,
        cluster: g.cluster.clone(),
        service: g.service.clone(),
        blue: None,
        green: None,
        green_weight: 0.0,
        events: EVENTS
            .iter()
            .map(|name| Event {
                name,
                status: EventStatus::Pending,
                start: None,
                end: None,
                diagnostics: None,
            })
            .collect(),
        phase: Phase::Event(0),
        phase_since: now,
        ready_released: false,
        termination_released: false,
        settings: g.settings.clone(),
        echo: g.echo.clone(),
        messages: Vec::new(),
    }
}

fn create_deployment(state: &mut State, input: &Value, now: Time) -> Reply {
    let (app, name) = group_names(input)?;
    let g = group(state, app, name)?.clone();
    let config_name = input["deploymentConfigName"]
        .as_str()
        .unwrap_or(&g.config)
        .to_string();
    let (routing, platform) = config(state, &config_name)?;
    if platform != "ECS" {
        return Err(err(
            "InvalidDeploymentConfigNameException",
            format!("{config_name} is not a deployment configuration for ECS."),
        ));
    }
    if let Some(d) = input["description"].as_str().filter(|d| d.len() > 512) {
        return Err(err(
            "DescriptionTooLongException",
            format!("The description is {} characters; at most 512.", d.len()),
        ));
    }
    if !state
        .clusters
        .get(&g.cluster)
        .and_then(|c| c.services.get(&g.service))
        .is_some_and(|s| s.active)
    {
        return Err(err(
            "InvalidECSServiceException",
            format!(
                "The ECS service {} in cluster {} no longer exists.",
                g.service, g.cluster
            ),
        ));
    }
    let spec = read_revision(state, &g, &input["revision"])?;
    if let Some(active) = state
        .codedeploy
        .deployments
        .values()
        .find(|d| d.application == app && d.group == name && !d.status.is_over())
    {
        return Err(err(
            "DeploymentLimitExceededException",
            format!(
                "The Deployment Group '{name}' already has an active Deployment '{}'",
                active.id
            ),
        ));
    }
    let mut d = new_deployment(
        app,
        &g,
        &config_name,
        routing,
        input["revision"].clone(),
        spec,
        "user",
        now,
    );
    d.description = input["description"].as_str().map(str::to_string);
    let id = d.id.clone();
    state.codedeploy.deployments.insert(id.clone(), d);
    Ok(json!({"deploymentId": id}))
}

fn list_deployments(state: &State, input: &Value) -> Reply {
    let app = input["applicationName"].as_str();
    let group = input["deploymentGroupName"].as_str();
    if let Some(app) = app {
        application(state, app)?;
        if let Some(g) = group {
            self::group(state, app, g)?;
        }
    } else if group.is_some() {
        return Err(err(
            "ApplicationNameRequiredException",
            "applicationName is required with deploymentGroupName.",
        ));
    }
    let statuses = strings(&input["includeOnlyStatuses"]);
    let mut found: Vec<&Deployment> = state
        .codedeploy
        .deployments
        .values()
        .filter(|d| app.is_none_or(|a| d.application == a))
        .filter(|d| group.is_none_or(|g| d.group == g))
        .filter(|d| statuses.is_empty() || statuses.iter().any(|s| s == d.status.as_str()))
        // createTimeRange: start and end, epoch seconds, both optional.
        .filter(|d| {
            let range = &input["createTimeRange"];
            range["start"].as_f64().is_none_or(|t| d.created >= t)
                && range["end"].as_f64().is_none_or(|t| d.created <= t)
        })
        .collect();
    found.sort_by(|a, b| b.created.total_cmp(&a.created));
    Ok(json!({"deployments": found.iter().map(|d| &d.id).collect::<Vec<_>>()}))
}

/// Ends deployment `id` with error `code`: Failed or Stopped; rolled back when `rollback`
/// says so (None: when the group's automatic rollback lists the code's event). Returns the
/// rollback deployment's id.
pub fn fail(
    state: &mut State,
    id: &str,
    code: &str,
    message: &str,
    rollback: Option<bool>,
    now: Time,
) -> Option<String> {
    let cd = &mut state.codedeploy;
    // What a rollback redeploys: the group's last revision that succeeded, if any.
    let last_good = cd.deployments.get(id).and_then(|failed| {
        cd.deployments
            .values()
            .filter(|o| {
                o.application == failed.application
                    && o.group == failed.group
                    && o.status == Status::Succeeded
                    && o.rollback_of.is_none()
            })
            .max_by(|a, b| a.created.total_cmp(&b.created))
            .map(|o| (o.revision.clone(), o.app_spec.clone()))
    });
    let d = cd.deployments.get_mut(id)?;
    if d.status.is_over() {
        return None;
    }
    d.status = status_for(code);
    d.error = Some((code.to_string(), message.to_string()));
    d.completed = Some(now);
    d.updated = now;
    d.phase = Phase::Done;
    for e in d.events.iter_mut() {
        if e.status == EventStatus::InProgress {
            e.status = EventStatus::Failed;
            e.end = Some(now);
        }
    }
    let roll = rollback.unwrap_or_else(|| {
        d.settings.auto_rollback
            && d.settings
                .rollback_events
                .iter()
                .any(|e| e == rollback_event(code))
    });
    // Before Install has made the replacement there is nothing to roll back (the developer
    // guide: no rollback at BeforeInstall); a rollback is not rolled back again.
    if !roll || d.rollback_of.is_some() || d.blue.is_none() || d.green.is_none() {
        return None;
    }
    let mut r = d.clone();
    r.id = format!("d-{}", random_upper(9));
    r.creator = "codeDeployRollback";
    r.status = Status::Created;
    r.error = None;
    r.created = now;
    r.started = None;
    r.completed = None;
    r.updated = now;
    r.rollback_of = Some(id.to_string());
    r.rollback_deployment = None;
    r.description = None;
    r.phase = Phase::Event(0);
    r.phase_since = now;
    r.messages = Vec::new();
    if let Some((revision, spec)) = last_good {
        r.revision = revision;
        r.app_spec = spec;
    }
    for e in r.events.iter_mut() {
        *e = Event {
            name: e.name,
            status: EventStatus::Pending,
            start: None,
            end: None,
            diagnostics: None,
        };
    }
    let message = format!(
        "Deployment {id} failed ({code}); rolled back by deployment {}.",
        r.id
    );
    r.rollback_message = Some(message.clone());
    d.rollback_deployment = Some(r.id.clone());
    d.rollback_message = Some(message);
    let rid = r.id.clone();
    cd.deployments.insert(rid.clone(), r);
    Some(rid)
}

fn stop_deployment(state: &mut State, input: &Value, now: Time) -> Reply {
    let d = deployment(state, input)?;
    if d.status.is_over() {
        return Err(err(
            "DeploymentAlreadyCompletedException",
            format!(
                "Deployment {} is already over ({}).",
                d.id,
                d.status.as_str()
            ),
        ));
    }
    let id = d.id.clone();
    let rollback = input["autoRollbackEnabled"].as_bool();
    let rolled = fail(
        state,
        &id,
        "MANUAL_STOP",
        "The deployment was stopped by a user request.",
        rollback,
        now,
    );
    let message = match rolled {
        Some(r) => format!("Deployment {id} stopped; rollback deployment {r} started."),
        None => format!("Deployment {id} stopped."),
    };
    Ok(json!({"status": "Succeeded", "statusMessage": message}))
}

fn continue_deployment(state: &mut State, input: &Value, now: Time) -> Reply {
    let wait = input["deploymentWaitType"].as_str().unwrap_or("READY_WAIT");
    if !["READY_WAIT", "TERMINATION_WAIT"].contains(&wait) {
        return Err(err(
            "InvalidDeploymentWaitTypeException",
            format!("deploymentWaitType must be READY_WAIT or TERMINATION_WAIT, not {wait:?}"),
        ));
    }
    let id = deployment(state, input)?.id.clone();
    let d = state
        .codedeploy
        .deployments
        .get_mut(&id)
        .expect("found above");
    if d.status.is_over() {
        return Err(err(
            "DeploymentAlreadyCompletedException",
            format!("Deployment {id} is already over ({}).", d.status.as_str()),
        ));
    }
    match (wait, d.phase) {
        ("READY_WAIT", Phase::ReadyWait) => d.ready_released = true,
        ("TERMINATION_WAIT", Phase::TerminationWait) => d.termination_released = true,
        ("READY_WAIT", _) => {
            return Err(err(
                "DeploymentIsNotInReadyStateException",
                format!("Deployment {id} is not waiting for traffic to be rerouted."),
            ))
        }
        _ => {
            return Err(err(
                "InvalidDeploymentStatusException",
                format!("Deployment {id} is not waiting to terminate the original task set."),
            ))
        }
    }
    d.updated = now;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hooks: &str) -> String {
        format!(
            r#"{{"version": 0.0, "Resources": [{{"TargetService": {{"Type": "AWS::ECS::Service",
               "Properties": {{"TaskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/web:2",
               "LoadBalancerInfo": {{"ContainerName": "app", "ContainerPort": 80}}}}}}}}],
               "Hooks": [{hooks}]}}"#
        )
    }

    #[test]
    fn an_appspec_is_read_as_json_with_its_hooks() {
        let s = parse_appspec(&spec(
            r#"{"BeforeInstall": "check"}, {"AfterAllowTestTraffic": "arn:aws:lambda:us-east-1:1:function:smoke"}"#,
        ))
        .unwrap();
        assert_eq!(
            s.task_definition,
            "arn:aws:ecs:us-east-1:1:task-definition/web:2"
        );
        assert_eq!((s.container_name.as_str(), s.container_port), ("app", 80));
        assert_eq!(s.hooks["BeforeInstall"], "check");
        assert_eq!(s.hooks.len(), 2);
    }

    #[test]
    fn a_wrong_appspec_says_what_is_wrong() {
        for (content, want) in [
            ("version: 0.0\nResources: []".to_string(), "JSON AppSpecs"),
            (r#"{"Resources": []}"#.to_string(), "exactly one ECS service"),
            (
                r#"{"Resources": [{"T": {"Type": "AWS::Lambda::Function"}}]}"#.to_string(),
                "AWS::ECS::Service",
            ),
            (
                r#"{"Resources": [{"T": {"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": "x"}}}]}"#
                    .to_string(),
                "ContainerName",
            ),
            (spec(r#"{"Install": "f"}"#), "not an ECS lifecycle event"),
            (spec(r#"{"BeforeInstall": ""}"#), "must name a Lambda function"),
        ] {
            let e = parse_appspec(&content).unwrap_err();
            assert!(e.contains(want), "{content}: {e}");
        }
    }

    #[test]
    fn error_codes_end_deployments_as_failed_or_stopped() {
        for (code, status, event) in [
            (
                "HOOK_EXECUTION_FAILURE",
                Status::Failed,
                "DEPLOYMENT_FAILURE",
            ),
            ("ECS_UPDATE_ERROR", Status::Failed, "DEPLOYMENT_FAILURE"),
            ("ALARM_ACTIVE", Status::Stopped, "DEPLOYMENT_STOP_ON_ALARM"),
            ("MANUAL_STOP", Status::Stopped, "DEPLOYMENT_STOP_ON_REQUEST"),
            ("TIMEOUT", Status::Stopped, "DEPLOYMENT_FAILURE"),
        ] {
            assert_eq!(status_for(code), status, "{code}");
            assert_eq!(rollback_event(code), event, "{code}");
        }
        assert_eq!(Status::Baking.target_status(), "InProgress");
        assert_eq!(Status::Stopped.target_status(), "Failed");
        assert_eq!(Status::Created.target_status(), "Pending");
        assert!(Status::Stopped.is_over() && !Status::Ready.is_over());
    }

    #[test]
    fn hooks_fail_by_name_or_arn() {
        let hooks: BTreeMap<String, String> = [
            ("smoke".to_string(), "Failed".to_string()),
            ("ok".to_string(), "Succeeded".to_string()),
        ]
        .into();
        assert!(hook_fails(&hooks, "smoke"));
        assert!(hook_fails(
            &hooks,
            "arn:aws:lambda:us-east-1:1:function:smoke"
        ));
        assert!(hook_fails(
            &hooks,
            "arn:aws:lambda:us-east-1:1:function:smoke:live"
        ));
        assert!(!hook_fails(&hooks, "ok"));
        assert!(!hook_fails(&hooks, "other"));
    }

    #[test]
    fn traffic_routing_is_read_from_the_config() {
        assert_eq!(Routing::read(&json!({})), Ok(Routing::AllAtOnce));
        assert_eq!(
            Routing::read(&json!({"type": "TimeBasedCanary",
                "timeBasedCanary": {"canaryPercentage": 20, "canaryInterval": 1}})),
            Ok(Routing::Canary(20.0, 1.0))
        );
        assert!(Routing::read(&json!({"type": "TimeBasedLinear",
            "timeBasedLinear": {"linearPercentage": 0, "linearInterval": 1}}))
        .is_err());
        assert!(Routing::read(&json!({"type": "Sometimes"})).is_err());
        assert_eq!(
            predefined("CodeDeployDefault.ECSLinear10PercentEvery3Minutes"),
            Some(Routing::Linear(10.0, 3.0))
        );
    }

    #[test]
    fn a_group_reads_its_ready_and_termination_waits_and_checks_the_rest() {
        let good = json!({
            "blueGreenDeploymentConfiguration": {
                "terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE", "terminationWaitTimeInMinutes": 5},
                "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 10}},
            "loadBalancerInfo": {"targetGroupPairInfoList": [{"targetGroups": [{"name": "blue"}, {"name": "green"}],
                "prodTrafficRoute": {"listenerArns": ["arn:l"]}}]},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE"]},
        });
        let (s, echo) = read_group(&good).unwrap();
        assert!(s.ready_stop && !s.test_listeners);
        assert_eq!(
            (s.ready_wait_minutes, s.termination_wait_minutes),
            (10.0, 5.0)
        );
        assert_eq!(s.target_groups, vec!["blue", "green"]);
        assert_eq!(echo["deploymentStyle"]["deploymentType"], "BLUE_GREEN");
        let with = |path: &str, v: Value| {
            let mut i = good.clone();
            *i.pointer_mut(path).unwrap() = v;
            read_group(&i).unwrap_err().kind
        };
        assert_eq!(
            with("/autoRollbackConfiguration/events", json!([])),
            "InvalidAutoRollbackConfigException"
        );
        assert_eq!(
            with("/loadBalancerInfo/targetGroupPairInfoList", json!([])),
            "InvalidTargetGroupPairException"
        );
        assert_eq!(
            with(
                "/blueGreenDeploymentConfiguration/deploymentReadyOption/actionOnTimeout",
                json!("WAIT")
            ),
            "InvalidBlueGreenDeploymentConfigurationException"
        );
    }

    /// A state with cluster `c`, task definitions web:1 and web:2 (container `app`), and a
    /// CODE_DEPLOY service `web` on web:1 behind a load balancer on app:80.
    fn with_service() -> State {
        let mut s = State::new(crate::model::Place {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        });
        let ecs = |s: &mut State, op: &str, v: Value| crate::ecs::handle(s, op, &v, 0.0);
        ecs(&mut s, "CreateCluster", json!({"clusterName": "c"})).unwrap();
        for _ in 0..2 {
            let td =
                json!({"family": "web", "containerDefinitions": [{"name": "app", "image": "img"}]});
            ecs(&mut s, "RegisterTaskDefinition", td).unwrap();
        }
        let lbs =
            json!([{"targetGroupArn": "arn:tg/blue", "containerName": "app", "containerPort": 80}]);
        let no_lb = json!({"cluster": "c", "serviceName": "web", "taskDefinition": "web:1",
                           "desiredCount": 1, "deploymentController": {"type": "CODE_DEPLOY"}});
        assert_eq!(
            ecs(&mut s, "CreateService", no_lb.clone())
                .unwrap_err()
                .kind,
            "InvalidParameterException",
            "CODE_DEPLOY needs a load balancer"
        );
        let mut create = no_lb;
        create["loadBalancers"] = lbs;
        let out = ecs(&mut s, "CreateService", create).unwrap();
        assert_eq!(
            out["service"]["deploymentController"]["type"],
            "CODE_DEPLOY"
        );
        assert_eq!(out["service"]["deployments"], json!([]));
        assert_eq!(out["service"]["taskSets"][0]["status"], "PRIMARY");
        s
    }

    fn group_input() -> Value {
        json!({"applicationName": "app", "deploymentGroupName": "g",
               "serviceRoleArn": "arn:aws:iam::1:role/cd",
               "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
               "ecsServices": [{"serviceName": "web", "clusterName": "c"}],
               "loadBalancerInfo": {"targetGroupPairInfoList": [{"targetGroups": [{"name": "blue"}, {"name": "green"}],
                   "prodTrafficRoute": {"listenerArns": ["arn:l"]}}]}})
    }

    fn revision(td: &str, port: u64) -> Value {
        let content = json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service",
            "Properties": {"TaskDefinition": td, "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": port}}}}]})
        .to_string();
        json!({"revisionType": "AppSpecContent", "appSpecContent": {"content": content}})
    }

    #[test]
    fn a_code_deploy_service_refuses_new_task_definitions_and_task_set_calls() {
        let mut s = with_service();
        let up = json!({"cluster": "c", "service": "web", "taskDefinition": "web:2"});
        let e = crate::ecs::handle(&mut s, "UpdateService", &up, 1.0).unwrap_err();
        assert!(e.message.contains("Use AWS CodeDeploy"), "{}", e.message);
        let scale = json!({"cluster": "c", "service": "web", "desiredCount": 3});
        let out = crate::ecs::handle(&mut s, "UpdateService", &scale, 1.0).unwrap();
        assert_eq!(out["service"]["taskSets"][0]["computedDesiredCount"], 3);
        let create = json!({"cluster": "c", "service": "web", "taskDefinition": "web:2"});
        let e = crate::ecs::handle(&mut s, "CreateTaskSet", &create, 1.0).unwrap_err();
        assert!(
            e.message.contains("external deployment controllers"),
            "{}",
            e.message
        );
        let listed = json!({"cluster": "c", "service": "web"});
        let out = crate::ecs::handle(&mut s, "ListServiceDeployments", &listed, 1.0).unwrap();
        assert_eq!(out["serviceDeployments"], json!([]));
    }

    #[test]
    fn groups_and_deployments_are_checked_against_the_service_and_each_other() {
        let mut s = with_service();
        let cd = |s: &mut State, op: &str, v: Value| handle(s, op, &v, 1.0);
        let app = json!({"applicationName": "app", "computePlatform": "ECS"});
        cd(&mut s, "CreateApplication", app.clone()).unwrap();
        assert_eq!(
            cd(&mut s, "CreateApplication", app).unwrap_err().kind,
            "ApplicationAlreadyExistsException"
        );
        let mut other = group_input();
        other["ecsServices"][0]["serviceName"] = json!("nope");
        assert_eq!(
            cd(&mut s, "CreateDeploymentGroup", other).unwrap_err().kind,
            "InvalidECSServiceException"
        );
        cd(&mut s, "CreateDeploymentGroup", group_input()).unwrap();
        let mut again = group_input();
        again["deploymentGroupName"] = json!("g2");
        assert_eq!(
            cd(&mut s, "CreateDeploymentGroup", again).unwrap_err().kind,
            "ECSServiceMappingLimitExceededException"
        );
        let info = cd(
            &mut s,
            "GetDeploymentGroup",
            json!({"applicationName": "app", "deploymentGroupName": "g"}),
        )
        .unwrap();
        assert_eq!(
            info["deploymentGroupInfo"]["deploymentConfigName"],
            DEFAULT_CONFIG
        );
        assert_eq!(
            info["deploymentGroupInfo"]["ecsServices"][0]["clusterName"],
            "c"
        );

        let deploy = |td: &str, port: u64| {
            json!({"applicationName": "app", "deploymentGroupName": "g",
                                                   "revision": revision(td, port)})
        };
        for (td, port, want) in [
            ("web:9", 80, "does not exist"),
            ("web:2", 8080, "does not match"),
        ] {
            let e = cd(&mut s, "CreateDeployment", deploy(td, port)).unwrap_err();
            assert_eq!(e.kind, "InvalidRevisionException");
            assert!(e.message.contains(want), "{}", e.message);
        }
        let id = cd(&mut s, "CreateDeployment", deploy("web:2", 80)).unwrap()["deploymentId"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(id.starts_with("d-") && id.len() == 11, "{id}");
        let e = cd(&mut s, "CreateDeployment", deploy("web:2", 80)).unwrap_err();
        assert_eq!(e.kind, "DeploymentLimitExceededException");
        assert!(e.message.contains(&id), "{}", e.message);
        let got = cd(&mut s, "GetDeployment", json!({"deploymentId": id})).unwrap();
        assert_eq!(got["deploymentInfo"]["status"], "Created");
        assert_eq!(got["deploymentInfo"]["creator"], "user");
        let target = cd(
            &mut s,
            "GetDeploymentTarget",
            json!({"deploymentId": id, "targetId": "c:web"}),
        )
        .unwrap();
        assert_eq!(target["deploymentTarget"]["ecsTarget"]["status"], "Pending");
        let stop = cd(&mut s, "StopDeployment", json!({"deploymentId": id})).unwrap();
        assert_eq!(stop["status"], "Succeeded");
        let got = cd(&mut s, "GetDeployment", json!({"deploymentId": id})).unwrap();
        assert_eq!(got["deploymentInfo"]["status"], "Stopped");
        assert_eq!(
            got["deploymentInfo"]["errorInformation"]["code"],
            "MANUAL_STOP"
        );
        assert_eq!(
            cd(&mut s, "StopDeployment", json!({"deploymentId": id}))
                .unwrap_err()
                .kind,
            "DeploymentAlreadyCompletedException"
        );
        let listed = cd(
            &mut s,
            "ListDeployments",
            json!({"applicationName": "app", "deploymentGroupName": "g",
                                                          "includeOnlyStatuses": ["Stopped"]}),
        )
        .unwrap();
        assert_eq!(listed["deployments"], json!([id]));
    }

    #[test]
    fn a_deployment_is_rolled_back_only_once_it_has_a_replacement() {
        let mut s = with_service();
        handle(
            &mut s,
            "CreateApplication",
            &json!({"applicationName": "app", "computePlatform": "ECS"}),
            1.0,
        )
        .unwrap();
        let mut g = group_input();
        g["autoRollbackConfiguration"] = json!({"enabled": true, "events": ["DEPLOYMENT_FAILURE"]});
        handle(&mut s, "CreateDeploymentGroup", &g, 1.0).unwrap();
        let deploy = json!({"applicationName": "app", "deploymentGroupName": "g", "revision": revision("web:2", 80)});
        let new = |s: &mut State| {
            let id = handle(s, "CreateDeployment", &deploy, 1.0).unwrap()["deploymentId"]
                .as_str()
                .unwrap()
                .to_string();
            s.codedeploy.deployments.get_mut(&id).unwrap().blue = Some("ecs-svc/1".into());
            id
        };
        let early = new(&mut s);
        assert_eq!(
            fail(
                &mut s,
                &early,
                "HOOK_EXECUTION_FAILURE",
                "BeforeInstall failed",
                None,
                2.0
            ),
            None,
            "nothing to roll back before Install"
        );
        assert_eq!(s.codedeploy.deployments[&early].status, Status::Failed);
        let late = new(&mut s);
        s.codedeploy.deployments.get_mut(&late).unwrap().green = Some("ecs-svc/2".into());
        assert_eq!(
            fail(&mut s, &late, "MANUAL_STOP", "stopped", None, 3.0),
            None,
            "the group rolls back on DEPLOYMENT_FAILURE only"
        );
        let last = new(&mut s);
        s.codedeploy.deployments.get_mut(&last).unwrap().green = Some("ecs-svc/3".into());
        let r = fail(&mut s, &last, "ECS_UPDATE_ERROR", "tasks failed", None, 4.0).unwrap();
        let rollback = &s.codedeploy.deployments[&r];
        assert_eq!(rollback.creator, "codeDeployRollback");
        assert_eq!(rollback.rollback_of.as_deref(), Some(last.as_str()));
        assert_eq!(
            s.codedeploy.deployments[&last]
                .rollback_deployment
                .as_deref(),
            Some(r.as_str())
        );
        let info = handle(&mut s, "GetDeployment", &json!({"deploymentId": last}), 5.0).unwrap();
        assert_eq!(
            info["deploymentInfo"]["rollbackInfo"]["rollbackDeploymentId"],
            r.as_str()
        );
        assert_eq!(
            info["deploymentInfo"]["errorInformation"]["code"],
            "ECS_UPDATE_ERROR"
        );
    }
}
