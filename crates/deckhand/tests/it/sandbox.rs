//! The sandbox with real containers, driven by the unmodified AWS SDK for ECS: rollouts,
//! a crashing image tripping the breaker and rolling back, health checks, pull failures,
//! placement failures and AWS-shaped errors.

use std::time::Duration;

use aws_sdk_ecs::types::{
    CanaryConfiguration, ContainerDefinition, DeploymentAlarms, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookAction,
    DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType, DeploymentStrategy,
    HealthCheck, LinearConfiguration, Service, ServiceDeployment, StopServiceDeploymentStopType,
};
use aws_sdk_ecs::Client;
use bollard::query_parameters::ListContainersOptionsBuilder;
use deckhand_sandbox::{Options, Sandbox};

use crate::bed::Bed;

/// Long enough for several ticks and a container start on a busy machine; never a sleep.
const PATIENCE: Duration = Duration::from_secs(90);

pub async fn sandbox(memory_mib: u64) -> (Sandbox, Client) {
    sandbox_with(Options {
        memory_mib,
        ..test_options()
    })
    .await
}

/// What the tests' sandboxes run with: a free loopback port, a quick tick.
pub fn test_options() -> Options {
    Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        tick: Duration::from_millis(100),
        ..Options::default()
    }
}

/// A sandbox with `options` (start from [`test_options`]), and an SDK client for it.
pub async fn sandbox_with(options: Options) -> (Sandbox, Client) {
    Bed::get();
    let docker = deckhand::image::engine::connect()
        .await
        .expect("the bed's engine");
    let sandbox = Sandbox::start(options, docker).await.unwrap();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    (sandbox, Client::new(&config))
}

pub fn container(bed: &Bed, command: &[&str]) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("app")
        .image(&bed.base_image)
        .essential(true)
        .memory(32)
        .set_command(Some(command.iter().map(|s| s.to_string()).collect()))
        .build()
}

pub async fn register(client: &Client, family: &str, c: ContainerDefinition) -> String {
    let out = client
        .register_task_definition()
        .family(family)
        .container_definitions(c)
        .send()
        .await
        .unwrap();
    out.task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string()
}

async fn describe(client: &Client, service: &str) -> Service {
    let out = client
        .describe_services()
        .cluster("c")
        .services(service)
        .send()
        .await
        .unwrap();
    out.services()[0].clone()
}

