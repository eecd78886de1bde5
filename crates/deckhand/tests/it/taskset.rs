//! CodeDeploy blue/green for an ECS service with the CODE_DEPLOY deployment controller, on
//! the sandbox, driven by the unmodified AWS SDKs for ECS and CodeDeploy and by the aws CLI:
//! task sets, traffic shifts, hooks, waits, failures and rollbacks.
//!
//! The fixture ([`blue_green`], [`create_deployment`], [`wait_deployment`], …) is shared with
//! the tests of deckhand's own CodeDeploy client: a time-scaled sandbox (one deployment minute
//! lasts [`MINUTE`]) with service `web` in cluster `c` running a container `app` on port 80
//! behind a load balancer, and CodeDeploy application `app` with deployment group `web`.

use std::time::Duration;

use aws_sdk_codedeploy::types::{
    Alarm, AlarmConfiguration, AppSpecContent, AutoRollbackConfiguration, AutoRollbackEvent,
    BlueGreenDeploymentConfiguration, BlueInstanceTerminationOption, ComputePlatform,
    DeploymentInfo, DeploymentOption, DeploymentReadyAction, DeploymentReadyOption,
    DeploymentStyle, DeploymentType, DeploymentWaitType, EcsService, EcsTarget, InstanceAction,
    LoadBalancerInfo, RevisionLocation, RevisionLocationType, TargetGroupInfo, TargetGroupPairInfo,
    TimeBasedCanary, TrafficRoute, TrafficRoutingConfig, TrafficRoutingType,
};
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, LoadBalancer, PortMapping,
    Service,
};
use deckhand_sandbox::{Options, Sandbox};
use serde_json::{json, Value};

use crate::bed::Bed;
use crate::sandbox::{control, sandbox_with, test_options};

/// Long enough for several ticks and container starts on a busy machine; never a sleep.
const PATIENCE: Duration = Duration::from_secs(90);

/// The sandbox's time scale in these tests.
pub const TIME_SCALE: f64 = 0.05;

/// How long one deployment minute lasts at [`TIME_SCALE`].
pub const MINUTE: Duration = Duration::from_secs(3);

/// The target group ARNs of the service's load balancer pair.
pub const BLUE_TARGET_GROUP: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/0123456789abcdef";
pub const LISTENER: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/0123456789abcdef/0123456789abcdef";

/// A CODE_DEPLOY service on the sandbox and, after [`blue_green`], its CodeDeploy group.
pub struct BlueGreen {
    pub sandbox: Sandbox,
    pub ecs: aws_sdk_ecs::Client,
    pub codedeploy: aws_sdk_codedeploy::Client,
    /// The task definition ARN the service runs (its PRIMARY task set's).
    pub good: String,
    pub cluster: String,
    pub service: String,
    pub application: String,
    pub group: String,
}

/// How [`blue_green`] makes the deployment group.
#[derive(Debug, Clone, Default)]
pub struct GroupOptions {
    /// The group's deployment configuration (default CodeDeployDefault.ECSAllAtOnce); made
    /// first with CreateDeploymentConfig when `routing` is set.
    pub config: Option<String>,
    pub routing: Option<TrafficRoutingConfig>,
    /// Automatic rollback on DEPLOYMENT_FAILURE, DEPLOYMENT_STOP_ON_ALARM and
    /// DEPLOYMENT_STOP_ON_REQUEST.
    pub auto_rollback: bool,
    /// deploymentReadyOption STOP_DEPLOYMENT with this wait (the deployment is Ready until
    /// ContinueDeployment READY_WAIT); None: CONTINUE_DEPLOYMENT.
    pub ready_wait_minutes: Option<i32>,
    pub termination_wait_minutes: i32,
    /// Alarms watched (enabled when not empty); set them with `/_sandbox/alarms`.
    pub alarms: Vec<String>,
}

/// Container `app` of the bed's base image on port 80, running `command`.
pub fn app_container(bed: &Bed, command: &[&str]) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("app")
        .image(&bed.base_image)
        .essential(true)
        .memory(32)
        .port_mappings(PortMapping::builder().container_port(80).build())
        .set_command(Some(command.iter().map(|s| s.to_string()).collect()))
        .build()
}

