//! The ECS API operations the sandbox serves, as changes to its state. No Docker here: the
//! runner turns the state into containers on its ticks.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use serde_json::{json, Value};

use super::deployments;
use super::lifecycle;
use super::model::{
    CircuitBreaker, Cluster, Deployment, DeploymentStatus, Rollout, Service, State, Task,
    TaskDefinition, Time,
};
use super::strategy;
use super::taskset::{self, Controller};

/// An error as ECS sends it: `__type` and `message`, HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    fn client(message: impl Into<String>) -> Self {
        Self::new("ClientException", message)
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }
}

pub(crate) type Reply = Result<Value, ApiError>;

/// Runs one ECS operation against the state.
pub fn handle(state: &mut State, op: &str, input: &Value, now: Time) -> Reply {
    if state.mode.without_service_deployments
        && super::model::SERVICE_DEPLOYMENT_OPERATIONS.contains(&op)
    {
        return Err(unknown(op));
    }
    match op {
        "CreateCluster" => create_cluster(state, input),
        "DescribeClusters" => describe_clusters(state, input),
        "ListClusters" => Ok(
            json!({"clusterArns": state.clusters.values().map(|c| c.arn.clone()).collect::<Vec<_>>()}),
        ),
        "RegisterTaskDefinition" => register_task_definition(state, input, now),
        "DescribeTaskDefinition" => describe_task_definition(state, input),
        "ListTaskDefinitions" => list_task_definitions(state, input),
        "ListTaskDefinitionFamilies" => {
            Ok(json!({"families": state.families.keys().collect::<Vec<_>>()}))
        }
        "DeregisterTaskDefinition" => deregister_task_definition(state, input, now),
        "CreateService" => create_service(state, input, now),
        "UpdateService" => update_service(state, input, now),
        "DescribeServices" => describe_services(state, input),
        "ListServices" => list_services(state, input),
        "DeleteService" => delete_service(state, input),
        "RunTask" => run_task(state, input, now),
        "DescribeTasks" => describe_tasks(state, input),
        "ListTasks" => list_tasks(state, input),
        "StopTask" => stop_task(state, input),
        "ListServiceDeployments" => list_service_deployments(state, input),
        "DescribeServiceDeployments" => describe_service_deployments(state, input),
        "DescribeServiceRevisions" => describe_service_revisions(state, input),
        "StopServiceDeployment" => deployments::stop(state, input, now),
        "ContinueServiceDeployment" => deployments::resume(state, input, now),
        "CreateTaskSet" => taskset::create(state, input, now),
        "UpdateTaskSet" => taskset::update(state, input, now),
        "UpdateServicePrimaryTaskSet" => taskset::update_primary(state, input, now),
        "DeleteTaskSet" => taskset::delete(state, input, now),
        "DescribeTaskSets" => taskset::describe(state, input),
        "TagResource" => tag_resource(state, input),
        "UntagResource" => untag_resource(state, input),
        "ListTagsForResource" => list_tags_for_resource(state, input),
        _ => Err(unknown(op)),
    }
}

/// What an endpoint without operation `op` answers.
fn unknown(op: &str) -> ApiError {
    ApiError::new(
        "UnknownOperationException",
        format!("the sandbox does not implement ECS {op}"),
    )
}

pub(crate) fn str_field<'a>(input: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    input[name]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("{name} is required")))
}

fn short_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

fn cluster_name(input: &Value) -> &str {
    input["cluster"]
        .as_str()
        .map(short_name)
        .unwrap_or("default")
}

fn cluster_mut<'a>(state: &'a mut State, input: &Value) -> Result<&'a mut Cluster, ApiError> {
    let name = cluster_name(input).to_string();
    state
        .clusters
        .get_mut(&name)
        .ok_or_else(|| ApiError::new("ClusterNotFoundException", "Cluster not found."))
}

fn cluster<'a>(state: &'a State, input: &Value) -> Result<&'a Cluster, ApiError> {
    state
        .clusters
        .get(cluster_name(input))
        .ok_or_else(|| ApiError::new("ClusterNotFoundException", "Cluster not found."))
}

fn create_cluster(state: &mut State, input: &Value) -> Reply {
    let name = input["clusterName"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let arn = state.place.arn("cluster", &name);
    let c = state
        .clusters
        .entry(name.clone())
        .or_insert_with(|| Cluster {
            name,
            arn,
            services: BTreeMap::new(),
            tasks: BTreeMap::new(),
        });
    Ok(json!({"cluster": c.to_json()}))
}

fn describe_clusters(state: &State, input: &Value) -> Reply {
    let names: Vec<String> = match input["clusters"].as_array() {
        Some(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(|s| short_name(s).to_string()))
            .collect(),
        None => vec!["default".into()],
    };
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for n in names {
        match state.clusters.get(&n) {
            Some(c) => clusters.push(c.to_json()),
            None => {
                failures.push(json!({"arn": state.place.arn("cluster", &n), "reason": "MISSING"}))
            }
        }
    }
    Ok(json!({"clusters": clusters, "failures": failures}))
}

/// Members of the API reference's TaskDefinition type that only ECS sets: they are in every
/// DescribeTaskDefinition answer and are not RegisterTaskDefinition request members. A client
/// that sends one back (a describe output registered as it is) is refused, as the aws CLI
/// refuses it, so the sandbox catches a client that forgets to leave them out. Members the
/// sandbox does not know at all are kept: they may be newer than it.
pub const SET_BY_ECS: [&str; 8] = [
    "compatibilities",
    "deregisteredAt",
    "registeredAt",
    "registeredBy",
    "requiresAttributes",
    "revision",
    "status",
    "taskDefinitionArn",
];

/// `v` without null members, recursively (JSON clients send null for "not set").
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Checks a task definition's input and returns what is stored of it (no tags, no nulls).
pub fn validate_task_definition(input: &Value) -> Result<Value, ApiError> {
    let input = &without_nulls(input.clone());
    if let Some(set_by_ecs) = input
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .find(|k| SET_BY_ECS.contains(&k.as_str()))
    {
        return Err(ApiError::client(format!(
            "{set_by_ecs} is set by ECS and cannot be registered. (field: {set_by_ecs})"
        )));
    }
    let family = str_field(input, "family")
        .map_err(|_| ApiError::client("Family is required. (field: family)"))?;
    if family.len() > 255
        || !family
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::client(format!(
            "Family contains invalid characters: {family:?}. Up to 255 letters, numbers, hyphens and underscores are allowed. (field: family)"
        )));
    }
    let defs = input["containerDefinitions"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ApiError::client("Container list cannot be empty. (field: containerDefinitions)")
        })?;
    let mut names = Vec::new();
    for (i, d) in defs.iter().enumerate() {
        let name = d["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err(ApiError::client(format!(
                "Container name is required. (field: containerDefinitions[{i}].name)"
            )));
        }
        if names.contains(&name) {
            return Err(ApiError::client(format!(
                "Duplicate container name {name:?}. (field: containerDefinitions[{i}].name)"
            )));
        }
        names.push(name);
        if d["image"].as_str().unwrap_or_default().is_empty() {
            return Err(ApiError::client(format!(
                "Container image is required. (field: containerDefinitions[{i}].image)"
            )));
        }
    }
    let mut body = input.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("tags");
    }
    with_ecs_defaults(&mut body);
    Ok(body)
}