/// Polls DescribeServices until `done` holds; panics with the last state after PATIENCE.
pub async fn wait_until(
    client: &Client,
    service: &str,
    what: &str,
    done: impl Fn(&Service) -> bool,
) -> Service {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = describe(client, service).await;
        if done(&s) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not reached in {PATIENCE:?}; last state: {s:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn completed_on(s: &Service, td: &str) -> bool {
    s.deployments().len() == 1
        && s.deployments()[0].task_definition() == Some(td)
        && s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("COMPLETED")
        && s.running_count() == s.desired_count()
}

fn events(s: &Service) -> Vec<String> {
    s.events()
        .iter()
        .filter_map(|e| e.message().map(str::to_string))
        .collect()
}

pub async fn create_service(client: &Client, name: &str, td: &str, desired: i32, breaker: bool) {
    client
        .create_cluster()
        .cluster_name("c")
        .send()
        .await
        .unwrap();
    let config = DeploymentConfiguration::builder()
        .maximum_percent(200)
        .minimum_healthy_percent(100)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(breaker)
                .rollback(breaker)
                .build(),
        )
        .build();
    client
        .create_service()
        .cluster("c")
        .service_name(name)
        .task_definition(td)
        .desired_count(desired)
        .deployment_configuration(config)
        .send()
        .await
        .unwrap();
}

/// The stopped tasks of `service`, described.
async fn stopped_tasks(client: &Client, service: &str) -> Vec<aws_sdk_ecs::types::Task> {
    let stopped = client
        .list_tasks()
        .cluster("c")
        .service_name(service)
        .desired_status("STOPPED".into())
        .send()
        .await
        .unwrap();
    if stopped.task_arns().is_empty() {
        return Vec::new();
    }
    let tasks = client
        .describe_tasks()
        .cluster("c")
        .set_tasks(Some(stopped.task_arns().to_vec()))
        .send()
        .await
        .unwrap();
    tasks.tasks().to_vec()
}

async fn sandbox_containers(sandbox: &Sandbox) -> usize {
    let docker = deckhand::image::engine::connect().await.unwrap();
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("deckhand.sandbox={}", sandbox.instance())],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_image_rolls_out_and_a_new_revision_replaces_it() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let td1 = register(&client, "good", container(&bed, &["sleep", "600"])).await;
    create_service(&client, "web", &td1, 2, false).await;
    let s = wait_until(&client, "web", "first rollout", |s| completed_on(s, &td1)).await;
    assert!(
        events(&s)
            .iter()
            .any(|e| e == "(service web) has reached a steady state."),
        "{:?}",
        events(&s)
    );
    assert_eq!(
        sandbox_containers(&sandbox).await,
        2,
        "the tasks are real containers"
    );

    // This revision's app exits 0 on SIGTERM, so its replacement shows a clean stop.
    let graceful = "trap 'exit 0' TERM; while true; do sleep 1; done";
    let td2 = register(&client, "good", container(&bed, &["sh", "-c", graceful])).await;
    let updated = client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&td2)
        .send()
        .await
        .unwrap();
    let deployments = updated.service().unwrap().deployments();
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[0].status(), Some("PRIMARY"));
    assert_eq!(
        deployments[0].rollout_state().map(|r| r.as_str()),
        Some("IN_PROGRESS")
    );
    assert!(deployments[0].id().unwrap().starts_with("ecs-svc/"));
    wait_until(&client, "web", "second rollout", |s| completed_on(s, &td2)).await;
    assert_eq!(
        sandbox_containers(&sandbox).await,
        2,
        "the old tasks were stopped"
    );

    // Replacing td2's tasks stops them gracefully: SIGTERM, and the app's own exit code.
    let td3 = register(&client, "good", container(&bed, &["sleep", "602"])).await;
    client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&td3)
        .send()
        .await
        .unwrap();
    wait_until(&client, "web", "third rollout", |s| completed_on(s, &td3)).await;
    let tasks = stopped_tasks(&client, "web").await;
    let replaced: Vec<_> = tasks
        .iter()
        .filter(|t| t.task_definition_arn() == Some(td2.as_str()))
        .collect();
    assert_eq!(replaced.len(), 2, "{tasks:#?}");
    for t in replaced {
        assert_eq!(
            t.stop_code().map(|c| c.as_str()),
            Some("ServiceSchedulerInitiated")
        );
        assert!(
            t.stopped_reason()
                .unwrap_or_default()
                .starts_with("Scaling activity initiated by"),
            "{t:#?}"
        );
        assert_eq!(
            t.containers()[0].exit_code(),
            Some(0),
            "stopped with SIGTERM, not killed: {t:#?}"
        );
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_image_trips_the_breaker_and_rolls_back() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let good = register(&client, "crash", container(&bed, &["sleep", "600"])).await;
    create_service(&client, "api", &good, 1, true).await;
    wait_until(&client, "api", "first rollout", |s| completed_on(s, &good)).await;

    let bad = register(&client, "crash", container(&bed, &["sh", "-c", "exit 3"])).await;
    client
        .update_service()
        .cluster("c")
        .service("api")
        .task_definition(&bad)
        .send()
        .await
        .unwrap();
    let s = wait_until(&client, "api", "breaker and rollback", |s| {
        completed_on(s, &good)
    })
    .await;
    assert_eq!(
        s.task_definition(),
        Some(good.as_str()),
        "the service is back on the good revision"
    );
    let ev = events(&s);
    assert!(
        ev.iter()
            .any(|e| e.contains("deployment failed: tasks failed to start")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e.contains("rolling back to deployment")),
        "{ev:?}"
    );

    let tasks = stopped_tasks(&client, "api").await;
    let crashed: Vec<_> = tasks
        .iter()
        .filter(|t| t.task_definition_arn() == Some(bad.as_str()))
        .collect();
    assert!(
        crashed.len() >= 3,
        "the breaker needs 3 failures for 1 desired task: {crashed:#?}"
    );
    for t in crashed {
        assert_eq!(
            t.stopped_reason(),
            Some("Essential container in task exited")
        );
        assert_eq!(t.containers()[0].exit_code(), Some(3));
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_stop_tasks() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let mut c = container(&bed, &["sleep", "600"]);
    c.health_check = Some(
        HealthCheck::builder()
            .set_command(Some(vec!["CMD-SHELL".into(), "exit 1".into()]))
            .interval(5)
            .timeout(2)
            .retries(1)
            .build()
            .unwrap(),
    );
    let td = register(&client, "sick", c).await;
    create_service(&client, "sick", &td, 1, false).await;
    let s = wait_until(&client, "sick", "health-check failure", |s| {
        events(s)
            .iter()
            .any(|e| e.contains("failed container health checks"))
    })
    .await;
    assert_ne!(
        s.deployments()[0].rollout_state().map(|r| r.as_str()),
        Some("COMPLETED")
    );
    let tasks = stopped_tasks(&client, "sick").await;
    assert_eq!(
        tasks[0].stopped_reason(),
        Some("Task failed container health checks")
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_cannot_pull_error() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let mut c = container(&bed, &["true"]);
    c.image = Some("127.0.0.1:9/does-not-exist:1".into());
    let td = register(&client, "nopull", c).await;
    create_service(&client, "nopull", &td, 1, false).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let reason = loop {
        let stopped = client
            .list_tasks()
            .cluster("c")
            .service_name("nopull")
            .desired_status("STOPPED".into())
            .send()
            .await
            .unwrap();
        if let Some(arn) = stopped.task_arns().first() {
            let t = client
                .describe_tasks()
                .cluster("c")
                .tasks(arn)
                .send()
                .await
                .unwrap();
            break t.tasks()[0]
                .stopped_reason()
                .unwrap_or_default()
                .to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no stopped task");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.starts_with("CannotPullContainerError"), "{reason}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_too_big_for_the_sandbox_is_not_placed() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(64).await;
    let mut c = container(&bed, &["sleep", "600"]);
    c.memory = Some(1024);
    let td = register(&client, "big", c).await;
    create_service(&client, "big", &td, 1, false).await;
    let s = wait_until(&client, "big", "placement failure", |s| {
        events(s)
            .iter()
            .any(|e| e.contains("was unable to place a task"))
    })
    .await;
    assert_eq!(s.running_count(), 0);
    assert_eq!(sandbox_containers(&sandbox).await, 0);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_as_aws_sends_them() {
    let (sandbox, client) = sandbox(8192).await;
    let err = client
        .describe_services()
        .cluster("nope")
        .services("x")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_cluster_not_found_exception(),
        "{err:?}"
    );
    client
        .create_cluster()
        .cluster_name("c")
        .send()
        .await
        .unwrap();
    let err = client
        .update_service()
        .cluster("c")
        .service("ghost")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_service_not_found_exception(),
        "{err:?}"
    );
    let err = client
        .register_task_definition()
        .family("bad")
        .container_definitions(ContainerDefinition::builder().name("a").build())
        .send()
        .await
        .unwrap_err();
    let service_err = err.as_service_error().unwrap();
    assert!(service_err.is_client_exception(), "{err:?}");
    assert!(format!("{}", aws_sdk_ecs::error::DisplayErrorContext(&err))
        .contains("containerDefinitions[0].image"));
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_command_serves_until_terminated_and_cleans_up() {
    use std::io::BufRead;
    let bed = Bed::get();
    let dir = tempfile::tempdir().unwrap();
    let refused = crate::bed::deckhand(
        dir.path(),
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--fault-operation",
            "ecs:UpdateService",
        ],
        &[],
    );
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("not an operation name"),
        "{}",
        refused.stderr
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--tick", "100ms"])
        // Faults from the command line; this test makes no UpdateService call.
        .args([
            "--lost-answer-rate",
            "1",
            "--fault-operation",
            "UpdateService",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut endpoint = String::new();
    stdout.read_line(&mut endpoint).unwrap();
    let endpoint = endpoint.trim().to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint:?}");
    let faults: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{endpoint}/_sandbox/faults"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(faults["lost_answer_rate"], 1.0, "{faults}");
    assert_eq!(faults["operations"], serde_json::json!(["UpdateService"]));

    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let client = Client::new(&config);
    // STS through the same endpoint: the account the sandbox reports
    let who = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.account(), Some("123456789012"));

    let td = register(&client, "cli", container(&bed, &["sleep", "600"])).await;
    create_service(&client, "cli", &td, 1, false).await;
    wait_until(&client, "cli", "rollout", |s| completed_on(s, &td)).await;
    let task_arn = client
        .list_tasks()
        .cluster("c")
        .service_name("cli")
        .send()
        .await
        .unwrap()
        .task_arns()[0]
        .clone();

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let docker = deckhand::image::engine::connect().await.unwrap();
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("deckhand.task={task_arn}")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    assert!(
        docker
            .list_containers(Some(options))
            .await
            .unwrap()
            .is_empty(),
        "containers removed on exit"
    );
}

/// POSTs `body` to a control endpoint of the sandbox.
pub fn control(sandbox: &Sandbox, path: &str, body: &str) {
    let url = format!("{}/_sandbox/{path}", sandbox.endpoint());
    if path == "calls" {
        ureq::delete(&url)
            .call()
            .unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
        return;
    }
    ureq::post(&url)
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_injected_on_demand() {
    let (sandbox, _) = sandbox(8192).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let client = Client::new(&config);

    control(&sandbox, "faults", r#"{"throttle_rate": 1.0}"#);
    let err = client.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.as_service_error()
            .and_then(|e| aws_sdk_ecs::error::ProvideErrorMetadata::code(e)),
        Some("ThrottlingException"),
        "{err:?}"
    );

    control(&sandbox, "faults", r#"{"error_rate": 1.0}"#);
    let err = client.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );

    control(&sandbox, "faults", r#"{"drop_rate": 1.0}"#);
    let err = client.list_clusters().send().await.unwrap_err();
    assert!(
        err.as_service_error().is_none() && err.raw_response().is_none(),
        "no answer at all: {err:?}"
    );

    control(&sandbox, "faults", r#"{"latency_ms": 300}"#);
    let started = std::time::Instant::now();
    client.list_clusters().send().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the answer waited for the injected latency"
    );

    control(&sandbox, "faults", "{}");
    client.list_clusters().send().await.unwrap();
    let bad =
        ureq::post(&format!("{}/_sandbox/faults", sandbox.endpoint())).send(r#"{"error_rate": 2}"#);
    assert!(matches!(bad, Err(ureq::Error::StatusCode(400))), "{bad:?}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_applied_and_a_dropped_call_is_not() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let td1 = register(&client, "lost", container(&bed, &["sleep", "600"])).await;
    let td2 = register(&client, "lost", container(&bed, &["sleep", "601"])).await;
    // No task: only the service's record changes.
    create_service(&client, "web", &td1, 0, false).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let once = Client::new(&config);
    let update = |td: &str| {
        once.update_service()
            .cluster("c")
            .service("web")
            .task_definition(td)
            .send()
    };

    control(
        &sandbox,
        "faults",
        r#"{"lost_answer_rate": 1, "operations": ["UpdateService"]}"#,
    );
    let err = update(&td2).await.unwrap_err();
    assert!(
        err.as_service_error().is_none() && err.raw_response().is_none(),
        "no answer at all: {err:?}"
    );
    // Other operations are served, and show the update happened.
    let s = describe(&once, "web").await;
    assert_eq!(s.task_definition(), Some(td2.as_str()));
    assert_eq!(s.deployments()[0].task_definition(), Some(td2.as_str()));

    control(
        &sandbox,
        "faults",
        r#"{"drop_rate": 1, "operations": ["UpdateService"]}"#,
    );
    let err = update(&td1).await.unwrap_err();
    assert!(
        err.as_service_error().is_none() && err.raw_response().is_none(),
        "no answer at all: {err:?}"
    );
    assert_eq!(
        describe(&once, "web").await.task_definition(),
        Some(td2.as_str()),
        "a dropped call is not applied"
    );

    let bad = ureq::post(&format!("{}/_sandbox/faults", sandbox.endpoint()))
        .send(r#"{"operations": ["ECS.UpdateService"]}"#);
    assert!(matches!(bad, Err(ureq::Error::StatusCode(400))), "{bad:?}");
    control(&sandbox, "faults", "{}");
    update(&td1).await.unwrap();
    assert_eq!(
        describe(&once, "web").await.task_definition(),
        Some(td1.as_str())
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_forgets_everything_and_removes_containers() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let td = register(&client, "reset", container(&bed, &["sleep", "600"])).await;
    create_service(&client, "web", &td, 1, false).await;
    wait_until(&client, "web", "rollout", |s| completed_on(s, &td)).await;
    assert_eq!(sandbox_containers(&sandbox).await, 1);

    control(&sandbox, "reset", "");
    assert_eq!(sandbox_containers(&sandbox).await, 0);
    let clusters = client
        .describe_clusters()
        .clusters("c")
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.failures()[0].reason(), Some("MISSING"));
    let err = client
        .describe_task_definition()
        .task_definition(&td)
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_client_exception());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckhand_push_lands_in_the_sandbox_ecr_and_the_sandbox_runs_it() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let repo = crate::bed::Repo::new(&[(
        "Dockerfile",
        &format!("FROM {}\nCMD [\"sleep\", \"600\"]\n", bed.base_image),
    )]);
    let name = "team/app";
    let endpoint = sandbox.endpoint();
    // The child talks to this process's sandbox: wait for it off the runtime's workers.
    let push = |extra: &'static [&'static str]| {
        let dir = repo.path().to_path_buf();
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "push",
                "--repository",
                name,
                "--output",
                "json",
                "--create-repository",
            ];
            args.extend_from_slice(extra);
            crate::bed::deckhand(&dir, &args, &[("AWS_ENDPOINT_URL", &endpoint)])
        })
    };
    let first = push(&[]).await.unwrap();
    first.expect_code(0);
    let out = first.json();
    assert_eq!(
        out["image"],
        format!("{}/{name}:{}", sandbox.addr, repo.sha)
    );
    assert!(
        !first.all().contains(sandbox.password()),
        "the sandbox's registry password leaked"
    );

    // ECR's view is exactly what was pushed
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let ecr = aws_sdk_ecr::Client::new(&config);
    let images = ecr
        .describe_images()
        .repository_name(name)
        .send()
        .await
        .unwrap();
    let detail = &images.image_details()[0];
    assert_eq!(detail.image_digest(), out["digest"].as_str());
    assert_eq!(detail.image_tags(), std::slice::from_ref(&repo.sha));

    // a re-run skips through DescribeImages and adds a tag through BatchGetImage + PutImage
    let second = push(&["--tag", "latest"]).await.unwrap();
    second.expect_code(0);
    assert_eq!(second.json()["skipped"], true);
    let images = ecr
        .describe_images()
        .repository_name(name)
        .send()
        .await
        .unwrap();
    let mut tags = images.image_details()[0].image_tags().to_vec();
    tags.sort();
    assert_eq!(tags, vec![repo.sha.clone(), "latest".to_string()]);

    // Drop the engine's copy: the sandbox must pull the pinned image from its own registry.
    let docker = deckhand::image::engine::connect().await.unwrap();
    let image = out["image"].as_str().unwrap().to_string();
    let pinned = out["pinned"].as_str().unwrap().to_string();
    for reference in [&image, &format!("{}/{name}:latest", sandbox.addr)] {
        let _ = docker
            .remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
    let c = ContainerDefinition::builder()
        .name("app")
        .image(&pinned)
        .essential(true)
        .memory(32)
        .build();
    let td = register(&client, "app", c).await;
    create_service(&client, "app", &td, 1, false).await;
    wait_until(&client, "app", "rollout of the pushed image", |s| {
        completed_on(s, &td)
    })
    .await;
    sandbox.stop().await;
}

/// A sandbox whose minutes pass quickly: a bake of 1 minute lasts 1.2 s.
async fn quick_sandbox() -> (Sandbox, Client) {
    sandbox_with(Options {
        time_scale: 0.02,
        ..test_options()
    })
    .await
}

/// The service's newest service deployment, described.
async fn newest_deployment(client: &Client, service: &str) -> ServiceDeployment {
    let list = client
        .list_service_deployments()
        .cluster("c")
        .service(service)
        .send()
        .await
        .unwrap();
    let arn = list.service_deployments()[0]
        .service_deployment_arn()
        .unwrap()
        .to_string();
    describe_deployment(client, &arn).await
}

async fn describe_deployment(client: &Client, arn: &str) -> ServiceDeployment {
    let out = client
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .unwrap();
    out.service_deployments()[0].clone()
}

/// Polls DescribeServiceDeployments until `done` holds, calling `seen` with each answer.
async fn deployment_until(
    client: &Client,
    arn: &str,
    what: &str,
    mut seen: impl FnMut(&ServiceDeployment),
    done: impl Fn(&ServiceDeployment) -> bool,
) -> ServiceDeployment {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let d = describe_deployment(client, arn).await;
        seen(&d);
        if done(&d) {
            return d;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not reached in {PATIENCE:?}; last state: {d:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status(d: &ServiceDeployment) -> &str {
    d.status().map(|s| s.as_str()).unwrap_or_default()
}

fn stage(d: &ServiceDeployment) -> &str {
    d.lifecycle_stage().map(|s| s.as_str()).unwrap_or_default()
}

/// A service of `good` (rolled out), then UpdateService to `next` with `config`; returns the
/// new service deployment's ARN.
async fn update_with(
    client: &Client,
    service: &str,
    good: &str,
    next: &str,
    desired: i32,
    breaker: bool,
    config: DeploymentConfiguration,
) -> String {
    create_service(client, service, good, desired, breaker).await;
    wait_until(client, service, "first rollout", |s| completed_on(s, good)).await;
    client
        .update_service()
        .cluster("c")
        .service(service)
        .task_definition(next)
        .deployment_configuration(config)
        .send()
        .await
        .unwrap();
    let d = newest_deployment(client, service).await;
    assert_eq!(
        d.target_service_revision().and_then(|r| r.arn()),
        d.service_deployment_arn()
            .map(|a| a.replace(":service-deployment/", ":service-revision/"))
            .as_deref()
    );
    d.service_deployment_arn().unwrap().to_string()
}

pub fn strategy_config(
    strategy: DeploymentStrategy,
    bake: i32,
    breaker: bool,
) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .strategy(strategy)
        .bake_time_in_minutes(bake)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(breaker)
                .rollback(breaker)
                .build(),
        )
        .build()
}

const ORDER: [&str; 11] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_deployment_walks_its_stages_and_cleans_up_after_the_bake() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let blue = register(&client, "bg", container(&bed, &["sleep", "600"])).await;
    let green = register(&client, "bg", container(&bed, &["sleep", "601"])).await;
    let config = strategy_config(DeploymentStrategy::BlueGreen, 1, false);
    let arn = update_with(&client, "web", &blue, &green, 2, false, config).await;

    let mut stages: Vec<String> = Vec::new();
    let mut baking_with_blue = false;
    let done = deployment_until(
        &client,
        &arn,
        "blue/green success",
        |d| {
            let s = stage(d).to_string();
            if stages.last() != Some(&s) {
                stages.push(s.clone());
            }
            if s == "BAKE_TIME" {
                let blue_running = d.source_service_revisions()[0].running_task_count();
                let target = d.target_service_revision().unwrap();
                baking_with_blue |= blue_running == 2
                    && target.running_task_count() == 2
                    && target.requested_production_traffic_weight() == Some(100.0);
            }
        },
        |d| status(d) == "SUCCESSFUL",
    )
    .await;
    let positions: Vec<usize> = stages
        .iter()
        .map(|s| {
            ORDER
                .iter()
                .position(|o| o == s)
                .unwrap_or_else(|| panic!("{s}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{stages:?}");
    for must in ["SCALE_UP", "BAKE_TIME"] {
        assert!(stages.iter().any(|s| s == must), "{stages:?}");
    }
    assert!(
        baking_with_blue,
        "blue and green both ran during the bake: {stages:?}"
    );
    assert_eq!(stage(&done), "CLEAN_UP");
    assert!(done.finished_at().is_some());
    let config = done.deployment_configuration().unwrap();
    assert_eq!(config.strategy().map(|s| s.as_str()), Some("BLUE_GREEN"));
    assert_eq!(config.bake_time_in_minutes(), Some(1));
    let s = wait_until(&client, "web", "steady on green", |s| {
        completed_on(s, &green)
    })
    .await;
    assert_eq!(
        s.deployment_configuration()
            .and_then(|c| c.strategy())
            .map(|s| s.as_str()),
        Some("BLUE_GREEN")
    );
    assert_eq!(
        sandbox_containers(&sandbox).await,
        2,
        "the blue tasks are gone"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_during_the_bake_rolls_a_blue_green_deployment_back() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let blue = register(&client, "alarm", container(&bed, &["sleep", "600"])).await;
    let green = register(&client, "alarm", container(&bed, &["sleep", "601"])).await;
    let mut config = strategy_config(DeploymentStrategy::BlueGreen, 60, false);
    config.alarms = Some(
        DeploymentAlarms::builder()
            .alarm_names("api-errors")
            .enable(true)
            .rollback(true)
            .build()
            .unwrap(),
    );
    let arn = update_with(&client, "web", &blue, &green, 1, false, config).await;
    deployment_until(
        &client,
        &arn,
        "bake time",
        |_| {},
        |d| stage(d) == "BAKE_TIME",
    )
    .await;
    control(
        &sandbox,
        "alarms",
        r#"{"name": "api-errors", "state": "ALARM"}"#,
    );
    let d = deployment_until(
        &client,
        &arn,
        "alarm rollback",
        |_| {},
        |d| status(d) == "ROLLBACK_SUCCESSFUL",
    )
    .await;
    let alarms = d.alarms().unwrap();
    assert_eq!(alarms.triggered_alarm_names(), ["api-errors"]);
    assert_eq!(alarms.status().map(|s| s.as_str()), Some("TRIGGERED"));
    let rollback = d.rollback().unwrap();
    assert!(
        rollback.reason().unwrap().contains("api-errors"),
        "{rollback:?}"
    );
    assert_eq!(
        rollback.service_revision_arn(),
        d.source_service_revisions()[0].arn()
    );
    assert_eq!(
        d.target_service_revision()
            .unwrap()
            .requested_production_traffic_weight(),
        Some(0.0)
    );
    let s = wait_until(&client, "web", "back on blue", |s| completed_on(s, &blue)).await;
    assert!(
        events(&s)
            .iter()
            .any(|e| e.contains("deployment failed: alarm detected")),
        "{:?}",
        events(&s)
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_canary_trips_the_breaker_and_rolls_back() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let good = register(&client, "canary", container(&bed, &["sleep", "600"])).await;
    let bad = register(&client, "canary", container(&bed, &["sh", "-c", "exit 4"])).await;
    let mut config = strategy_config(DeploymentStrategy::Canary, 0, true);
    config.canary_configuration = Some(
        CanaryConfiguration::builder()
            .canary_percent(10.0)
            .canary_bake_time_in_minutes(1)
            .build(),
    );
    let arn = update_with(&client, "api", &good, &bad, 1, true, config).await;
    let d = deployment_until(
        &client,
        &arn,
        "breaker rollback",
        |_| {},
        |d| status(d) == "ROLLBACK_SUCCESSFUL",
    )
    .await;
    let breaker = d.deployment_circuit_breaker().unwrap();
    assert!(breaker.failure_count() >= 3, "{breaker:?}");
    assert_eq!(breaker.threshold(), 3);
    assert_eq!(breaker.status().map(|s| s.as_str()), Some("TRIGGERED"));
    assert!(d
        .rollback()
        .unwrap()
        .reason()
        .unwrap()
        .contains("circuit breaker"));
    wait_until(&client, "api", "back on good", |s| completed_on(s, &good)).await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_service_deployment_rolls_an_in_progress_canary_back() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let good = register(&client, "stop", container(&bed, &["sleep", "600"])).await;
    let next = register(&client, "stop", container(&bed, &["sleep", "601"])).await;
    let mut config = strategy_config(DeploymentStrategy::Canary, 0, false);
    config.canary_configuration = Some(
        CanaryConfiguration::builder()
            .canary_percent(20.0)
            .canary_bake_time_in_minutes(600)
            .build(),
    );
    let arn = update_with(&client, "web", &good, &next, 1, false, config).await;
    let d = deployment_until(
        &client,
        &arn,
        "canary traffic",
        |_| {},
        |d| stage(d) == "PRODUCTION_TRAFFIC_SHIFT",
    )
    .await;
    let target = d.target_service_revision().unwrap();
    assert_eq!(target.requested_production_traffic_weight(), Some(20.0));
    assert_eq!(
        d.source_service_revisions()[0].requested_production_traffic_weight(),
        Some(80.0)
    );
    client
        .stop_service_deployment()
        .service_deployment_arn(&arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .unwrap();
    let d = deployment_until(
        &client,
        &arn,
        "stop rollback",
        |_| {},
        |d| status(d) == "ROLLBACK_SUCCESSFUL",
    )
    .await;
    assert!(d
        .rollback()
        .unwrap()
        .reason()
        .unwrap()
        .contains("stop request"));
    wait_until(&client, "web", "back on good", |s| completed_on(s, &good)).await;
    let err = client
        .stop_service_deployment()
        .service_deployment_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.as_service_error()
            .and_then(|e| aws_sdk_ecs::error::ProvideErrorMetadata::code(e)),
        Some("ConflictException"),
        "{err:?}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_hook_waits_for_continue_or_rollback() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let v1 = register(&client, "pause", container(&bed, &["sleep", "600"])).await;
    let v2 = register(&client, "pause", container(&bed, &["sleep", "601"])).await;
    let v3 = register(&client, "pause", container(&bed, &["sleep", "602"])).await;
    let mut config = strategy_config(DeploymentStrategy::BlueGreen, 0, false);
    config.lifecycle_hooks = Some(vec![DeploymentLifecycleHook::builder()
        .target_type(DeploymentLifecycleHookTargetType::Pause)
        .lifecycle_stages(DeploymentLifecycleHookStage::PostScaleUp)
        .build()]);
    let arn = update_with(&client, "web", &v1, &v2, 1, false, config).await;

    let paused = |d: &ServiceDeployment| {
        d.lifecycle_hook_details()
            .iter()
            .any(|h| h.status().map(|s| s.as_str()) == Some("AWAITING_ACTION"))
    };
    let d = deployment_until(&client, &arn, "paused", |_| {}, paused).await;
    assert_eq!(stage(&d), "POST_SCALE_UP");
    assert_eq!(status(&d), "IN_PROGRESS");
    let hook = d.lifecycle_hook_details()[0].clone();
    let id = hook.hook_id().unwrap().to_string();
    assert!(id.starts_with("ecs-pause-"), "{hook:?}");
    assert_eq!(hook.target_type().map(|t| t.as_str()), Some("PAUSE"));
    assert_eq!(hook.timeout_action().map(|t| t.as_str()), Some("ROLLBACK"));
    assert!(hook.expires_at().is_some());
    client
        .continue_service_deployment()
        .service_deployment_arn(&arn)
        .hook_id(&id)
        .send()
        .await
        .unwrap();
    let d = deployment_until(
        &client,
        &arn,
        "continued",
        |_| {},
        |d| status(d) == "SUCCESSFUL",
    )
    .await;
    assert_eq!(
        d.lifecycle_hook_details()[0].status().map(|s| s.as_str()),
        Some("SUCCEEDED")
    );
    let err = client
        .continue_service_deployment()
        .service_deployment_arn(&arn)
        .hook_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.as_service_error()
            .and_then(|e| aws_sdk_ecs::error::ProvideErrorMetadata::code(e)),
        Some("InvalidParameterException"),
        "{err:?}"
    );
    wait_until(&client, "web", "on v2", |s| completed_on(s, &v2)).await;

    // The next one is rolled back at the hook.
    client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&v3)
        .send()
        .await
        .unwrap();
    let arn = newest_deployment(&client, "web")
        .await
        .service_deployment_arn()
        .unwrap()
        .to_string();
    let d = deployment_until(&client, &arn, "paused again", |_| {}, paused).await;
    let id = d.lifecycle_hook_details()[0].hook_id().unwrap().to_string();
    client
        .continue_service_deployment()
        .service_deployment_arn(&arn)
        .hook_id(&id)
        .action(DeploymentLifecycleHookAction::Rollback)
        .send()
        .await
        .unwrap();
    deployment_until(
        &client,
        &arn,
        "rolled back at the hook",
        |_| {},
        |d| status(d) == "ROLLBACK_SUCCESSFUL",
    )
    .await;
    wait_until(&client, "web", "back on v2", |s| completed_on(s, &v2)).await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linear_deployment_shifts_traffic_in_steps() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let v1 = register(&client, "linear", container(&bed, &["sleep", "600"])).await;
    let v2 = register(&client, "linear", container(&bed, &["sleep", "601"])).await;
    let mut config = strategy_config(DeploymentStrategy::Linear, 0, false);
    config.linear_configuration = Some(
        LinearConfiguration::builder()
            .step_percent(40.0)
            .step_bake_time_in_minutes(1)
            .build(),
    );
    let arn = update_with(&client, "web", &v1, &v2, 1, false, config).await;
    let mut weights: Vec<f64> = Vec::new();
    deployment_until(
        &client,
        &arn,
        "linear success",
        |d| {
            if stage(d) == "PRODUCTION_TRAFFIC_SHIFT" || stage(d) == "PRE_PRODUCTION_TRAFFIC_SHIFT"
            {
                if let Some(w) = d
                    .target_service_revision()
                    .and_then(|t| t.requested_production_traffic_weight())
                {
                    if weights.last() != Some(&w) {
                        weights.push(w);
                    }
                }
            }
        },
        |d| status(d) == "SUCCESSFUL",
    )
    .await;
    let shifted: Vec<f64> = weights.into_iter().filter(|w| *w > 0.0).collect();
    assert_eq!(
        shifted,
        [40.0, 80.0, 100.0][..shifted.len()].to_vec(),
        "{shifted:?}"
    );
    assert!(
        shifted.len() >= 2,
        "the 40% and 80% steps each bake a minute: {shifted:?}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_during_a_blue_green_deployment_supersedes_it() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let v1 = register(&client, "super", container(&bed, &["sleep", "600"])).await;
    let v2 = register(&client, "super", container(&bed, &["sleep", "601"])).await;
    let v3 = register(&client, "super", container(&bed, &["sleep", "602"])).await;
    let config = strategy_config(DeploymentStrategy::BlueGreen, 600, false);
    let first = update_with(&client, "web", &v1, &v2, 1, false, config).await;
    deployment_until(
        &client,
        &first,
        "baking",
        |_| {},
        |d| stage(d) == "BAKE_TIME",
    )
    .await;
    client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&v3)
        .deployment_configuration(strategy_config(DeploymentStrategy::BlueGreen, 0, false))
        .send()
        .await
        .unwrap();
    let old = describe_deployment(&client, &first).await;
    assert_eq!(status(&old), "STOPPED");
    assert!(
        old.status_reason()
            .unwrap_or_default()
            .contains("Superseded"),
        "{old:#?}"
    );
    let newest = newest_deployment(&client, "web").await;
    let arn = newest.service_deployment_arn().unwrap().to_string();
    assert_ne!(arn, first);
    let mut stages = Vec::new();
    deployment_until(
        &client,
        &arn,
        "the newer one succeeds",
        |d| stages.push(stage(d).to_string()),
        |d| status(d) == "SUCCESSFUL",
    )
    .await;
    assert_eq!(stages[0], "RECONCILE_SERVICE", "{stages:?}");
    wait_until(&client, "web", "on v3", |s| completed_on(s, &v3)).await;
    assert_eq!(
        sandbox_containers(&sandbox).await,
        1,
        "v1's and v2's tasks are gone"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_pause_hook_times_out_into_a_rollback() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let v1 = register(&client, "timeout", container(&bed, &["sleep", "600"])).await;
    let v2 = register(&client, "timeout", container(&bed, &["sleep", "601"])).await;
    let mut config = strategy_config(DeploymentStrategy::BlueGreen, 0, false);
    config.lifecycle_hooks = Some(vec![DeploymentLifecycleHook::builder()
        .target_type(DeploymentLifecycleHookTargetType::Pause)
        .lifecycle_stages(DeploymentLifecycleHookStage::PostTestTrafficShift)
        .timeout_configuration(
            aws_sdk_ecs::types::DeploymentLifecycleHookTimeoutConfiguration::builder()
                .timeout_in_minutes(1)
                .build(),
        )
        .build()]);
    let arn = update_with(&client, "web", &v1, &v2, 1, false, config).await;
    let d = deployment_until(
        &client,
        &arn,
        "timed out",
        |_| {},
        |d| status(d) == "ROLLBACK_SUCCESSFUL",
    )
    .await;
    assert_eq!(
        d.lifecycle_hook_details()[0].status().map(|s| s.as_str()),
        Some("TIMED_OUT")
    );
    assert!(d
        .rollback()
        .unwrap()
        .reason()
        .unwrap()
        .contains("timed out"));
    wait_until(&client, "web", "back on v1", |s| completed_on(s, &v1)).await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_rolls_a_rolling_deployment_back() {
    let bed = Bed::get();
    let (sandbox, client) = quick_sandbox().await;
    let v1 = register(&client, "rolling", container(&bed, &["sleep", "600"])).await;
    let v2 = register(&client, "rolling", container(&bed, &["sleep", "601"])).await;
    control(
        &sandbox,
        "alarms",
        r#"{"name": "latency", "state": "ALARM"}"#,
    );
    let config = DeploymentConfiguration::builder()
        .alarms(
            DeploymentAlarms::builder()
                .alarm_names("latency")
                .enable(true)
                .rollback(true)
                .build()
                .unwrap(),
        )
        .build();
    let arn = update_with(&client, "web", &v1, &v2, 1, false, config).await;
    let d = deployment_until(
        &client,
        &arn,
        "alarm rollback",
        |_| {},
        |d| status(d) == "ROLLBACK_SUCCESSFUL",
    )
    .await;
    assert_eq!(d.alarms().unwrap().triggered_alarm_names(), ["latency"]);
    assert!(
        d.lifecycle_stage().is_none(),
        "rolling deployments have no stages"
    );
    wait_until(&client, "web", "back on v1", |s| completed_on(s, &v1)).await;
    sandbox.stop().await;
}