/// Registers a revision of family `web` whose container `app` runs `command`; its ARN.
pub async fn register_app(bg: &BlueGreen, command: &[&str]) -> String {
    let bed = Bed::get();
    crate::sandbox::register(&bg.ecs, "web", app_container(&bed, command)).await
}

/// A time-scaled sandbox with service `web` in cluster `c` (CODE_DEPLOY controller, one task
/// of a good revision steady in its PRIMARY task set) and no CodeDeploy state yet.
pub async fn code_deploy_service() -> BlueGreen {
    let bed = Bed::get();
    let (sandbox, ecs) = sandbox_with(Options {
        time_scale: TIME_SCALE,
        ..test_options()
    })
    .await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let codedeploy = aws_sdk_codedeploy::Client::new(&config);
    let good = crate::sandbox::register(&ecs, "web", app_container(&bed, &["sleep", "600"])).await;
    ecs.create_cluster().cluster_name("c").send().await.unwrap();
    ecs.create_service()
        .cluster("c")
        .service_name("web")
        .task_definition(&good)
        .desired_count(1)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::CodeDeploy)
                .build()
                .unwrap(),
        )
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(BLUE_TARGET_GROUP)
                .container_name("app")
                .container_port(80)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let bg = BlueGreen {
        sandbox,
        ecs,
        codedeploy,
        good: good.clone(),
        cluster: "c".into(),
        service: "web".into(),
        application: "app".into(),
        group: "web".into(),
    };
    service_until(&bg, "the first task set steady", |s| {
        let sets = s.task_sets();
        sets.len() == 1
            && sets[0].status() == Some("PRIMARY")
            && sets[0].running_count() == 1
            && sets[0].stability_status().map(|x| x.as_str()) == Some("STEADY_STATE")
    })
    .await;
    bg
}

