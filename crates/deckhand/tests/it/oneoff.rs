//! `deckhand run` on the sandbox: one-off tasks beside a service or from a task definition,
//! their awslogs output relayed, their exit codes the verdict, SIGTERM stopping them.

use aws_sdk_ecs::types::{LogConfiguration, LogDriver, NetworkMode, TaskDefinitionStatus};
use aws_sdk_ecs::Client;
use deckhand_sandbox::Sandbox;

use crate::bed::{Bed, Running};
use crate::deploy::command::{build_local, run, service_td};
use crate::sandbox::{container, create_service, sandbox};

/// A sandbox with service `web` (desiredCount 0: no task of its own) on a revision whose `app`
/// container logs through awslogs; returns that revision.
async fn web_with_awslogs() -> (Sandbox, Client, String) {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let logs = LogConfiguration::builder()
        .log_driver(LogDriver::Awslogs)
        .options("awslogs-group", "/ecs/web")
        .options("awslogs-stream-prefix", "web")
        .build()
        .unwrap();
    let mut app = container(&bed, &["sleep", "600"]);
    app.log_configuration = Some(logs);
    let out = client
        .register_task_definition()
        .family("web")
        .container_definitions(app)
        .send()
        .await
        .unwrap();
    let td = out
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    create_service(&client, "web", &td, 0, false).await;
    (sandbox, client, td)
}

/// `deckhand run --cluster c` with quick polling, then `args`.
fn run_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["run", "--cluster", "c", "--poll", "200ms"];
    all.extend_from_slice(args);
    all
}