/// Fills in what ECS itself returns for fields left out at registration (clients such as
/// ecs-deploy rely on them being there).
fn with_ecs_defaults(body: &mut Value) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    for key in ["volumes", "placementConstraints"] {
        obj.entry(key).or_insert(json!([]));
    }
    if let Some(defs) = obj
        .get_mut("containerDefinitions")
        .and_then(|d| d.as_array_mut())
    {
        for d in defs.iter_mut().filter_map(|d| d.as_object_mut()) {
            d.entry("cpu").or_insert(json!(0));
            d.entry("essential").or_insert(json!(true));
            for key in ["portMappings", "environment", "mountPoints", "volumesFrom"] {
                d.entry(key).or_insert(json!([]));
            }
        }
    }
}

fn register_task_definition(state: &mut State, input: &Value, now: Time) -> Reply {
    let body = validate_task_definition(input)?;
    let family = body["family"].as_str().unwrap_or_default().to_string();
    let revisions = state.families.entry(family.clone()).or_default();
    let revision = revisions.last().map(|d| d.revision + 1).unwrap_or(1);
    let arn = format!(
        "arn:aws:ecs:{}:{}:task-definition/{family}:{revision}",
        state.place.region, state.place.account
    );
    let tags = input.get("tags").cloned().unwrap_or_else(|| json!([]));
    let def = TaskDefinition {
        family,
        revision,
        arn,
        active: true,
        body,
        tags: tags.clone(),
        registered_at: now,
        deregistered_at: None,
    };
    let out = json!({"taskDefinition": def.to_json(), "tags": tags});
    revisions.push(def);
    Ok(out)
}

fn task_definition_ref<'a>(
    state: &'a State,
    reference: &str,
) -> Result<&'a TaskDefinition, ApiError> {
    state.task_definition(reference).ok_or_else(|| {
        ApiError::client(format!(
            "Unable to describe task definition {reference}. (field: taskDefinition)"
        ))
    })
}

fn describe_task_definition(state: &State, input: &Value) -> Reply {
    let def = task_definition_ref(state, str_field(input, "taskDefinition")?)?;
    let with_tags = input["include"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "TAGS"));
    let mut out = json!({"taskDefinition": def.to_json()});
    if with_tags {
        out["tags"] = def.tags.clone();
    }
    Ok(out)
}

/// The task definition a tagging call names by ARN; other resource types keep no tags here.
fn tagged<'a>(
    state: &'a mut State,
    input: &Value,
) -> Result<Option<&'a mut TaskDefinition>, ApiError> {
    let arn = str_field(input, "resourceArn")?;
    if !arn.starts_with("arn:") {
        return Err(ApiError::invalid(format!("Invalid resource ARN: {arn}")));
    }
    if !arn.contains(":task-definition/") {
        return Ok(None);
    }
    let (family, revision) = arn
        .rsplit_once(":task-definition/")
        .and_then(|(_, r)| r.rsplit_once(':'))
        .and_then(|(f, r)| Some((f.to_string(), r.parse::<u32>().ok()?)))
        .ok_or_else(|| ApiError::invalid(format!("Invalid resource ARN: {arn}")))?;
    state
        .families
        .get_mut(&family)
        .and_then(|defs| defs.iter_mut().find(|d| d.revision == revision))
        .map(Some)
        .ok_or_else(|| ApiError::client("The specified task definition does not exist."))
}

/// TagResource: adds the tags, replacing the values of keys already there.
fn tag_resource(state: &mut State, input: &Value) -> Reply {
    let tags = input["tags"]
        .as_array()
        .ok_or_else(|| ApiError::invalid("tags must be a list of key/value pairs"))?
        .clone();
    if let Some(def) = tagged(state, input)? {
        let mut current = def.tags.as_array().cloned().unwrap_or_default();
        for tag in tags {
            current.retain(|t| t["key"] != tag["key"]);
            current.push(tag);
        }
        def.tags = Value::Array(current);
    }
    Ok(json!({}))
}

/// UntagResource: removes the tags whose keys are listed.
fn untag_resource(state: &mut State, input: &Value) -> Reply {
    let keys = input["tagKeys"].as_array().cloned().unwrap_or_default();
    if let Some(def) = tagged(state, input)? {
        if let Some(current) = def.tags.as_array_mut() {
            current.retain(|t| !keys.contains(&t["key"]));
        }
    }
    Ok(json!({}))
}

/// ListTagsForResource.
fn list_tags_for_resource(state: &mut State, input: &Value) -> Reply {
    let tags = tagged(state, input)?
        .map(|d| d.tags.clone())
        .unwrap_or_else(|| json!([]));
    Ok(json!({ "tags": tags }))
}

fn list_task_definitions(state: &State, input: &Value) -> Reply {
    let prefix = input["familyPrefix"].as_str().unwrap_or("");
    let want_active = input["status"].as_str().unwrap_or("ACTIVE") == "ACTIVE";
    let mut arns: Vec<String> = state
        .families
        .iter()
        .filter(|(f, _)| f.starts_with(prefix))
        .flat_map(|(_, defs)| defs.iter())
        .filter(|d| d.active == want_active)
        .map(|d| d.arn.clone())
        .collect();
    if input["sort"].as_str() == Some("DESC") {
        arns.reverse();
    }
    Ok(json!({"taskDefinitionArns": arns}))
}

fn deregister_task_definition(state: &mut State, input: &Value, now: Time) -> Reply {
    let reference = str_field(input, "taskDefinition")?;
    let arn = task_definition_ref(state, reference)?.arn.clone();
    let def = state
        .families
        .values_mut()
        .flat_map(|v| v.iter_mut())
        .find(|d| d.arn == arn)
        .expect("found above");
    def.active = false;
    def.deregistered_at = Some(now);
    Ok(json!({"taskDefinition": def.to_json()}))
}

