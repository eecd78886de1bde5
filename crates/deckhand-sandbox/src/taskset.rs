//! ECS task sets, for services whose deployments another controller drives (CODE_DEPLOY or
//! EXTERNAL): the deployment controller, the TaskSet shape, how many tasks each set wants,
//! the scheduler's decisions for them, and CreateTaskSet, UpdateTaskSet,
//! UpdateServicePrimaryTaskSet, DeleteTaskSet and DescribeTaskSets.
//!
//! Choices where the reference leaves room: the task set ECS makes when a CODE_DEPLOY service
//! is created has no `startedBy` and no `externalId` (CodeDeploy's replacement sets have
//! `startedBy` CODE_DEPLOY, as the TaskSet reference says, and the deployment id as
//! `externalId`); a task of a task set has the set's id as its `startedBy`; DescribeTaskSets
//! answers for CODE_DEPLOY services too (it only reads), while the calls that change task
//! sets are refused for them, as they are for ECS services; a DRAINING set is forgotten once
//! its last task has stopped.

use rand::Rng;
use serde_json::{json, Value};

use super::ecs::{str_field, ApiError, Reply};
use super::model::{Service, State, Task, Time};
use super::scheduler::Action;

/// `deploymentController.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Controller {
    #[default]
    Ecs,
    CodeDeploy,
    External,
}

impl Controller {
    pub fn as_str(self) -> &'static str {
        match self {
            Controller::Ecs => "ECS",
            Controller::CodeDeploy => "CODE_DEPLOY",
            Controller::External => "EXTERNAL",
        }
    }

    pub fn parse(s: &str) -> Option<Controller> {
        Some(match s {
            "ECS" => Controller::Ecs,
            "CODE_DEPLOY" => Controller::CodeDeploy,
            "EXTERNAL" => Controller::External,
            _ => return None,
        })
    }

    /// True when the service runs its tasks in task sets rather than deployments.
    pub fn uses_task_sets(self) -> bool {
        self != Controller::Ecs
    }
}

/// `taskSet.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Primary,
    Active,
    Draining,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Primary => "PRIMARY",
            Status::Active => "ACTIVE",
            Status::Draining => "DRAINING",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TaskSet {
    /// `ecs-svc/` and 19 digits, as ECS names task sets.
    pub id: String,
    pub arn: String,
    pub status: Status,
    pub task_definition: String,
    pub external_id: Option<String>,
    pub started_by: Option<String>,
    /// `scale.value`, a percentage of the service's desired count.
    pub scale: f64,
    pub created_at: Time,
    pub updated_at: Time,
    /// Tasks of this set that stopped without being asked to.
    pub failed_tasks: u32,
    pub load_balancers: Value,
    /// True while every wanted task runs healthy and no other is left (set by the runner).
    pub steady: bool,
}

/// The tasks a set of `scale` percent wants of a service's `desired` count: rounded up, as
/// `computedDesiredCount` is.
pub fn computed_desired(desired: u32, scale: f64) -> u32 {
    ((f64::from(desired) * scale.clamp(0.0, 100.0) / 100.0) - 1e-9)
        .ceil()
        .max(0.0) as u32
}

impl TaskSet {
    /// The DescribeServices/DescribeTaskSets entry; `tasks` are the cluster's.
    pub fn to_json<'t>(&self, service: &Service, tasks: impl Iterator<Item = &'t Task>) -> Value {
        let (pending, running) = counts(&self.id, tasks);
        let mut v = json!({
            "id": self.id,
            "taskSetArn": self.arn,
            "serviceArn": service.arn,
            "clusterArn": service.cluster_arn,
            "status": self.status.as_str(),
            "taskDefinition": self.task_definition,
            "computedDesiredCount": self.desired(service),
            "pendingCount": pending,
            "runningCount": running,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "launchType": "EC2",
            "scale": {"value": self.scale, "unit": "PERCENT"},
            "stabilityStatus": if self.steady { "STEADY_STATE" } else { "STABILIZING" },
            "stabilityStatusAt": self.updated_at,
            "loadBalancers": self.load_balancers,
            "serviceRegistries": [],
        });
        if let Some(s) = &self.started_by {
            v["startedBy"] = json!(s);
        }
        if let Some(e) = &self.external_id {
            v["externalId"] = json!(e);
        }
        v
    }

    /// `computedDesiredCount`: none once DRAINING.
    pub fn desired(&self, service: &Service) -> u32 {
        match self.status {
            Status::Draining => 0,
            _ => computed_desired(service.desired_count, self.scale),
        }
    }
}

