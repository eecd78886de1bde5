//! `deckhand deploy` beyond the basic verdicts, on the sandbox with real containers: building
//! first, pruning revisions, signals, throttling, unplaceable tasks, another pipeline at work.

use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_sdk_ecs::Client;
use deckhand_sandbox::Sandbox;
use serde_json::json;

use crate::bed::{Bed, Repo, Running};
use crate::deploy::command::{deploy, deploy_args, good_image, run, service_td, stable_service};
use crate::sandbox::{completed_on, container, register, wait_until};

/// Register input for family `web` whose `app` container never passes its health check, and
/// whose start period keeps the deployment in progress for half a minute (at the sandbox's
/// 0.1 time scale).
pub fn slow_revision(bed: &Bed) -> serde_json::Value {
    json!({
        "family": "web",
        "containerDefinitions": [{
            "name": "app",
            "image": bed.base_image,
            "essential": true,
            "memory": 32,
            "command": ["sleep", "600"],
            "healthCheck": {"command": ["CMD-SHELL", "exit 1"], "interval": 5, "timeout": 2,
                            "retries": 3, "startPeriod": 300}
        }]
    })
}

pub fn write_json(dir: &tempfile::TempDir, name: &str, value: &serde_json::Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

async fn active_revisions(client: &Client) -> Vec<String> {
    let out = client
        .list_task_definitions()
        .family_prefix("web")
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    out.task_definition_arns()
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// Starts `deckhand args…` against the sandbox and reads its log until `line` (off the
/// runtime's workers).
pub async fn start_until(sandbox: &Sandbox, args: &[&str], line: &str) -> Running {
    let endpoint = sandbox.endpoint();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let line = line.to_string();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut running = Running::start(dir.path(), &args, &[("AWS_ENDPOINT_URL", &endpoint)]);
        running.wait_for_line(&line);
        running
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_image_deploy_builds_pushes_and_pins_the_digest() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let repo = Repo::new(&[(
        "Dockerfile",
        &format!("FROM {}\nCMD [\"sleep\", \"600\"]\n", bed.base_image),
    )]);
    let build = deploy_args(
        &["--repository", "team/web", "--create-repository"],
        &["--output", "json"],
    );

    // A dry run builds nothing, pushes nothing, creates no repository and registers nothing.
    let mut dry = build.clone();
    dry.push("--dry-run");
    let run_dry = run(&sandbox, Some(repo.path()), &dry).await;
    run_dry.expect_code(0);
    let uri = format!("{}/team/web", sandbox.addr);
    assert_eq!(run_dry.json()["image"], format!("{uri}:{}", repo.sha));
    assert!(
        run_dry.stderr.contains("would be built and pushed"),
        "{}",
        run_dry.stderr
    );
    assert_eq!(active_revisions(&client).await.len(), 1);
    let ecr = aws_sdk_ecr::Client::new(&sandbox_config(&sandbox).await);
    assert!(ecr
        .describe_repositories()
        .repository_names("team/web")
        .send()
        .await
        .is_err());

    let deployed = run(&sandbox, Some(repo.path()), &build).await;
    deployed.expect_code(0);
    let out = deployed.json();
    assert_eq!(out["result"], "deployed");
    assert_eq!(out["sha"], repo.sha.as_str());
    let digest = out["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{out}");
    assert_eq!(out["image"], format!("{uri}@{digest}"));
    assert!(
        deployed.stderr.contains(&format!("{uri}:{}", repo.sha)),
        "the SHA tag is in the log:\n{}",
        deployed.stderr
    );
    let td = service_td(&client).await;
    assert_ne!(td, good);
    let described = client
        .describe_task_definition()
        .task_definition(&td)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let app = &described.task_definition().unwrap().container_definitions()[0];
    assert_eq!(app.image(), out["image"].as_str());
    assert!(described
        .tags()
        .iter()
        .any(|t| t.key() == Some("deckhand:sha") && t.value() == Some(repo.sha.as_str())));

    // status names the image and the commit.
    let status = run(
        &sandbox,
        None,
        &[
            "status",
            "--cluster",
            "c",
            "--service",
            "web",
            "--output",
            "json",
        ],
    )
    .await;
    status.expect_code(0);
    let s = status.json();
    assert_eq!(s["task_definition_arn"], td.as_str());
    assert_eq!(s["sha"], repo.sha.as_str());
    assert_eq!(s["containers"][0]["image"], out["image"]);
    assert_eq!(s["deploying"], false);
    sandbox.stop().await;
}

async fn sandbox_config(sandbox: &Sandbox) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_revisions_deregisters_old_ones_but_never_the_rollback_target() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    for _ in 0..3 {
        register(&client, "web", container(&bed, &["sleep", "600"])).await;
    }
    let image = good_image(&bed).await;
    let run = deploy(&sandbox, &image, &["--keep-revisions", "2"]).await;
    run.expect_code(0);
    assert!(good.ends_with("web:1"), "{good}");
    // web:5 is live, web:4 is the other one kept, web:1 is the rollback target.
    assert_eq!(
        active_revisions(&client).await,
        vec!["web:1", "web:4", "web:5"]
    );
    assert!(
        run.stderr.contains("deregistered web:2") && run.stderr.contains("deregistered web:3"),
        "{}",
        run.stderr
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_watch_rolls_back_and_exits_3() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_json(&dir, "slow.json", &slow_revision(&bed));
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &["--task-definition", &file, "--output", "json"],
        ),
        "deployment ecs-svc/",
    )
    .await;
    // Like a cancelled CI job: SIGTERM while the new revision is unverified.
    running.signal("TERM");
    let run = tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap();
    run.expect_code(3);
    let out = run.json();
    assert_eq!(out["result"], "rolled-back");
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    assert_eq!(service_td(&client).await, good);
    crate::faults::expect_service(&out, "web", "rolled-back", Some(&good), &good);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_during_a_deploy_does_not_change_the_verdict() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    crate::sandbox::control(&sandbox, "faults", r#"{"throttle_rate": 0.2}"#);
    let run = deploy(&sandbox, &image, &[]).await;
    crate::sandbox::control(&sandbox, "faults", "{}");
    run.expect_code(0);
    let td = run.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(td, good);
    assert_eq!(service_td(&client).await, td);
    sandbox.stop().await;
}

/// ECS's "unable to place" events end the deploy long before `--timeout` (the rollback gets
/// the same patience, which a loaded CI machine needs to start the old revision again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplaceable_revision_is_rolled_back_and_exits_3() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    let mut huge = slow_revision(&bed);
    huge["containerDefinitions"][0]["memory"] = json!(1_000_000);
    huge["containerDefinitions"][0]
        .as_object_mut()
        .unwrap()
        .remove("healthCheck");
    let file = write_json(&dir, "huge.json", &huge);
    let run = deploy(
        &sandbox,
        &image,
        &["--task-definition", &file, "--timeout", "60s"],
    )
    .await;
    run.expect_code(3);
    assert!(
        run.stderr.contains("could not place the new tasks"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("unable to place a task"),
        "{}",
        run.stderr
    );
    let out = run.json();
    assert_eq!(out["result"], "rolled-back");
    assert_eq!(service_td(&client).await, good);
    crate::faults::expect_service(&out, "web", "rolled-back", Some(&good), &good);
    sandbox.stop().await;
}

/// Someone else's deployment of a revision that never turns healthy, started on service
/// `web`: (its revision, its deployment id).
async fn their_slow_deployment(sandbox: &Sandbox, client: &Client, bed: &Bed) -> (String, String) {
    let theirs = deckhand::aws::ecs::register_task_definition(
        &deckhand::aws::ecs::Ecs::new(&sandbox_config(sandbox).await),
        &slow_revision(bed),
    )
    .await
    .unwrap()
    .arn;
    let started = client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&theirs)
        .send()
        .await
        .unwrap();
    let id = started.service().unwrap().deployments()[0]
        .id()
        .unwrap()
        .to_string();
    (theirs, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_pipelines_deployment_is_waited_for_or_refused() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    // Someone else's deployment, in progress for a while.
    let (theirs, _) = their_slow_deployment(&sandbox, &client, &bed).await;
    let before = active_revisions(&client).await.len();

    // Not waiting: exit 1, nothing registered, their deployment untouched.
    let refused = deploy(&sandbox, &image, &["--wait-for-others", "0"]).await;
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("another deployment is in progress"),
        "{}",
        refused.stderr
    );
    assert_eq!(active_revisions(&client).await.len(), before);
    assert_eq!(service_td(&client).await, theirs);
    // A dry run does not wait: it says a real run would.
    let dry = deploy(&sandbox, &image, &["--dry-run"]).await;
    dry.expect_code(0);
    assert!(
        dry.stderr.contains("A real run would wait"),
        "{}",
        dry.stderr
    );

    // Waiting: deckhand holds until their deployment is over (here: they roll back to the good
    // revision), then deploys on top of the settled service.
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &["--wait-for-others", "60s", "--output", "json"],
        ),
        "waiting up to",
    )
    .await;
    client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&good)
        .send()
        .await
        .unwrap();
    let run = tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap();
    run.expect_code(0);
    assert!(
        run.stderr
            .contains(&format!("running {good} (the rollback target)")),
        "{}",
        run.stderr
    );
    let out = run.json();
    let td = out["task_definition_arn"].as_str().unwrap().to_string();
    wait_until(&client, "web", "deckhand's revision settled", |s| {
        completed_on(s, &td)
    })
    .await;
    crate::faults::expect_service(&out, "web", "deployed", Some(&td), &good);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_deploys_over_a_deployment_that_never_finishes() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    // A bad revision with no breaker: its deployment would stay in progress for minutes.
    let (_, replaced) = their_slow_deployment(&sandbox, &client, &bed).await;

    let run = deploy(&sandbox, &image, &["--take-over", "--wait-for-others", "0"]).await;
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("--take-over: web's deployment in progress is replaced")
            && run.stderr.contains(&replaced),
        "says whose deployment is replaced:\n{}",
        run.stderr
    );
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    assert_eq!(
        out["services"][0]["rollback_target"],
        good.as_str(),
        "the target is the revision that still ran, not the one that never finished"
    );
    assert_eq!(out["services"][0]["state"], "deployed");
    let ours = out["task_definition_arn"].as_str().unwrap().to_string();
    assert_eq!(service_td(&client).await, ours);
    sandbox.stop().await;
}