/// `ecs-svc/` and 19 digits, as ECS names deployments.
pub fn deployment_id() -> String {
    let mut rng = rand::rng();
    format!(
        "ecs-svc/{}",
        (0..19)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect::<String>()
    )
}

fn new_deployment(id: String, task_definition: &str, desired: u32, now: Time) -> Deployment {
    Deployment {
        id,
        status: DeploymentStatus::Primary,
        task_definition: task_definition.to_string(),
        desired_count: desired,
        failed_tasks: 0,
        rollout: Rollout::InProgress,
        rollout_reason: "ECS deployment ".to_string() + "in progress.",
        created_at: now,
        updated_at: now,
        rollback_of: None,
        config: Default::default(),
        progress: None,
        triggered_alarms: Vec::new(),
    }
}

/// What `deploymentConfiguration` sets: maximumPercent, minimumHealthyPercent, the breaker and
/// the strategy.
type DeploymentConfig = (u32, u32, CircuitBreaker, strategy::Config);

fn read_deployment_config(
    input: &Value,
    service: Option<&Service>,
) -> Result<DeploymentConfig, ApiError> {
    let cfg = &input["deploymentConfiguration"];
    let (mut max, mut min, mut breaker) = match service {
        Some(s) => (s.maximum_percent, s.minimum_healthy_percent, s.breaker),
        None => (
            200,
            100,
            CircuitBreaker {
                enable: false,
                rollback: false,
            },
        ),
    };
    if let Some(m) = cfg["maximumPercent"].as_u64() {
        max = m as u32;
    }
    if let Some(m) = cfg["minimumHealthyPercent"].as_u64() {
        min = m as u32;
    }
    if cfg["deploymentCircuitBreaker"].is_object() {
        breaker = CircuitBreaker {
            enable: cfg["deploymentCircuitBreaker"]["enable"]
                .as_bool()
                .unwrap_or(false),
            rollback: cfg["deploymentCircuitBreaker"]["rollback"]
                .as_bool()
                .unwrap_or(false),
        };
    }
    if !(100..=2000).contains(&max) || min > 100 || min >= max {
        return Err(ApiError::invalid(format!(
            "maximumPercent ({max}) must be at least 100 and above minimumHealthyPercent ({min}), which is at most 100"
        )));
    }
    let current = service.map(|s| s.strategy.clone()).unwrap_or_default();
    let strategy = if cfg.is_object() {
        strategy::read(cfg, &current).map_err(ApiError::invalid)?
    } else {
        current
    };
    Ok((max, min, breaker, strategy))
}

/// `desiredCount`, if given, within what one sandbox can run.
fn desired_count(input: &Value) -> Result<Option<u32>, ApiError> {
    match &input["desiredCount"] {
        Value::Null => Ok(None),
        v => match v.as_u64() {
            Some(n) if n <= 1000 => Ok(Some(n as u32)),
            _ => Err(ApiError::invalid(format!(
                "desiredCount must be a whole number from 0 to 1000, not {v}"
            ))),
        },
    }
}

/// `deploymentController.type` (ECS when left out).
fn read_controller(input: &Value) -> Result<Controller, ApiError> {
    match &input["deploymentController"]["type"] {
        Value::Null => Ok(Controller::Ecs),
        v => v.as_str().and_then(Controller::parse).ok_or_else(|| {
            ApiError::invalid(format!(
                "deploymentController.type must be ECS, CODE_DEPLOY or EXTERNAL, not {v}"
            ))
        }),
    }
}

/// `loadBalancers`: each names a target group (or a load balancer) and a container and port.
fn read_load_balancers(input: &Value) -> Result<Value, ApiError> {
    let lbs = match &input["loadBalancers"] {
        Value::Null => return Ok(json!([])),
        Value::Array(a) => a.clone(),
        _ => return Err(ApiError::invalid("loadBalancers must be a list")),
    };
    for lb in &lbs {
        let target = lb["targetGroupArn"]
            .as_str()
            .or(lb["loadBalancerName"].as_str());
        if target.is_none_or(str::is_empty)
            || lb["containerName"].as_str().is_none_or(str::is_empty)
            || !lb["containerPort"].is_u64()
        {
            return Err(ApiError::invalid(
                "A load balancer needs a targetGroupArn (or loadBalancerName), a containerName and a containerPort.",
            ));
        }
    }
    Ok(Value::Array(lbs))
}

fn create_service(state: &mut State, input: &Value, now: Time) -> Reply {
    let name = str_field(input, "serviceName")?.to_string();
    let controller = read_controller(input)?;
    let load_balancers = read_load_balancers(input)?;
    if controller == Controller::CodeDeploy && load_balancers.as_array().is_none_or(Vec::is_empty) {
        return Err(ApiError::invalid(
            "A service with the CODE_DEPLOY deployment controller requires a load balancer (an Application or Network Load Balancer target group).",
        ));
    }
    let td_arn = match (controller, input["taskDefinition"].as_str()) {
        // An EXTERNAL service gets its task definitions from its task sets.
        (Controller::External, None) => String::new(),
        _ => {
            let td = task_definition_ref(state, str_field(input, "taskDefinition")?)?;
            if !td.active {
                return Err(ApiError::client(format!(
                    "TaskDefinition is inactive ({})",
                    td.arn
                )));
            }
            td.arn.clone()
        }
    };
    let desired = desired_count(input)?.unwrap_or(0);
    let (max, min, breaker, strategy) = read_deployment_config(input, None)?;
    let place = state.place.clone();
    let mode = state.mode;
    let cluster = cluster_mut(state, input)?;
    if cluster.services.get(&name).is_some_and(|s| s.active) {
        return Err(ApiError::invalid("Creation of service was not idempotent."));
    }
    let mut service = Service {
        arn: place.arn("service", &format!("{}/{name}", cluster.name)),
        name: name.clone(),
        cluster_arn: cluster.arn.clone(),
        task_definition: td_arn.clone(),
        desired_count: desired,
        maximum_percent: max,
        minimum_healthy_percent: min,
        breaker,
        strategy,
        deployments: Vec::new(),
        events: VecDeque::new(),
        created_at: now,
        active: true,
        tags: input.get("tags").cloned().unwrap_or_else(|| json!([])),
        history: Vec::new(),
        controller,
        load_balancers,
        task_sets: Vec::new(),
    };
    if controller.uses_task_sets() {
        // ECS makes the first task set of a CODE_DEPLOY service; an EXTERNAL service waits
        // for CreateTaskSet.
        if controller == Controller::CodeDeploy {
            let set =
                taskset::new_task_set(&service, &td_arn, taskset::Status::Primary, 100.0, now);
            service.task_sets.push(set);
        }
        let out = json!({"service": service.to_json(&cluster.tasks, mode)});
        cluster.services.insert(name, service);
        return Ok(out);
    }
    start_deployment(&mut service, &td_arn, now, None);
    if desired == 0 {
        // Nothing to roll out: ECS marks such a deployment complete at once.
        service.deployments[0].progress = None;
        service.deployments[0].rollout = Rollout::Completed;
        service.deployments[0].rollout_reason = "ECS deployment completed.".into();
    }
    let out = json!({"service": service.to_json(&cluster.tasks, mode)});
    cluster.services.insert(name, service);
    Ok(out)
}