/// (pending, running) tasks of task set `id` among `tasks`.
pub fn counts<'t>(id: &str, tasks: impl Iterator<Item = &'t Task>) -> (u32, u32) {
    tasks
        .filter(|t| t.started_by == id && t.is_live())
        .fold((0, 0), |(p, r), t| match t.last_status.as_str() {
            "RUNNING" => (p, r + 1),
            "PROVISIONING" | "PENDING" => (p + 1, r),
            _ => (p, r),
        })
}

/// A new task set of `task_definition` for `service`, `ecs-svc/` and 19 digits.
pub fn new_task_set(
    service: &Service,
    task_definition: &str,
    status: Status,
    scale: f64,
    now: Time,
) -> TaskSet {
    let mut rng = rand::rng();
    let digits: String = (0..19)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    let id = format!("ecs-svc/{digits}");
    TaskSet {
        arn: format!("{}/{id}", service.arn.replace(":service/", ":task-set/")),
        id,
        status,
        task_definition: task_definition.to_string(),
        external_id: None,
        started_by: None,
        scale,
        created_at: now,
        updated_at: now,
        failed_tasks: 0,
        load_balancers: service.load_balancers.clone(),
        steady: false,
    }
}

/// Makes task set `id` PRIMARY (the former primary becomes ACTIVE) and the service's task
/// definition its; false when there is no such set or it is DRAINING.
pub fn make_primary(service: &mut Service, id: &str, now: Time) -> bool {
    if !service
        .task_sets
        .iter()
        .any(|t| t.id == id && t.status != Status::Draining)
    {
        return false;
    }
    for t in service.task_sets.iter_mut() {
        if t.id == id {
            t.status = Status::Primary;
            t.updated_at = now;
            service.task_definition = t.task_definition.clone();
        } else if t.status == Status::Primary {
            t.status = Status::Active;
            t.updated_at = now;
        }
    }
    true
}

/// Sets task set `id` DRAINING: scaled to nothing, its tasks stopped by the runner.
pub fn drain(service: &mut Service, id: &str, now: Time) -> bool {
    match service.task_sets.iter_mut().find(|t| t.id == id) {
        Some(t) => {
            t.status = Status::Draining;
            t.scale = 0.0;
            t.steady = false;
            t.updated_at = now;
            true
        }
        None => false,
    }
}

/// This tick's actions for a service that runs task sets: each set is brought to its
/// computed desired count (a failed task is replaced, as the service scheduler does), extra
/// tasks and tasks of no set are stopped. Also returns, per set, whether it is steady.
pub fn plan(
    service: &Service,
    live: &[&Task],
    stable: f64,
    mut fits: impl FnMut(&str) -> bool,
) -> (Vec<Action>, Vec<(String, bool)>) {
    let mut actions = Vec::new();
    let mut steady = Vec::new();
    for set in &service.task_sets {
        let wanted = set.desired(service);
        let mine: Vec<&&Task> = live
            .iter()
            .filter(|t| t.started_by == set.id && t.desired_status != "STOPPED")
            .collect();
        for _ in mine.len() as u32..wanted {
            if fits(&set.task_definition) {
                actions.push(Action::Start {
                    deployment: set.id.clone(),
                    task_definition: set.task_definition.clone(),
                });
            } else {
                actions.push(Action::Unplaceable {
                    task_definition: set.task_definition.clone(),
                });
                break;
            }
        }
        for t in mine.iter().skip(wanted as usize) {
            actions.push(Action::Stop {
                task: t.id.clone(),
                reason: format!("Scaling activity initiated by (taskSet {})", set.id),
            });
        }
        let healthy = mine.iter().filter(|t| t.is_healthy(stable)).count() as u32;
        let all_mine = live.iter().filter(|t| t.started_by == set.id).count() as u32;
        steady.push((
            set.id.clone(),
            set.status != Status::Draining && healthy == wanted && all_mine == wanted,
        ));
    }
    for t in live.iter().filter(|t| {
        t.desired_status != "STOPPED" && !service.task_sets.iter().any(|s| s.id == t.started_by)
    }) {
        actions.push(Action::Stop {
            task: t.id.clone(),
            reason: "Scaling activity initiated by the service".into(),
        });
    }
    (actions, steady)
}