/// [`code_deploy_service`] with CodeDeploy application `app` (ECS) and deployment group `web`
/// for it, made as `opts` says.
pub async fn blue_green(opts: GroupOptions) -> BlueGreen {
    let bg = code_deploy_service().await;
    let cd = &bg.codedeploy;
    cd.create_application()
        .application_name(&bg.application)
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .unwrap();
    if let (Some(name), Some(routing)) = (&opts.config, &opts.routing) {
        cd.create_deployment_config()
            .deployment_config_name(name)
            .compute_platform(ComputePlatform::Ecs)
            .traffic_routing_config(routing.clone())
            .send()
            .await
            .unwrap();
    }
    let ready = match opts.ready_wait_minutes {
        Some(m) => DeploymentReadyOption::builder()
            .action_on_timeout(DeploymentReadyAction::StopDeployment)
            .wait_time_in_minutes(m)
            .build(),
        None => DeploymentReadyOption::builder()
            .action_on_timeout(DeploymentReadyAction::ContinueDeployment)
            .build(),
    };
    let events = [
        AutoRollbackEvent::DeploymentFailure,
        AutoRollbackEvent::DeploymentStopOnAlarm,
        AutoRollbackEvent::DeploymentStopOnRequest,
    ];
    cd.create_deployment_group()
        .application_name(&bg.application)
        .deployment_group_name(&bg.group)
        .service_role_arn("arn:aws:iam::123456789012:role/codedeploy")
        .set_deployment_config_name(opts.config.clone())
        .deployment_style(
            DeploymentStyle::builder()
                .deployment_type(DeploymentType::BlueGreen)
                .deployment_option(DeploymentOption::WithTrafficControl)
                .build(),
        )
        .blue_green_deployment_configuration(
            BlueGreenDeploymentConfiguration::builder()
                .terminate_blue_instances_on_deployment_success(
                    BlueInstanceTerminationOption::builder()
                        .action(InstanceAction::Terminate)
                        .termination_wait_time_in_minutes(opts.termination_wait_minutes)
                        .build(),
                )
                .deployment_ready_option(ready)
                .build(),
        )
        .load_balancer_info(
            LoadBalancerInfo::builder()
                .target_group_pair_info_list(
                    TargetGroupPairInfo::builder()
                        .target_groups(TargetGroupInfo::builder().name("web-blue").build())
                        .target_groups(TargetGroupInfo::builder().name("web-green").build())
                        .prod_traffic_route(TrafficRoute::builder().listener_arns(LISTENER).build())
                        .build(),
                )
                .build(),
        )
        .ecs_services(
            EcsService::builder()
                .service_name(&bg.service)
                .cluster_name(&bg.cluster)
                .build(),
        )
        .auto_rollback_configuration(
            AutoRollbackConfiguration::builder()
                .enabled(opts.auto_rollback)
                .set_events(opts.auto_rollback.then(|| events.to_vec()))
                .build(),
        )
        .alarm_configuration(
            AlarmConfiguration::builder()
                .enabled(!opts.alarms.is_empty())
                .set_alarms(Some(
                    opts.alarms
                        .iter()
                        .map(|a| Alarm::builder().name(a).build())
                        .collect(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    bg
}

/// The ECS AppSpec (JSON) deploying `task_definition` to container `app` on port 80, with
/// `hooks` as (lifecycle event, function).
pub fn app_spec(task_definition: &str, hooks: &[(&str, &str)]) -> String {
    let hooks: Vec<Value> = hooks.iter().map(|(e, f)| json!({ *e: f })).collect();
    json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
            "TaskDefinition": task_definition,
            "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 80}}}}],
        "Hooks": hooks,
    })
    .to_string()
}

/// The CreateDeployment request of `task_definition` with `hooks`, ready to send.
pub fn deployment_request(
    bg: &BlueGreen,
    task_definition: &str,
    hooks: &[(&str, &str)],
) -> aws_sdk_codedeploy::operation::create_deployment::builders::CreateDeploymentFluentBuilder {
    bg.codedeploy
        .create_deployment()
        .application_name(&bg.application)
        .deployment_group_name(&bg.group)
        .revision(
            RevisionLocation::builder()
                .revision_type(RevisionLocationType::AppSpecContent)
                .app_spec_content(
                    AppSpecContent::builder()
                        .content(app_spec(task_definition, hooks))
                        .build(),
                )
                .build(),
        )
}

/// Deploys `task_definition` with `hooks` (lifecycle event, Lambda function); the deployment
/// id.
pub async fn create_deployment(
    bg: &BlueGreen,
    task_definition: &str,
    hooks: &[(&str, &str)],
) -> String {
    deployment_request(bg, task_definition, hooks)
        .send()
        .await
        .unwrap()
        .deployment_id()
        .unwrap()
        .to_string()
}

pub async fn deployment(bg: &BlueGreen, id: &str) -> DeploymentInfo {
    bg.codedeploy
        .get_deployment()
        .deployment_id(id)
        .send()
        .await
        .unwrap()
        .deployment_info()
        .unwrap()
        .clone()
}

/// Polls GetDeployment until its status is one of `statuses`; panics with the last answer
/// when it ends otherwise or after PATIENCE.
pub async fn wait_deployment(bg: &BlueGreen, id: &str, statuses: &[&str]) -> DeploymentInfo {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let d = deployment(bg, id).await;
        let status = d
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if statuses.contains(&status.as_str()) {
            return d;
        }
        let over = ["Succeeded", "Failed", "Stopped"].contains(&status.as_str());
        if over || tokio::time::Instant::now() > deadline {
            panic!("deployment {id}: wanted {statuses:?}; last answer: {d:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The deployment's ECS target (`c:web`).
pub async fn target(bg: &BlueGreen, id: &str) -> EcsTarget {
    bg.codedeploy
        .get_deployment_target()
        .deployment_id(id)
        .target_id(format!("{}:{}", bg.cluster, bg.service))
        .send()
        .await
        .unwrap()
        .deployment_target()
        .unwrap()
        .ecs_target()
        .unwrap()
        .clone()
}

/// (label, traffic weight, status) of the target's task sets.
pub fn weights(t: &EcsTarget) -> Vec<(String, f64, String)> {
    t.task_sets_info()
        .iter()
        .map(|s| {
            (
                s.task_set_label()
                    .map(|l| l.as_str().to_string())
                    .unwrap_or_default(),
                s.traffic_weight(),
                s.status().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// (lifecycle event, status) of the target.
pub fn lifecycle(t: &EcsTarget) -> Vec<(String, String)> {
    t.lifecycle_events()
        .iter()
        .map(|e| {
            (
                e.lifecycle_event_name().unwrap_or_default().to_string(),
                e.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

pub async fn describe(bg: &BlueGreen) -> Service {
    bg.ecs
        .describe_services()
        .cluster(&bg.cluster)
        .services(&bg.service)
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone()
}

/// Polls DescribeServices until `done` holds; panics with the last state after PATIENCE.
pub async fn service_until(bg: &BlueGreen, what: &str, done: impl Fn(&Service) -> bool) -> Service {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = describe(bg).await;
        if done(&s) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not reached in {PATIENCE:?}; last state: {s:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True when the service runs one task set, PRIMARY, on `td` with all its tasks.
pub fn only_primary_on(s: &Service, td: &str) -> bool {
    let sets = s.task_sets();
    sets.len() == 1
        && sets[0].status() == Some("PRIMARY")
        && sets[0].task_definition() == Some(td)
        && sets[0].running_count() == s.desired_count()
        && s.task_definition() == Some(td)
}

/// Sets how hook `function` ends (`Failed` or `Succeeded`).
pub fn set_hook(bg: &BlueGreen, function: &str, result: &str) {
    control(
        &bg.sandbox,
        "hooks",
        &json!({"function": function, "result": result}).to_string(),
    );
}

/// What `GET /_sandbox/<path>` answers.
pub fn read_control(sandbox: &Sandbox, path: &str) -> Value {
    let url = format!("{}/_sandbox/{path}", sandbox.endpoint());
    let mut resp = ureq::get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = resp.body_mut().read_to_string().unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// The rollback of a failed or stopped deployment, once it has succeeded.
async fn rolled_back(bg: &BlueGreen, failed: &DeploymentInfo) -> DeploymentInfo {
    let id = failed.deployment_id().unwrap();
    let rollback = failed
        .rollback_info()
        .and_then(|r| r.rollback_deployment_id())
        .unwrap_or_else(|| panic!("no rollback for {failed:#?}"))
        .to_string();
    let r = wait_deployment(bg, &rollback, &["Succeeded"]).await;
    assert_eq!(r.creator().map(|c| c.as_str()), Some("codeDeployRollback"));
    assert_eq!(
        r.rollback_info()
            .and_then(|i| i.rollback_triggering_deployment_id()),
        Some(id)
    );
    let t = target(bg, &rollback).await;
    assert_eq!(
        weights(&t)[0],
        ("Blue".to_string(), 100.0, "PRIMARY".to_string()),
        "{t:#?}"
    );
    service_until(bg, "back on the good revision alone", |s| {
        only_primary_on(s, &bg.good)
    })
    .await;
    r
}

fn error_code(d: &DeploymentInfo) -> &str {
    d.error_information()
        .and_then(|e| e.code())
        .map(|c| c.as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_at_once_deployment_makes_the_replacement_primary_and_removes_the_original() {
    let bg = blue_green(GroupOptions::default()).await;
    let before = describe(&bg).await;
    let blue = before.task_sets()[0].id().unwrap().to_string();
    assert!(blue.starts_with("ecs-svc/"), "{blue}");
    assert!(before.deployments().is_empty());
    assert_eq!(
        before.deployment_controller().unwrap().r#type().as_str(),
        "CODE_DEPLOY"
    );
    assert_eq!(before.load_balancers()[0].container_port(), Some(80));

    let td = register_app(&bg, &["sleep", "601"]).await;
    let id = create_deployment(&bg, &td, &[("BeforeInstall", "check")]).await;
    assert!(id.starts_with("d-") && id.len() == 11, "{id}");
    let done = wait_deployment(&bg, &id, &["Succeeded"]).await;
    assert_eq!(done.creator().map(|c| c.as_str()), Some("user"));
    assert!(done.start_time().is_some() && done.complete_time().is_some());
    let t = target(&bg, &id).await;
    assert_eq!(
        lifecycle(&t),
        [
            ("BeforeInstall", "Succeeded"),
            ("Install", "Succeeded"),
            ("AfterInstall", "Skipped"),
            ("AllowTestTraffic", "Skipped"),
            ("AfterAllowTestTraffic", "Skipped"),
            ("BeforeAllowTraffic", "Skipped"),
            ("AllowTraffic", "Succeeded"),
            ("AfterAllowTraffic", "Skipped"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(t.target_arn().unwrap().ends_with(":service/c/web"));
    let s = service_until(&bg, "the replacement alone", |s| only_primary_on(s, &td)).await;
    let green = &s.task_sets()[0];
    assert_ne!(green.id(), Some(blue.as_str()));
    assert_eq!(green.external_id(), Some(id.as_str()));
    assert_eq!(
        green.started_by(),
        Some("CODE_DEPLOY"),
        "as the TaskSet reference says"
    );
    let tasks = bg
        .ecs
        .list_tasks()
        .cluster("c")
        .started_by(green.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        tasks.task_arns().len(),
        1,
        "tasks are started by their task set"
    );
    let events: Vec<&str> = s.events().iter().filter_map(|e| e.message()).collect();
    assert!(
        events.iter().any(|e| e.starts_with(&format!(
            "(service web, taskSet {}) has started 1 tasks: (task ",
            green.id().unwrap()
        ))),
        "{events:#?}"
    );
    let listed = bg
        .codedeploy
        .list_deployments()
        .application_name("app")
        .deployment_group_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.deployments(), std::slice::from_ref(&id));
    assert_eq!(
        bg.sandbox.calls().get("CodeDeploy.CreateDeployment"),
        Some(&1)
    );
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_shifts_part_of_the_traffic_then_the_rest_after_its_interval() {
    let bg = blue_green(GroupOptions {
        config: Some("Canary20Percent1Minute".into()),
        routing: Some(
            TrafficRoutingConfig::builder()
                .r#type(TrafficRoutingType::TimeBasedCanary)
                .time_based_canary(
                    TimeBasedCanary::builder()
                        .canary_percentage(20)
                        .canary_interval(1)
                        .build(),
                )
                .build(),
        ),
        ..GroupOptions::default()
    })
    .await;
    let config = bg
        .codedeploy
        .get_deployment_config()
        .deployment_config_name("Canary20Percent1Minute")
        .send()
        .await
        .unwrap();
    let routing = config
        .deployment_config_info()
        .unwrap()
        .traffic_routing_config()
        .unwrap();
    assert_eq!(routing.time_based_canary().unwrap().canary_percentage(), 20);

    let td = register_app(&bg, &["sleep", "601"]).await;
    let id = create_deployment(&bg, &td, &[]).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let t = target(&bg, &id).await;
        let w = weights(&t);
        if !seen.contains(&w) {
            seen.push(w.clone());
        }
        if w.len() == 2 && w[1].1 == 100.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let canary = vec![
        ("Blue".to_string(), 80.0, "PRIMARY".to_string()),
        ("Green".to_string(), 20.0, "ACTIVE".to_string()),
    ];
    assert!(seen.contains(&canary), "20% first: {seen:#?}");
    wait_deployment(&bg, &id, &["Succeeded"]).await;
    let t = target(&bg, &id).await;
    let allow = &t.lifecycle_events()[6];
    let took = allow.end_time().unwrap().as_secs_f64() - allow.start_time().unwrap().as_secs_f64();
    assert!(
        took >= MINUTE.as_secs_f64() - 0.01,
        "the canary interval is a minute: AllowTraffic took {took} s"
    );
    service_until(&bg, "the replacement alone", |s| only_primary_on(s, &td)).await;
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_replacement_fails_install_and_is_rolled_back() {
    let bg = blue_green(GroupOptions {
        auto_rollback: true,
        ..GroupOptions::default()
    })
    .await;
    let td = register_app(&bg, &["sh", "-c", "exit 1"]).await;
    let id = create_deployment(&bg, &td, &[]).await;
    let failed = wait_deployment(&bg, &id, &["Failed"]).await;
    assert_eq!(error_code(&failed), "ECS_UPDATE_ERROR");
    let t = target(&bg, &id).await;
    assert_eq!(lifecycle(&t)[1], ("Install".into(), "Failed".into()));
    let green = t.task_sets_info()[1].identifer().unwrap().to_string();
    rolled_back(&bg, &failed).await;
    let stopped = bg
        .ecs
        .list_tasks()
        .cluster("c")
        .started_by(&green)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert!(
        stopped.task_arns().len() >= 3,
        "the replacement's failed tasks: {stopped:?}"
    );
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_fails_the_deployment_and_it_is_rolled_back() {
    let bg = blue_green(GroupOptions {
        auto_rollback: true,
        ..GroupOptions::default()
    })
    .await;
    set_hook(&bg, "smoke", "Failed");
    set_hook(&bg, "check", "Succeeded");
    assert_eq!(
        read_control(&bg.sandbox, "hooks"),
        json!({"smoke": "Failed", "check": "Succeeded"})
    );
    let td = register_app(&bg, &["sleep", "601"]).await;
    let function = "arn:aws:lambda:us-east-1:123456789012:function:smoke";
    let id = create_deployment(&bg, &td, &[("AfterAllowTestTraffic", function)]).await;
    let failed = wait_deployment(&bg, &id, &["Failed"]).await;
    assert_eq!(error_code(&failed), "HOOK_EXECUTION_FAILURE");
    let t = target(&bg, &id).await;
    let event = &t.lifecycle_events()[4];
    assert_eq!(event.lifecycle_event_name(), Some("AfterAllowTestTraffic"));
    assert_eq!(event.status().map(|s| s.as_str()), Some("Failed"));
    let diagnostics = event.diagnostics().unwrap();
    assert!(
        diagnostics.message().unwrap().contains(function),
        "{diagnostics:?}"
    );
    rolled_back(&bg, &failed).await;
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_deployment_with_rollback_returns_to_the_original() {
    let bg = blue_green(GroupOptions {
        ready_wait_minutes: Some(0),
        ..GroupOptions::default()
    })
    .await;
    let td = register_app(&bg, &["sleep", "601"]).await;
    let id = create_deployment(&bg, &td, &[]).await;
    wait_deployment(&bg, &id, &["Ready"]).await;
    let stop = bg
        .codedeploy
        .stop_deployment()
        .deployment_id(&id)
        .auto_rollback_enabled(true)
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status().map(|s| s.as_str()), Some("Succeeded"));
    let stopped = deployment(&bg, &id).await;
    assert_eq!(stopped.status().map(|s| s.as_str()), Some("Stopped"));
    assert_eq!(error_code(&stopped), "MANUAL_STOP");
    rolled_back(&bg, &stopped).await;
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_of_the_group_stops_the_deployment_and_it_is_rolled_back() {
    let bg = blue_green(GroupOptions {
        auto_rollback: true,
        ready_wait_minutes: Some(0),
        alarms: vec!["web-errors".into()],
        ..GroupOptions::default()
    })
    .await;
    let td = register_app(&bg, &["sleep", "601"]).await;
    let id = create_deployment(&bg, &td, &[]).await;
    wait_deployment(&bg, &id, &["Ready"]).await;
    control(
        &bg.sandbox,
        "alarms",
        r#"{"name": "web-errors", "state": "ALARM"}"#,
    );
    let stopped = wait_deployment(&bg, &id, &["Stopped"]).await;
    assert_eq!(error_code(&stopped), "ALARM_ACTIVE");
    assert!(
        stopped
            .error_information()
            .and_then(|e| e.message())
            .is_some_and(|m| m.contains("web-errors")),
        "{stopped:#?}"
    );
    rolled_back(&bg, &stopped).await;
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_deployment_refuses_another_and_goes_on_after_continue_deployment() {
    let bg = blue_green(GroupOptions {
        ready_wait_minutes: Some(60),
        ..GroupOptions::default()
    })
    .await;
    let td = register_app(&bg, &["sleep", "601"]).await;
    let id = create_deployment(&bg, &td, &[]).await;
    let ready = wait_deployment(&bg, &id, &["Ready"]).await;
    assert!(ready.complete_time().is_none());
    let t = target(&bg, &id).await;
    assert_eq!(t.status().map(|s| s.as_str()), Some("Ready"));
    assert_eq!(
        weights(&t),
        [
            ("Blue".to_string(), 100.0, "PRIMARY".to_string()),
            ("Green".to_string(), 0.0, "ACTIVE".to_string())
        ]
    );
    let err = deployment_request(&bg, &td, &[]).send().await.unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_deployment_limit_exceeded_exception(), "{err:?}");
    assert!(err.to_string().contains(&id), "{err}");

    bg.codedeploy
        .continue_deployment()
        .deployment_id(&id)
        .deployment_wait_type(DeploymentWaitType::ReadyWait)
        .send()
        .await
        .unwrap();
    wait_deployment(&bg, &id, &["Succeeded"]).await;
    service_until(&bg, "the replacement alone", |s| only_primary_on(s, &td)).await;
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_deploy_service_takes_a_new_desired_count_but_no_new_task_definition() {
    let bg = code_deploy_service().await;
    let td = register_app(&bg, &["sleep", "601"]).await;
    let err = bg
        .ecs
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&td)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert!(err.to_string().contains("Use AWS CodeDeploy"), "{err}");
    bg.ecs
        .update_service()
        .cluster("c")
        .service("web")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let s = service_until(&bg, "two tasks in the primary task set", |s| {
        s.task_sets()[0].computed_desired_count() == 2 && s.task_sets()[0].running_count() == 2
    })
    .await;
    assert_eq!(s.running_count(), 2);
    let deployments = bg
        .ecs
        .list_service_deployments()
        .cluster("c")
        .service("web")
        .send()
        .await
        .unwrap();
    assert!(deployments.service_deployments().is_empty());
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_forgets_codedeploy_and_the_hook_results() {
    let (sandbox, _) = sandbox_with(test_options()).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let cd = aws_sdk_codedeploy::Client::new(&config);
    cd.create_application()
        .application_name("app")
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .unwrap();
    control(
        &sandbox,
        "hooks",
        r#"{"function": "smoke", "result": "Failed"}"#,
    );
    let listed = cd.list_applications().send().await.unwrap();
    assert_eq!(listed.applications(), ["app".to_string()]);
    control(&sandbox, "reset", "");
    let listed = cd.list_applications().send().await.unwrap();
    assert!(listed.applications().is_empty(), "{listed:?}");
    assert_eq!(read_control(&sandbox, "hooks"), json!({}));
    let err = cd
        .get_application()
        .application_name("app")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_application_does_not_exist_exception(), "{err:?}");
    sandbox.stop().await;
}

/// `aws <service> …` with JSON output against the sandbox, which must succeed.
async fn aws(bg: &BlueGreen, args: &[&str]) -> Value {
    let bed = Bed::get();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--output", "json"]);
    let (ok, stdout, stderr) =
        crate::clients::run(&bed.aws_cli, &all, &bg.sandbox.endpoint()).await;
    assert!(ok, "aws {all:?} failed:\n{stderr}");
    if stdout.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("aws {all:?}: not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_drives_a_blue_green_deployment_and_stops_it() {
    let bg = code_deploy_service().await;
    let app = aws(
        &bg,
        &[
            "deploy",
            "create-application",
            "--application-name",
            "app",
            "--compute-platform",
            "ECS",
        ],
    )
    .await;
    assert!(app["applicationId"].is_string(), "{app}");
    let lb = json!({"targetGroupPairInfoList": [{"targetGroups": [{"name": "web-blue"}, {"name": "web-green"}],
                    "prodTrafficRoute": {"listenerArns": [LISTENER]}}]})
    .to_string();
    let blue_green = json!({"terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE", "terminationWaitTimeInMinutes": 0},
                            "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 60}})
    .to_string();
    let group = aws(
        &bg,
        &[
            "deploy",
            "create-deployment-group",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
            "--service-role-arn",
            "arn:aws:iam::123456789012:role/codedeploy",
            "--deployment-style",
            "deploymentType=BLUE_GREEN,deploymentOption=WITH_TRAFFIC_CONTROL",
            "--ecs-services",
            "serviceName=web,clusterName=c",
            "--load-balancer-info",
            &lb,
            "--blue-green-deployment-configuration",
            &blue_green,
            "--auto-rollback-configuration",
            "enabled=true,events=DEPLOYMENT_FAILURE,DEPLOYMENT_STOP_ON_REQUEST",
        ],
    )
    .await;
    assert!(group["deploymentGroupId"].is_string(), "{group}");
    let got = aws(
        &bg,
        &[
            "deploy",
            "get-deployment-group",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
        ],
    )
    .await;
    assert_eq!(got["deploymentGroupInfo"]["computePlatform"], "ECS");

    let td = register_app(&bg, &["sleep", "601"]).await;
    let revision = json!({"revisionType": "AppSpecContent",
                          "appSpecContent": {"content": app_spec(&td, &[("BeforeInstall", "check")])}})
    .to_string();
    let created = aws(
        &bg,
        &[
            "deploy",
            "create-deployment",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
            "--revision",
            &revision,
            "--description",
            "from the aws CLI",
        ],
    )
    .await;
    let id = created["deploymentId"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let info = loop {
        let d = aws(&bg, &["deploy", "get-deployment", "--deployment-id", &id]).await;
        if d["deploymentInfo"]["status"] == "Ready" {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info["deploymentInfo"]["description"], "from the aws CLI");
    assert_eq!(info["deploymentInfo"]["computePlatform"], "ECS");
    let t = aws(
        &bg,
        &[
            "deploy",
            "get-deployment-target",
            "--deployment-id",
            &id,
            "--target-id",
            "c:web",
        ],
    )
    .await;
    let ecs_target = &t["deploymentTarget"]["ecsTarget"];
    assert_eq!(ecs_target["status"], "Ready", "{t:#}");
    assert_eq!(ecs_target["lifecycleEvents"][0]["status"], "Succeeded");
    assert_eq!(ecs_target["taskSetsInfo"][1]["taskSetLabel"], "Green");
    let targets = aws(
        &bg,
        &["deploy", "list-deployment-targets", "--deployment-id", &id],
    )
    .await;
    assert_eq!(targets["targetIds"], json!(["c:web"]));
    let listed = aws(
        &bg,
        &[
            "deploy",
            "list-deployments",
            "--application-name",
            "app",
            "--deployment-group-name",
            "web",
        ],
    )
    .await;
    assert_eq!(listed["deployments"], json!([id]));
    let services = aws(
        &bg,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            "c",
            "--services",
            "web",
        ],
    )
    .await;
    let sets = services["services"][0]["taskSets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{services:#}");
    assert_eq!(sets[1]["externalId"], id.as_str());

    let stop = aws(
        &bg,
        &[
            "deploy",
            "stop-deployment",
            "--deployment-id",
            &id,
            "--auto-rollback-enabled",
        ],
    )
    .await;
    assert_eq!(stop["status"], "Succeeded", "{stop}");
    let stopped = aws(&bg, &["deploy", "get-deployment", "--deployment-id", &id]).await;
    assert_eq!(stopped["deploymentInfo"]["status"], "Stopped");
    let rollback = stopped["deploymentInfo"]["rollbackInfo"]["rollbackDeploymentId"]
        .as_str()
        .unwrap()
        .to_string();
    wait_deployment(&bg, &rollback, &["Succeeded"]).await;
    let services = aws(
        &bg,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            "c",
            "--services",
            "web",
        ],
    )
    .await;
    assert_eq!(
        services["services"][0]["taskDefinition"],
        bg.good.as_str(),
        "{services:#}"
    );
    bg.sandbox.stop().await;
}