fn service_mut<'a>(
    services: &'a mut BTreeMap<String, Service>,
    name: &str,
) -> Result<&'a mut Service, ApiError> {
    services
        .get_mut(short_name(name))
        .filter(|s| s.active)
        .ok_or_else(|| ApiError::new("ServiceNotFoundException", "Service not found."))
}

fn update_service(state: &mut State, input: &Value, now: Time) -> Reply {
    let name = str_field(input, "service")?.to_string();
    let new_td = match input["taskDefinition"].as_str() {
        Some(r) => {
            let td = task_definition_ref(state, r)?;
            if !td.active {
                return Err(ApiError::client(format!(
                    "TaskDefinition is inactive ({})",
                    td.arn
                )));
            }
            Some(td.arn.clone())
        }
        None => None,
    };
    let mode = state.mode;
    let cluster = cluster_mut(state, input)?;
    let service = service_mut(&mut cluster.services, &name)?;
    let force = input["forceNewDeployment"].as_bool().unwrap_or(false);
    if service.controller.uses_task_sets() {
        let changed = new_td
            .as_ref()
            .is_some_and(|td| *td != service.task_definition);
        if changed || force {
            return Err(ApiError::invalid(format!(
                "Unable to update task definition on services with a {} deployment controller. {}",
                service.controller.as_str(),
                if service.controller == Controller::CodeDeploy {
                    "Use AWS CodeDeploy to trigger a new deployment."
                } else {
                    "Use CreateTaskSet and UpdateServicePrimaryTaskSet."
                }
            )));
        }
        if input["loadBalancers"].is_array() {
            return Err(ApiError::invalid(format!(
                "Unable to update load balancers on services with a {} deployment controller.",
                service.controller.as_str()
            )));
        }
        let (max, min, breaker, _) = read_deployment_config(input, Some(service))?;
        service.maximum_percent = max;
        service.minimum_healthy_percent = min;
        service.breaker = breaker;
        // The desired count applies to the task sets through their scale.
        if let Some(d) = desired_count(input)? {
            service.desired_count = d;
        }
        return Ok(json!({"service": service.to_json(&cluster.tasks, mode)}));
    }
    let (max, min, breaker, strategy) = read_deployment_config(input, Some(service))?;
    service.maximum_percent = max;
    service.minimum_healthy_percent = min;
    service.breaker = breaker;
    service.strategy = strategy;
    if let Some(d) = desired_count(input)? {
        service.desired_count = d;
        for dep in service
            .deployments
            .iter_mut()
            .filter(|d| d.status == DeploymentStatus::Primary)
        {
            dep.desired_count = d;
        }
    }
    let changed = new_td
        .as_ref()
        .is_some_and(|td| *td != service.task_definition);
    if changed || force {
        let td = new_td.unwrap_or_else(|| service.task_definition.clone());
        start_deployment(service, &td, now, None);
    }
    let out = json!({"service": service.to_json(&cluster.tasks, mode)});
    Ok(out)
}

/// Makes a new PRIMARY deployment of `task_definition`; the previous primary becomes ACTIVE.
/// `rollback_of` names the failed deployment a circuit-breaker rollback undoes.
pub fn start_deployment(
    service: &mut Service,
    task_definition: &str,
    now: Time,
    rollback_of: Option<&str>,
) -> String {
    // More than one revision active: a BLUE_GREEN, LINEAR or CANARY deployment reconciles
    // first, and one still in progress is superseded.
    let reconcile = service.deployments.len() > 1;
    let source = service
        .deployments
        .iter()
        .filter(|d| d.rollout == Rollout::Completed)
        .max_by(|a, b| a.updated_at.total_cmp(&b.updated_at))
        .map(|d| d.id.clone());
    for d in service.deployments.iter_mut() {
        d.status = DeploymentStatus::Active;
        d.updated_at = now;
        if let Some(p) = d.progress.as_mut().filter(|p| p.active()) {
            p.stopped = Some("Superseded by a newer deployment.".into());
        }
    }
    let id = deployment_id();
    let mut d = new_deployment(id.clone(), task_definition, service.desired_count, now);
    d.rollback_of = rollback_of.map(str::to_string);
    d.config = service.strategy.clone();
    if d.config.kind != strategy::Kind::Rolling && rollback_of.is_none() {
        d.progress = Some(lifecycle::Progress::new(
            lifecycle::steps(&d.config, reconcile),
            source,
            now,
        ));
    }
    service.deployments.insert(0, d);
    service.task_definition = task_definition.to_string();
    id
}

fn describe_services(state: &State, input: &Value) -> Reply {
    let cluster = cluster(state, input)?;
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for name in input["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        match cluster.services.get(short_name(name)) {
            Some(s) => services.push(s.to_json(&cluster.tasks, state.mode)),
            None => failures.push(json!({"arn": state.place.arn("service", &format!("{}/{}", cluster.name, short_name(name))), "reason": "MISSING"})),
        }
    }
    Ok(json!({"services": services, "failures": failures}))
}

fn list_service_deployments(state: &State, input: &Value) -> Reply {
    let cluster = cluster(state, input)?;
    let name = str_field(input, "service")?;
    let service = cluster
        .services
        .get(short_name(name))
        .ok_or_else(|| ApiError::new("ServiceNotFoundException", "Service not found."))?;
    let statuses: Vec<String> = input["status"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({"serviceDeployments": service.service_deployments_brief(&statuses)}))
}

fn describe_service_deployments(state: &State, input: &Value) -> Reply {
    let (found, failures) = per_service_arn(state, &input["serviceDeploymentArns"], |c, s, arn| {
        s.service_deployment(arn, &c.tasks, state.mode)
    });
    Ok(json!({"serviceDeployments": found, "failures": failures}))
}