/// The refusal of a task set change on a service that ECS or CodeDeploy deploys.
fn not_external() -> ApiError {
    ApiError::invalid(
        "Amazon ECS only supports task set management on services configured to use external deployment controllers.",
    )
}

fn missing_task_set() -> ApiError {
    ApiError::new(
        "TaskSetNotFoundException",
        "The specified task set wasn't found.",
    )
}

/// The cluster name and service of a task set call.
fn service_of<'a>(
    state: &'a mut State,
    input: &Value,
) -> Result<(&'a mut Service, String), ApiError> {
    let cluster = input["cluster"]
        .as_str()
        .map(|c| c.rsplit('/').next().unwrap_or(c))
        .unwrap_or("default")
        .to_string();
    let name = str_field(input, "service")?;
    let name = name.rsplit('/').next().unwrap_or(name).to_string();
    let c = state
        .clusters
        .get_mut(&cluster)
        .ok_or_else(|| ApiError::new("ClusterNotFoundException", "Cluster not found."))?;
    let s = c
        .services
        .get_mut(&name)
        .filter(|s| s.active)
        .ok_or_else(|| ApiError::new("ServiceNotFoundException", "Service not found."))?;
    Ok((s, cluster))
}

/// The id a task set reference names (an id or an ARN ending in it).
fn set_id(reference: &str) -> String {
    match reference.find("ecs-svc/") {
        Some(i) => reference[i..].to_string(),
        None => reference.to_string(),
    }
}

fn render(state: &State, cluster: &str, service: &str, id: &str) -> Value {
    let c = &state.clusters[cluster];
    let s = &c.services[service];
    s.task_sets
        .iter()
        .find(|t| t.id == id)
        .map(|t| t.to_json(s, c.tasks.values()))
        .unwrap_or(Value::Null)
}

/// CreateTaskSet, for EXTERNAL services.
pub fn create(state: &mut State, input: &Value, now: Time) -> Reply {
    let td = str_field(input, "taskDefinition")?.to_string();
    let td = state
        .task_definition(&td)
        .filter(|d| d.active)
        .map(|d| d.arn.clone())
        .ok_or_else(|| {
            ApiError::new(
                "ClientException",
                format!("Unable to describe task definition {td}. (field: taskDefinition)"),
            )
        })?;
    let scale = match &input["scale"] {
        Value::Null => 100.0,
        s => match (s["value"].as_f64(), s["unit"].as_str().unwrap_or("PERCENT")) {
            (Some(v), "PERCENT") if (0.0..=100.0).contains(&v) => v,
            _ => {
                return Err(ApiError::invalid(
                    "scale must be {\"value\": 0 to 100, \"unit\": \"PERCENT\"}",
                ))
            }
        },
    };
    let (service, cluster) = service_of(state, input)?;
    if service.controller != Controller::External {
        return Err(not_external());
    }
    let mut set = new_task_set(service, &td, Status::Active, scale, now);
    set.external_id = input["externalId"].as_str().map(str::to_string);
    if let Some(lbs) = input.get("loadBalancers").filter(|v| v.is_array()) {
        set.load_balancers = lbs.clone();
    }
    let first = service.task_sets.is_empty();
    let id = set.id.clone();
    let name = service.name.clone();
    service.task_sets.push(set);
    if first {
        make_primary(service, &id, now);
    }
    Ok(json!({"taskSet": render(state, &cluster, &name, &id)}))
}