async fn active_revisions(client: &Client) -> Vec<String> {
    let out = client
        .list_task_definitions()
        .family_prefix("web")
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    out.task_definition_arns().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_beside_a_service_succeeds_or_fails_by_its_exit_codes() {
    let (sandbox, client, td) = web_with_awslogs().await;

    let ok = run(
        &sandbox,
        None,
        &run_args(&[
            "--service",
            "web",
            "--command",
            "sh -c 'echo hello $GREETING; echo token $API_TOKEN; exit 0'",
            "--env",
            "GREETING=from-env",
            "--env",
            "API_TOKEN=tok-4471-secret",
        ]),
    )
    .await;
    ok.expect_code(0);
    for want in [
        "web app | hello from-env",
        "web app | token ***",
        "app: setting GREETING, API_TOKEN",
        "succeeded: task ",
    ] {
        assert!(ok.all().contains(want), "{want:?}:\n{}", ok.all());
    }
    assert!(!ok.all().contains("tok-4471-secret"), "{}", ok.all());

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let failed = run(
        &sandbox,
        None,
        &run_args(&[
            "--service",
            "web",
            "--command",
            "sh -c 'echo about to fail; exit 7'",
            "--output",
            "json",
            "--report",
            report.to_str().unwrap(),
        ]),
    )
    .await;
    failed.expect_code(1);
    assert!(
        failed.stderr.contains("web app | about to fail") && failed.stderr.contains("app exited 7"),
        "{}",
        failed.stderr
    );
    let out = failed.json();
    assert_eq!(out["result"], "failed", "{out:#}");
    assert_eq!(out["reason"], "app exited 7", "{out:#}");
    assert_eq!(out["task_definition_arn"], td.as_str(), "{out:#}");
    assert_eq!(
        out["containers"],
        serde_json::json!([{"name": "app", "essential": true, "exit_code": 7, "reason": ""}]),
        "{out:#}"
    );
    assert_eq!(out["stopped_reason"], "Essential container in task exited");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(file["containers"][0]["exit_code"], 7, "{file:#}");

    // Nothing of the service changed, and no revision was registered.
    assert_eq!(service_td(&client).await, td);
    assert_eq!(active_revisions(&client).await, vec![td.clone()]);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_runs_in_a_one_off_revision_and_a_task_definition_runs_alone() {
    let bed = Bed::get();
    let (sandbox, client, td) = web_with_awslogs().await;
    let image = build_local(
        "oneoff",
        &[
            (
                "Dockerfile",
                &format!("FROM {}\nCOPY marker /marker\n", bed.base_image),
            ),
            ("marker", "built-for-this-run\n"),
        ],
    )
    .await;

    let ran = run(
        &sandbox,
        None,
        &run_args(&[
            "--service",
            "web",
            "--image",
            &image,
            "--command",
            "cat /marker",
            "--output",
            "json",
        ]),
    )
    .await;
    ran.expect_code(0);
    assert!(
        ran.stderr.contains("web app | built-for-this-run"),
        "{}",
        ran.stderr
    );
    let out = ran.json();
    assert_eq!(out["result"], "succeeded", "{out:#}");
    let revision = out["task_definition_arn"].as_str().unwrap().to_string();
    assert!(revision.ends_with("task-definition/web:2"), "{out:#}");
    assert!(
        ran.stderr.contains("registered web:2") && ran.stderr.contains("deregistered web:2"),
        "{}",
        ran.stderr
    );
    // The revision has the image and the one-off tag; it is gone from the ACTIVE ones, and
    // the service still runs its own.
    let described = client
        .describe_task_definition()
        .task_definition(&revision)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let one_off = described.task_definition().unwrap();
    assert_eq!(
        one_off.container_definitions()[0].image(),
        Some(image.as_str())
    );
    let tags: Vec<(Option<&str>, Option<&str>)> = described
        .tags()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert!(
        tags.contains(&(Some("deckhand:one-off"), Some("run"))),
        "{tags:?}"
    );
    assert_eq!(service_td(&client).await, td);
    assert_eq!(active_revisions(&client).await, vec![td.clone()]);

    // A task definition alone (bridge networking: no service needed), by family:revision.
    let alone = run(
        &sandbox,
        None,
        &run_args(&[
            "--task-definition",
            "web:1",
            "--command",
            "sh -c 'echo by revision'",
        ]),
    )
    .await;
    alone.expect_code(0);
    assert!(
        alone.stderr.contains("web app | by revision"),
        "{}",
        alone.stderr
    );

    // A task whose container cannot start is a failure naming why.
    let unpullable = run(
        &sandbox,
        None,
        &run_args(&["--service", "web", "--image", "deckhand-test/missing:nope"]),
    )
    .await;
    unpullable.expect_code(1);
    assert!(
        unpullable
            .stderr
            .contains("app did not run (CannotPullContainerError"),
        "{}",
        unpullable.stderr
    );
    assert!(
        unpullable
            .stdout
            .contains("app: no exit code (CannotPullContainerError"),
        "{}",
        unpullable.stdout
    );
    assert_eq!(active_revisions(&client).await, vec![td.clone()]);

    // What cannot run as asked is exit 2, before anything starts.
    let neither = run(&sandbox, None, &run_args(&["--command", "true"])).await;
    neither.expect_code(2);
    assert!(
        neither.stderr.contains("name what to run: --service"),
        "{}",
        neither.stderr
    );
    let awsvpc = client
        .register_task_definition()
        .family("netjob")
        .network_mode(NetworkMode::Awsvpc)
        .container_definitions(container(&bed, &["true"]))
        .send()
        .await
        .unwrap();
    assert!(awsvpc.task_definition().is_some());
    let no_network = run(&sandbox, None, &run_args(&["--task-definition", "netjob"])).await;
    no_network.expect_code(2);
    assert!(
        no_network.stderr.contains("awsvpc") && no_network.stderr.contains("--service"),
        "{}",
        no_network.stderr
    );
    let unknown = run(
        &sandbox,
        None,
        &run_args(&["--service", "web", "--env", "db:X=1"]),
    )
    .await;
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("no container \"db\""),
        "{}",
        unknown.stderr
    );
    let tasks = client
        .list_tasks()
        .cluster("c")
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tasks.task_arns().len(),
        3,
        "only the three runs started tasks"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_task_and_a_timeout_does_too() {
    let (sandbox, client, _) = web_with_awslogs().await;
    let endpoint = sandbox.endpoint();
    let interrupted = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let args = run_args(&[
            "--service",
            "web",
            "--command",
            "sh -c 'echo awake; sleep 600'",
            "--output",
            "json",
        ]);
        let mut running = Running::start(dir.path(), &args, &[("AWS_ENDPOINT_URL", &endpoint)]);
        running.wait_for_line(": RUNNING");
        // The task's output is relayed while it runs, not only once it has stopped.
        running.wait_for_line("| awake");
        running.signal("TERM");
        running.finish()
    })
    .await
    .unwrap();
    interrupted.expect_code(1);
    assert!(
        interrupted
            .stderr
            .contains("was interrupted; it was stopped"),
        "{}",
        interrupted.stderr
    );
    let out = interrupted.json();
    assert_eq!(out["result"], "failed", "{out:#}");
    let arn = out["task_arn"].as_str().unwrap();
    let described = client
        .describe_tasks()
        .cluster("c")
        .tasks(arn)
        .send()
        .await
        .unwrap();
    let task = &described.tasks()[0];
    assert_eq!(task.last_status(), Some("STOPPED"));
    assert_eq!(
        task.stopped_reason(),
        Some("deckhand: one-off task was interrupted")
    );
    assert_eq!(out["stop_code"], "UserInitiated", "{out:#}");

    let slow = run(
        &sandbox,
        None,
        &run_args(&[
            "--service",
            "web",
            "--command",
            "sleep 600",
            "--timeout",
            "2s",
        ]),
    )
    .await;
    slow.expect_code(1);
    assert!(
        slow.stderr
            .contains("did not finish within 2s; it was stopped"),
        "{}",
        slow.stderr
    );
    let running = client
        .list_tasks()
        .cluster("c")
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .unwrap();
    assert!(running.task_arns().is_empty(), "{running:?}");
    sandbox.stop().await;
}