fn describe_service_revisions(state: &State, input: &Value) -> Reply {
    let (found, failures) = per_service_arn(state, &input["serviceRevisionArns"], |_, s, arn| {
        s.service_revision(arn)
    });
    Ok(json!({"serviceRevisions": found, "failures": failures}))
}

/// Looks up each ARN of the form `…/<cluster>/<service>/<n>` in its service; the ones not found
/// are reported as MISSING failures, as ECS does.
fn per_service_arn(
    state: &State,
    arns: &Value,
    lookup: impl Fn(&Cluster, &Service, &str) -> Option<Value>,
) -> (Vec<Value>, Vec<Value>) {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in arns
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        let parts: Vec<&str> = arn.rsplit('/').collect();
        let hit = match parts.as_slice() {
            [_, service, cluster, ..] => state
                .clusters
                .get(*cluster)
                .and_then(|c| c.services.get(*service).and_then(|s| lookup(c, s, arn))),
            _ => None,
        };
        match hit {
            Some(v) => found.push(v),
            None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
        }
    }
    (found, failures)
}

fn list_services(state: &State, input: &Value) -> Reply {
    let cluster = cluster(state, input)?;
    Ok(
        json!({"serviceArns": cluster.services.values().filter(|s| s.active).map(|s| s.arn.clone()).collect::<Vec<_>>()}),
    )
}

fn delete_service(state: &mut State, input: &Value) -> Reply {
    let name = str_field(input, "service")?.to_string();
    let mode = state.mode;
    let cluster = cluster_mut(state, input)?;
    let service = service_mut(&mut cluster.services, &name)?;
    if service.desired_count > 0 && !input["force"].as_bool().unwrap_or(false) {
        return Err(ApiError::invalid(
            "The service cannot be stopped while it is scaled above 0.",
        ));
    }
    service.active = false;
    service.desired_count = 0;
    let group = format!("service:{}", service.name);
    let out = json!({"service": service.to_json(&cluster.tasks, mode)});
    for t in cluster
        .tasks
        .values_mut()
        .filter(|t| t.group == group && t.is_live())
    {
        t.desired_status = "STOPPED".into();
        t.stopped_reason = Some("Service deleted".into());
    }
    Ok(out)
}

/// A new task record in PROVISIONING; the runner starts its containers.
pub fn new_task(
    cluster: &Cluster,
    td: &TaskDefinition,
    started_by: &str,
    group: &str,
    now: Time,
) -> Task {
    let id = super::random_hex(32);
    let (memory, cpu) = td.demand();
    let containers = td.containers();
    let has_health_check = containers
        .iter()
        .any(|c| c.essential && c.health_check.is_some());
    let stop_timeout = containers
        .iter()
        .map(|c| c.stop_timeout)
        .max()
        .unwrap_or(30);
    Task {
        arn: cluster.arn.replace(":cluster/", ":task/") + "/" + &id,
        id,
        cluster_arn: cluster.arn.clone(),
        task_definition: td.arn.clone(),
        started_by: started_by.to_string(),
        group: group.to_string(),
        last_status: "PROVISIONING".into(),
        desired_status: "RUNNING".into(),
        health_status: "UNKNOWN".into(),
        containers: containers
            .into_iter()
            .map(|c| super::model::ContainerState {
                name: c.name,
                image: c.image,
                essential: c.essential,
                docker_id: None,
                last_status: "PENDING".into(),
                exit_code: None,
                reason: None,
                health: None,
            })
            .collect(),
        stopped_reason: None,
        stop_code: None,
        created_at: now,
        started_at: None,
        seen_running_at: None,
        stopped_at: None,
        memory,
        cpu,
        has_health_check,
        failure_counted: false,
        stop_timeout,
        command_overrides: BTreeMap::new(),
        environment_overrides: BTreeMap::new(),
        logs: BTreeMap::new(),
        logs_read_at: None,
    }
}

fn run_task(state: &mut State, input: &Value, now: Time) -> Reply {
    let td = task_definition_ref(state, str_field(input, "taskDefinition")?)?.clone();
    let count = input["count"].as_u64().unwrap_or(1).clamp(1, 10);
    let started_by = input["startedBy"].as_str().unwrap_or("").to_string();
    let group = input["group"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("family:{}", td.family));
    let container_overrides = input["overrides"]["containerOverrides"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let overrides: BTreeMap<String, Vec<String>> = container_overrides
        .iter()
        .filter_map(|o| {
            let name = o["name"].as_str()?.to_string();
            let command = o["command"].as_array()?;
            Some((
                name,
                command
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect(),
            ))
        })
        .collect();
    let environment: BTreeMap<String, Vec<(String, String)>> = container_overrides
        .iter()
        .filter_map(|o| {
            let name = o["name"].as_str()?.to_string();
            let pairs = o["environment"].as_array()?;
            Some((
                name,
                pairs
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p["name"].as_str()?.to_string(),
                            p["value"].as_str()?.to_string(),
                        ))
                    })
                    .collect(),
            ))
        })
        .collect();
    if let Some(unknown) = overrides
        .keys()
        .chain(environment.keys())
        .find(|n| !td.containers().iter().any(|c| &c.name == *n))
    {
        return Err(ApiError::invalid(format!(
            "Override for container named {unknown} is not a container in the TaskDefinition."
        )));
    }
    let cluster = cluster_mut(state, input)?;
    let mut tasks = Vec::new();
    for _ in 0..count {
        let mut t = new_task(cluster, &td, &started_by, &group, now);
        t.command_overrides = overrides.clone();
        t.environment_overrides = environment.clone();
        tasks.push(t.to_json());
        cluster.tasks.insert(t.id.clone(), t);
    }
    Ok(json!({"tasks": tasks, "failures": []}))
}

fn find_task<'a>(cluster: &'a Cluster, reference: &str) -> Option<&'a Task> {
    cluster.tasks.get(short_name(reference))
}

fn describe_tasks(state: &State, input: &Value) -> Reply {
    let cluster = cluster(state, input)?;
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for r in input["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        match find_task(cluster, r) {
            Some(t) => tasks.push(t.to_json()),
            None => failures.push(json!({"arn": r, "reason": "MISSING"})),
        }
    }
    Ok(json!({"tasks": tasks, "failures": failures}))
}