/// UpdateTaskSet: a new scale, for EXTERNAL services.
pub fn update(state: &mut State, input: &Value, now: Time) -> Reply {
    let id = set_id(str_field(input, "taskSet")?);
    let value = input["scale"]["value"]
        .as_f64()
        .filter(|v| (0.0..=100.0).contains(v))
        .ok_or_else(|| ApiError::invalid("scale.value must be from 0 to 100"))?;
    let (service, cluster) = service_of(state, input)?;
    if service.controller != Controller::External {
        return Err(not_external());
    }
    let set = service
        .task_sets
        .iter_mut()
        .find(|t| t.id == id && t.status != Status::Draining)
        .ok_or_else(missing_task_set)?;
    set.scale = value;
    set.updated_at = now;
    let name = service.name.clone();
    Ok(json!({"taskSet": render(state, &cluster, &name, &id)}))
}

/// UpdateServicePrimaryTaskSet, for EXTERNAL services.
pub fn update_primary(state: &mut State, input: &Value, now: Time) -> Reply {
    let id = set_id(str_field(input, "primaryTaskSet")?);
    let (service, cluster) = service_of(state, input)?;
    if service.controller != Controller::External {
        return Err(not_external());
    }
    if !make_primary(service, &id, now) {
        return Err(missing_task_set());
    }
    let name = service.name.clone();
    Ok(json!({"taskSet": render(state, &cluster, &name, &id)}))
}

/// DeleteTaskSet, for EXTERNAL services: the set drains; the PRIMARY one only with `force`.
pub fn delete(state: &mut State, input: &Value, now: Time) -> Reply {
    let id = set_id(str_field(input, "taskSet")?);
    let force = input["force"].as_bool().unwrap_or(false);
    let (service, cluster) = service_of(state, input)?;
    if service.controller != Controller::External {
        return Err(not_external());
    }
    let set = service
        .task_sets
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(missing_task_set)?;
    if set.status == Status::Primary && !force {
        return Err(ApiError::invalid(
            "The primary task set cannot be deleted unless force is set.",
        ));
    }
    drain(service, &id, now);
    let name = service.name.clone();
    Ok(json!({"taskSet": render(state, &cluster, &name, &id)}))
}