fn list_tasks(state: &State, input: &Value) -> Reply {
    let cluster = cluster(state, input)?;
    let desired = input["desiredStatus"].as_str().unwrap_or("RUNNING");
    let service = input["serviceName"]
        .as_str()
        .map(|s| format!("service:{}", short_name(s)));
    let started_by = input["startedBy"].as_str();
    let family = input["family"].as_str();
    let arns: Vec<String> = cluster
        .tasks
        .values()
        .filter(|t| {
            let status = if t.is_live() && t.desired_status != "STOPPED" {
                "RUNNING"
            } else {
                "STOPPED"
            };
            status == desired
        })
        .filter(|t| service.as_ref().is_none_or(|g| &t.group == g))
        .filter(|t| started_by.is_none_or(|s| t.started_by == s))
        .filter(|t| {
            family.is_none_or(|f| t.task_definition.contains(&format!("task-definition/{f}:")))
        })
        .map(|t| t.arn.clone())
        .collect();
    Ok(json!({"taskArns": arns}))
}

fn stop_task(state: &mut State, input: &Value) -> Reply {
    let reference = str_field(input, "task")?.to_string();
    let reason = input["reason"]
        .as_str()
        .unwrap_or("Task stopped by user")
        .to_string();
    let cluster = cluster_mut(state, input)?;
    let task = cluster
        .tasks
        .get_mut(short_name(&reference))
        .ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
    if task.is_live() {
        task.desired_status = "STOPPED".into();
        task.stopped_reason = Some(reason);
        task.stop_code = Some("UserInitiated".into());
    }
    Ok(json!({"task": task.to_json()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Place;

    fn state() -> State {
        State::new(Place {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        })
    }

    fn td(family: &str) -> Value {
        json!({"family": family, "containerDefinitions": [{"name": "app", "image": "img", "essential": true}]})
    }

    #[test]
    fn task_definitions_get_revisions_and_arns() {
        let mut s = state();
        let r1 = handle(&mut s, "RegisterTaskDefinition", &td("web"), 1.0).unwrap();
        let r2 = handle(&mut s, "RegisterTaskDefinition", &td("web"), 2.0).unwrap();
        assert_eq!(r1["taskDefinition"]["revision"], 1);
        assert_eq!(
            r2["taskDefinition"]["taskDefinitionArn"],
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"
        );
        let d = handle(
            &mut s,
            "DescribeTaskDefinition",
            &json!({"taskDefinition": "web"}),
            3.0,
        )
        .unwrap();
        assert_eq!(
            d["taskDefinition"]["revision"], 2,
            "a bare family means the latest ACTIVE revision"
        );
        handle(
            &mut s,
            "DeregisterTaskDefinition",
            &json!({"taskDefinition": "web:2"}),
            4.0,
        )
        .unwrap();
        let d = handle(
            &mut s,
            "DescribeTaskDefinition",
            &json!({"taskDefinition": "web"}),
            5.0,
        )
        .unwrap();
        assert_eq!(d["taskDefinition"]["revision"], 1);
    }

    #[test]
    fn bad_task_definitions_name_the_field() {
        let mut s = state();
        let err = handle(
            &mut s,
            "RegisterTaskDefinition",
            &json!({"family": "web", "containerDefinitions": [{"name": "a"}]}),
            0.0,
        )
        .unwrap_err();
        assert_eq!(err.kind, "ClientException");
        assert!(
            err.message.contains("containerDefinitions[0].image"),
            "{}",
            err.message
        );
        let err = handle(
            &mut s,
            "RegisterTaskDefinition",
            &json!({"family": "bad name"}),
            0.0,
        )
        .unwrap_err();
        assert!(err.message.contains("field: family"), "{}", err.message);
    }

    #[test]
    fn task_definitions_keep_the_tags_set_on_them() {
        let mut s = state();
        let registered = handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        let arn = registered["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_string();
        let tag = |key: &str, value: &str| json!({"key": key, "value": value});
        let input = json!({"resourceArn": arn, "tags": [tag("a", "1"), tag("b", "2")]});
        handle(&mut s, "TagResource", &input, 1.0).unwrap();
        let input = json!({"resourceArn": arn, "tags": [tag("a", "3")]});
        handle(&mut s, "TagResource", &input, 1.0).unwrap();
        let listed = handle(
            &mut s,
            "ListTagsForResource",
            &json!({"resourceArn": arn}),
            1.0,
        );
        let mut tags = listed.unwrap()["tags"].as_array().unwrap().clone();
        tags.sort_by_key(|t| t["key"].as_str().unwrap().to_string());
        assert_eq!(
            tags,
            vec![tag("a", "3"), tag("b", "2")],
            "a key set again is replaced"
        );
        let input = json!({"resourceArn": arn, "tagKeys": ["a"]});
        handle(&mut s, "UntagResource", &input, 1.0).unwrap();
        let described = handle(
            &mut s,
            "DescribeTaskDefinition",
            &json!({"taskDefinition": arn, "include": ["TAGS"]}),
            1.0,
        )
        .unwrap();
        assert_eq!(described["tags"], json!([tag("b", "2")]));
        let missing = arn.replace(":1", ":9");
        let err = handle(
            &mut s,
            "TagResource",
            &json!({"resourceArn": missing, "tags": []}),
            1.0,
        );
        assert_eq!(err.unwrap_err().kind, "ClientException");
        let bad = handle(
            &mut s,
            "TagResource",
            &json!({"resourceArn": "web:1", "tags": []}),
            1.0,
        );
        assert_eq!(bad.unwrap_err().kind, "InvalidParameterException");
    }

    #[test]
    fn update_service_starts_a_deployment_only_when_something_changes() {
        let mut s = state();
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        let created = handle(&mut s, "CreateService", &json!({"cluster": "c", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1}), 0.0).unwrap();
        assert_eq!(
            created["service"]["deployments"].as_array().unwrap().len(),
            1
        );
        let same = handle(
            &mut s,
            "UpdateService",
            &json!({"cluster": "c", "service": "web", "desiredCount": 2}),
            1.0,
        )
        .unwrap();
        assert_eq!(same["service"]["deployments"].as_array().unwrap().len(), 1);
        assert_eq!(same["service"]["deployments"][0]["desiredCount"], 2);
        let new = handle(
            &mut s,
            "UpdateService",
            &json!({"cluster": "c", "service": "web", "taskDefinition": "web:2"}),
            2.0,
        )
        .unwrap();
        let deps = new["service"]["deployments"].as_array().unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0]["status"], "PRIMARY");
        assert_eq!(deps[0]["rolloutState"], "IN_PROGRESS");
        assert_eq!(deps[1]["status"], "ACTIVE");
        assert!(deps[0]["id"].as_str().unwrap().starts_with("ecs-svc/"));
    }

    #[test]
    fn run_task_keeps_each_containers_command_and_environment_overrides() {
        let mut s = state();
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        let overrides = |name: &str| {
            json!({"cluster": "c", "taskDefinition": "web:1", "overrides": {"containerOverrides": [
                {"name": name, "command": ["echo", "hi"],
                 "environment": [{"name": "KEY", "value": "v"}]}]}})
        };
        let ran = handle(&mut s, "RunTask", &overrides("app"), 1.0).unwrap();
        let arn = ran["tasks"][0]["taskArn"].as_str().unwrap();
        let task = &s.clusters["c"].tasks[arn.rsplit('/').next().unwrap()];
        assert_eq!(task.command_overrides["app"], vec!["echo", "hi"]);
        assert_eq!(
            task.environment_overrides["app"],
            vec![("KEY".to_string(), "v".to_string())]
        );
        let unknown = handle(&mut s, "RunTask", &overrides("db"), 1.0).unwrap_err();
        assert!(unknown.message.contains("db"), "{}", unknown.message);
    }

    /// A service `web` on web:1 (rolled out), web:2 and web:3 registered.
    fn rolled_out(config: Value) -> State {
        let mut s = state();
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        for _ in 0..3 {
            handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        }
        let create = json!({"cluster": "c", "serviceName": "web", "taskDefinition": "web:1",
                            "desiredCount": 1, "deploymentConfiguration": config});
        handle(&mut s, "CreateService", &create, 0.0).unwrap();
        let svc = s
            .clusters
            .get_mut("c")
            .unwrap()
            .services
            .get_mut("web")
            .unwrap();
        svc.deployments[0].rollout = Rollout::Completed;
        svc.deployments[0].progress = None;
        s
    }

    fn update(s: &mut State, td: &str, now: Time) {
        let input = json!({"cluster": "c", "service": "web", "taskDefinition": td});
        handle(s, "UpdateService", &input, now).unwrap();
    }

    /// (ARN, status, statusReason) of the service's deployments, newest first.
    fn listed(s: &mut State) -> Vec<(String, String, String)> {
        let out = handle(
            s,
            "ListServiceDeployments",
            &json!({"cluster": "c", "service": "web"}),
            0.0,
        )
        .unwrap();
        out["serviceDeployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["serviceDeploymentArn"].as_str().unwrap().to_string(),
                    d["status"].as_str().unwrap().to_string(),
                    d["statusReason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn error_kind(r: Reply) -> &'static str {
        r.unwrap_err().kind
    }

    #[test]
    fn stop_service_deployment_rolls_back_in_progress_deployments_only() {
        let mut s = rolled_out(json!({}));
        update(&mut s, "web:2", 1.0);
        let list = listed(&mut s);
        let (arn, status, _) = &list[0];
        assert_eq!(status, "IN_PROGRESS");
        let stop = |s: &mut State, body: Value| handle(s, "StopServiceDeployment", &body, 2.0);
        let abort = json!({"serviceDeploymentArn": arn, "stopType": "ABORT"});
        assert_eq!(error_kind(stop(&mut s, abort)), "InvalidParameterException");
        let missing = json!({"serviceDeploymentArn": format!("{arn}9")});
        assert_eq!(
            error_kind(stop(&mut s, missing)),
            "ServiceDeploymentNotFoundException"
        );
        let done = json!({"serviceDeploymentArn": list[1].0});
        assert_eq!(error_kind(stop(&mut s, done)), "ConflictException");

        let out = stop(&mut s, json!({"serviceDeploymentArn": arn})).unwrap();
        assert_eq!(out["serviceDeploymentArn"], arn.as_str());
        let (_, status, reason) = &listed(&mut s)[0];
        assert_eq!(status, "ROLLBACK_IN_PROGRESS");
        assert!(reason.contains("stop request"), "{reason}");
        let svc = &s.clusters["c"].services["web"];
        assert!(
            svc.task_definition.ends_with("web:1"),
            "{}",
            svc.task_definition
        );
        // Asked again while it rolls back: it goes on rolling back.
        stop(&mut s, json!({"serviceDeploymentArn": arn})).unwrap();
    }

    #[test]
    fn a_first_strategy_deployment_cannot_be_rolled_back_and_is_left_as_it_is() {
        let mut s = state();
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        let create = json!({"cluster": "c", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1,
                            "deploymentConfiguration": {"strategy": "CANARY"}});
        handle(&mut s, "CreateService", &create, 0.0).unwrap();
        let arn = listed(&mut s)[0].0.clone();
        let stop = json!({"serviceDeploymentArn": arn});
        assert_eq!(
            error_kind(handle(&mut s, "StopServiceDeployment", &stop, 1.0)),
            "ConflictException"
        );
        assert_eq!(listed(&mut s)[0].1, "PENDING", "unchanged");
    }

    #[test]
    fn a_strategy_deployment_rolls_back_to_its_source_and_is_superseded_by_a_newer_one() {
        let bg = json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5});
        let mut s = rolled_out(bg.clone());
        let described = handle(
            &mut s,
            "DescribeServices",
            &json!({"cluster": "c", "services": ["web"]}),
            0.0,
        )
        .unwrap();
        assert_eq!(
            described["services"][0]["deploymentConfiguration"]["strategy"],
            "BLUE_GREEN"
        );
        assert_eq!(
            described["services"][0]["deploymentConfiguration"]["bakeTimeInMinutes"],
            5
        );

        update(&mut s, "web:2", 1.0);
        let first = listed(&mut s)[0].0.clone();
        update(&mut s, "web:3", 2.0);
        let list = listed(&mut s);
        assert_eq!(list[1].0, first);
        assert_eq!(list[1].1, "STOPPED");
        assert!(list[1].2.contains("Superseded"), "{:?}", list[1]);
        let newest = handle(
            &mut s,
            "DescribeServiceDeployments",
            &json!({"serviceDeploymentArns": [list[0].0]}),
            0.0,
        )
        .unwrap();
        let d = &newest["serviceDeployments"][0];
        assert_eq!(d["status"], "PENDING", "until the runner starts it");
        assert_eq!(
            d["lifecycleStage"], "RECONCILE_SERVICE",
            "two revisions were active"
        );
        assert_eq!(d["deploymentConfiguration"]["strategy"], "BLUE_GREEN");
        assert_eq!(
            d["targetServiceRevision"]["requestedProductionTrafficWeight"],
            0.0
        );
        assert_eq!(
            d["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"],
            100.0
        );

        let bad = json!({"cluster": "c", "service": "web", "deploymentConfiguration":
                         {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 1.0}}});
        assert_eq!(
            error_kind(handle(&mut s, "UpdateService", &bad, 2.0)),
            "InvalidParameterException"
        );
        s.clusters
            .get_mut("c")
            .unwrap()
            .services
            .get_mut("web")
            .unwrap()
            .deployments[0]
            .progress
            .as_mut()
            .unwrap()
            .entered = true;
        let cont = json!({"serviceDeploymentArn": list[0].0, "hookId": "ecs-pause-nope"});
        assert_eq!(
            error_kind(handle(&mut s, "ContinueServiceDeployment", &cont, 3.0)),
            "InvalidParameterException"
        );
        handle(
            &mut s,
            "StopServiceDeployment",
            &json!({"serviceDeploymentArn": list[0].0}),
            3.0,
        )
        .unwrap();
        assert_eq!(listed(&mut s)[0].1, "ROLLBACK_REQUESTED");
        let svc = &s.clusters["c"].services["web"];
        assert_eq!(svc.deployments.len(), 1, "only the source is left");
        assert!(svc.task_definition.ends_with("web:1"));
        assert_eq!(svc.deployments[0].status, DeploymentStatus::Primary);
    }

    #[test]
    fn unknown_clusters_and_services_are_aws_errors() {
        let mut s = state();
        let err = handle(
            &mut s,
            "DescribeServices",
            &json!({"cluster": "nope", "services": ["x"]}),
            0.0,
        )
        .unwrap_err();
        assert_eq!(err.kind, "ClusterNotFoundException");
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        let err = handle(
            &mut s,
            "UpdateService",
            &json!({"cluster": "c", "service": "x"}),
            0.0,
        )
        .unwrap_err();
        assert_eq!(err.kind, "ServiceNotFoundException");
        let out = handle(
            &mut s,
            "DescribeServices",
            &json!({"cluster": "c", "services": ["x"]}),
            0.0,
        )
        .unwrap();
        assert_eq!(out["failures"][0]["reason"], "MISSING");
    }

    /// A service `web` in cluster `c` mid-rollout: deployment 0 (web:2) IN_PROGRESS with one
    /// task RUNNING, deployment 1 (web:1) COMPLETED with one task RUNNING.
    fn rolling_out() -> State {
        let mut s = state();
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        handle(&mut s, "RegisterTaskDefinition", &td("web"), 0.0).unwrap();
        let svc = json!({"cluster": "c", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1});
        handle(&mut s, "CreateService", &svc, 0.0).unwrap();
        s.clusters
            .get_mut("c")
            .unwrap()
            .services
            .get_mut("web")
            .unwrap()
            .deployments[0]
            .rollout = Rollout::Completed;
        let up = json!({"cluster": "c", "service": "web", "taskDefinition": "web:2"});
        handle(&mut s, "UpdateService", &up, 1.0).unwrap();
        let ids: Vec<(String, String)> = s.clusters["c"].services["web"]
            .deployments
            .iter()
            .map(|d| (d.id.clone(), d.task_definition.clone()))
            .collect();
        for (deployment, arn) in ids {
            let def = s.task_definition(&arn).unwrap().clone();
            let c = s.clusters.get_mut("c").unwrap();
            let mut t = new_task(c, &def, &deployment, "service:web", 1.0);
            t.last_status = "RUNNING".into();
            c.tasks.insert(t.id.clone(), t);
        }
        s
    }

    /// (service running, service pending, [(deployment running, pending)] newest first)
    fn counts(s: &mut State) -> (u64, u64, Vec<(u64, u64)>) {
        let out = handle(
            s,
            "DescribeServices",
            &json!({"cluster": "c", "services": ["web"]}),
            2.0,
        )
        .unwrap();
        let svc = &out["services"][0];
        let deployments = svc["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["runningCount"].as_u64().unwrap(),
                    d["pendingCount"].as_u64().unwrap(),
                )
            })
            .collect();
        (
            svc["runningCount"].as_u64().unwrap(),
            svc["pendingCount"].as_u64().unwrap(),
            deployments,
        )
    }

    #[test]
    fn late_running_counts_hold_back_a_rolling_out_deployment_until_it_is_over() {
        let mut s = rolling_out();
        assert_eq!(counts(&mut s), (2, 0, vec![(1, 0), (1, 0)]), "live counts");

        s.mode.late_running_count = true;
        assert_eq!(
            counts(&mut s),
            (1, 1, vec![(0, 1), (1, 0)]),
            "the new deployment's running task is reported pending; the old one's is not"
        );
        let service = &s.clusters["c"].services["web"];
        let arn = service.deployment_arn(&service.deployments[0].id);
        let described = handle(
            &mut s,
            "DescribeServiceDeployments",
            &json!({"serviceDeploymentArns": [arn]}),
            2.0,
        )
        .unwrap();
        let target = &described["serviceDeployments"][0]["targetServiceRevision"];
        assert_eq!(
            (&target["runningTaskCount"], &target["pendingTaskCount"]),
            (&json!(0), &json!(1))
        );
        let task = s.clusters["c"].tasks.values().next().unwrap().id.clone();
        let tasks = handle(
            &mut s,
            "DescribeTasks",
            &json!({"cluster": "c", "tasks": [task]}),
            2.0,
        )
        .unwrap();
        assert_eq!(
            tasks["tasks"][0]["lastStatus"], "RUNNING",
            "tasks show as they are"
        );

        for rollout in [Rollout::Completed, Rollout::Failed] {
            s.clusters
                .get_mut("c")
                .unwrap()
                .services
                .get_mut("web")
                .unwrap()
                .deployments[0]
                .rollout = rollout;
            assert_eq!(
                counts(&mut s),
                (2, 0, vec![(1, 0), (1, 0)]),
                "{rollout:?}: the counts catch up when the rollout is over"
            );
        }
    }

    #[test]
    fn the_mode_is_read_as_the_control_endpoint_sends_it() {
        let m: crate::model::Mode =
            serde_json::from_str(r#"{"late_running_count": true}"#).unwrap();
        assert!(m.late_running_count);
        let mut s = state();
        s.mode = serde_json::from_str(r#"{"without_service_deployments": true}"#).unwrap();
        for op in crate::model::SERVICE_DEPLOYMENT_OPERATIONS {
            assert_eq!(
                error_kind(handle(&mut s, op, &json!({}), 1.0)),
                "UnknownOperationException",
                "{op}"
            );
        }
        assert!(handle(&mut s, "ListClusters", &json!({}), 1.0).is_ok());
        assert_eq!(
            serde_json::from_str::<crate::model::Mode>("{}").unwrap(),
            crate::model::Mode::default()
        );
        assert!(serde_json::from_str::<crate::model::Mode>(r#"{"late": true}"#).is_err());
    }
}