/// DescribeTaskSets: the named sets (all when none is named), the others as MISSING failures.
pub fn describe(state: &mut State, input: &Value) -> Reply {
    let (service, cluster) = service_of(state, input)?;
    let name = service.name.clone();
    let c = &state.clusters[&cluster];
    let s = &c.services[&name];
    let named: Vec<String> = input["taskSets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut found = Vec::new();
    let mut failures = Vec::new();
    if named.is_empty() {
        found = s
            .task_sets
            .iter()
            .map(|t| t.to_json(s, c.tasks.values()))
            .collect();
    }
    for r in named {
        match s.task_sets.iter().find(|t| t.id == set_id(&r)) {
            Some(t) => found.push(t.to_json(s, c.tasks.values())),
            None => failures.push(json!({"arn": r, "reason": "MISSING"})),
        }
    }
    Ok(json!({"taskSets": found, "failures": failures}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_set_wants_its_share_of_the_desired_count_rounded_up() {
        for (desired, scale, want) in [
            (1, 100.0, 1),
            (3, 100.0, 3),
            (3, 50.0, 2),
            (10, 10.0, 1),
            (10, 0.0, 0),
            (0, 100.0, 0),
            (4, 25.0, 1),
            (5, 150.0, 5),
        ] {
            assert_eq!(
                computed_desired(desired, scale),
                want,
                "{desired} at {scale}%"
            );
        }
    }

    #[test]
    fn controllers_read_and_write_their_names() {
        for c in [
            Controller::Ecs,
            Controller::CodeDeploy,
            Controller::External,
        ] {
            assert_eq!(Controller::parse(c.as_str()), Some(c));
        }
        assert_eq!(Controller::parse("code_deploy"), None);
        assert!(!Controller::Ecs.uses_task_sets());
        assert!(Controller::CodeDeploy.uses_task_sets());
    }

    #[test]
    fn set_ids_are_read_from_ids_and_arns() {
        assert_eq!(set_id("ecs-svc/123"), "ecs-svc/123");
        assert_eq!(
            set_id("arn:aws:ecs:us-east-1:1:task-set/c/web/ecs-svc/123"),
            "ecs-svc/123"
        );
        assert_eq!(set_id("nope"), "nope");
    }

    #[test]
    fn an_external_service_manages_its_task_sets_through_the_api() {
        use crate::ecs::handle;
        let mut s = State::new(crate::model::Place {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        });
        handle(&mut s, "CreateCluster", &json!({"clusterName": "c"}), 0.0).unwrap();
        for _ in 0..2 {
            let td =
                json!({"family": "web", "containerDefinitions": [{"name": "app", "image": "img"}]});
            handle(&mut s, "RegisterTaskDefinition", &td, 0.0).unwrap();
        }
        let create = json!({"cluster": "c", "serviceName": "web", "desiredCount": 2,
                            "deploymentController": {"type": "EXTERNAL"}});
        let out = handle(&mut s, "CreateService", &create, 0.0).unwrap();
        assert_eq!(
            out["service"]["taskSets"],
            json!([]),
            "no task set until one is made"
        );
        let set = |td: &str, scale: f64| {
            json!({"cluster": "c", "service": "web", "taskDefinition": td, "externalId": "mine",
                   "scale": {"value": scale, "unit": "PERCENT"}})
        };
        let first = handle(&mut s, "CreateTaskSet", &set("web:1", 100.0), 1.0).unwrap();
        let first = &first["taskSet"];
        assert_eq!(
            first["status"], "PRIMARY",
            "the first set is the primary one"
        );
        assert_eq!(first["externalId"], "mine");
        assert_eq!(first["computedDesiredCount"], 2);
        let second = handle(&mut s, "CreateTaskSet", &set("web:2", 50.0), 2.0).unwrap();
        let second = second["taskSet"]["taskSetArn"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(second.contains(":task-set/c/web/ecs-svc/"), "{second}");
        let primary = json!({"cluster": "c", "service": "web", "primaryTaskSet": second});
        let out = handle(&mut s, "UpdateServicePrimaryTaskSet", &primary, 3.0).unwrap();
        assert_eq!(out["taskSet"]["status"], "PRIMARY");
        assert_eq!(out["taskSet"]["computedDesiredCount"], 1, "half of 2");
        let svc = &s.clusters["c"].services["web"];
        assert!(svc.task_definition.ends_with("web:2"));
        let first_id = first["id"].as_str().unwrap();
        let delete = |id: &str, force: bool| json!({"cluster": "c", "service": "web", "taskSet": id, "force": force});
        assert_eq!(
            handle(&mut s, "DeleteTaskSet", &delete(&second, false), 4.0)
                .unwrap_err()
                .kind,
            "InvalidParameterException",
            "not the primary set without force"
        );
        let out = handle(&mut s, "DeleteTaskSet", &delete(first_id, false), 4.0).unwrap();
        assert_eq!(out["taskSet"]["status"], "DRAINING");
        assert_eq!(out["taskSet"]["computedDesiredCount"], 0);
        let missing = json!({"cluster": "c", "service": "web", "taskSets": ["ecs-svc/0"]});
        let out = handle(&mut s, "DescribeTaskSets", &missing, 5.0).unwrap();
        assert_eq!(out["failures"][0]["reason"], "MISSING");
        let all = json!({"cluster": "c", "service": "web"});
        let out = handle(&mut s, "DescribeTaskSets", &all, 5.0).unwrap();
        assert_eq!(out["taskSets"].as_array().unwrap().len(), 2);
        let up = json!({"cluster": "c", "service": "web", "taskDefinition": "web:1"});
        let e = handle(&mut s, "UpdateService", &up, 6.0).unwrap_err();
        assert_eq!(e.kind, "InvalidParameterException");
    }
}
