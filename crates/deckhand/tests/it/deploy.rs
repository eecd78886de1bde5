//! Deploy building blocks against real services: registering a rendered task definition keeps
//! every field, on the sandbox and on moto (which also takes the service update).

use deckhand::deploy::taskdef;
use serde_json::json;

use crate::bed::Bed;

/// DescribeTaskDefinition output with read-only fields, nulls, tags and a field no SDK models.
fn described(family: &str, image: &str) -> String {
    json!({
        "taskDefinition": {
            "taskDefinitionArn": format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:7"),
            "family": family,
            "revision": 7,
            "status": "ACTIVE",
            "registeredAt": 1_700_000_000.5,
            "requiresAttributes": [],
            "compatibilities": ["EC2"],
            "ephemeralStorage": null,
            "someFutureField": {"nested": [1, {"x": true}]},
            "containerDefinitions": [
                {"name": "web", "image": image, "essential": true, "memory": 32, "command": ["sleep", "600"]},
                {"name": "sidecar", "image": "busybox:1", "essential": false, "memory": 16}
            ]
        },
        "tags": [{"key": "team", "value": "core"}]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rendered_task_definition_is_registered_field_for_field() {
    let bed = Bed::get();
    let (sandbox, _) = crate::sandbox::sandbox(8192).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let mut td = taskdef::parse(&described("web", "127.0.0.1:1/web:old")).unwrap();
    let chosen = td.select(&[], "127.0.0.1:1/web").unwrap();
    td = td.with_image(&chosen, &bed.base_image);
    td.tag("deckhand:sha", "0123456789abcdef0123456789abcdef01234567");
    let registered = deckhand::aws::ecs::register_task_definition(
        &deckhand::aws::ecs::Ecs::new(&config),
        &td.request(),
    )
    .await
    .unwrap();
    assert_eq!(registered.revision, 1);
    assert!(
        registered.arn.ends_with(":task-definition/web:1"),
        "{}",
        registered.arn
    );

    let stored = sandbox.task_definition(&registered.arn).await.unwrap();
    assert_eq!(
        stored.body["someFutureField"],
        json!({"nested": [1, {"x": true}]})
    );
    assert_eq!(
        stored.body["containerDefinitions"][0]["image"],
        bed.base_image.as_str()
    );
    assert_eq!(stored.body["containerDefinitions"][1]["image"], "busybox:1");
    assert!(stored.body.get("ephemeralStorage").is_none() && stored.body.get("revision").is_none());
    let tags = stored.tags.to_string();
    assert!(
        tags.contains("team") && tags.contains("deckhand:sha"),
        "{tags}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_accepts_a_task_definition_from_describe_output() {
    Bed::get();
    // AWS_ENDPOINT_URL from the bed points at moto.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let family = format!("it-{}", crate::bed::unique("td")).replace('_', "-");
    let td = taskdef::parse(&described(&family, "127.0.0.1:1/web:v1")).unwrap();
    assert_eq!(td.family(), family);
    let first = deckhand::aws::ecs::register_task_definition(
        &deckhand::aws::ecs::Ecs::new(&config),
        &td.request(),
    )
    .await
    .unwrap();
    let second = deckhand::aws::ecs::register_task_definition(
        &deckhand::aws::ecs::Ecs::new(&config),
        &td.request(),
    )
    .await
    .unwrap();
    assert_eq!((first.revision, second.revision), (1, 2));
    let ecs = aws_sdk_ecs::Client::new(&config);
    let out = ecs
        .describe_task_definition()
        .task_definition(&second.arn)
        .send()
        .await
        .unwrap();
    let containers = out.task_definition().unwrap().container_definitions();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image(), Some("127.0.0.1:1/web:v1"));

    // The service update deckhand makes, and how it reads the result back.
    let cluster = format!("{family}-cluster");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(&cluster)
        .service_name("web")
        .task_definition(&first.arn)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let deployment = deckhand::aws::ecs::update_service(&ecs, &cluster, "web", &second.arn)
        .await
        .unwrap();
    let view = deckhand::aws::ecs::describe_service(&ecs, &cluster, "web")
        .await
        .unwrap();
    assert_eq!(view.task_definition, second.arn);
    let primary = view
        .deployments
        .iter()
        .find(|d| d.status == deckhand::aws::types::DeploymentStatus::Primary)
        .unwrap();
    // moto keeps one deployment and does not move its task definition: only its id is checked.
    assert_eq!(primary.id, deployment);
}

pub mod command {
    //! `deckhand deploy` end to end on the sandbox, with real containers.

    use aws_sdk_ecs::Client;
    use deckhand_sandbox::Sandbox;

    use crate::bed::{Bed, Run};
    use crate::sandbox::{completed_on, container, create_service, register, sandbox, wait_until};

    /// A sandbox with service `web` stable on a good revision; returns that revision's ARN.
    pub async fn stable_service(breaker: bool) -> (Sandbox, Client, String) {
        let bed = Bed::get();
        let (sandbox, client) = sandbox(8192).await;
        let good = register(&client, "web", container(&bed, &["sleep", "600"])).await;
        create_service(&client, "web", &good, 1, breaker).await;
        wait_until(&client, "web", "initial rollout", |s| {
            completed_on(s, &good)
        })
        .await;
        (sandbox, client, good)
    }

    /// Runs `deckhand deploy` against the sandbox (off the runtime's workers).
    pub async fn deploy(sandbox: &Sandbox, image: &str, extra: &[&str]) -> Run {
        let mut more = vec!["--output", "json"];
        more.extend_from_slice(extra);
        run(sandbox, None, &deploy_args(&["--image", image], &more)).await
    }

    /// `deckhand deploy` to service `web`'s container `app` in cluster `c`, from `source`
    /// (`--image X`, or `--repository R …`), with quick polling and a minute's patience unless
    /// `extra` says otherwise, then `extra`.
    pub fn deploy_args<'a>(source: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "deploy",
            "--cluster",
            "c",
            "--service",
            "web",
            "--container",
            "app",
        ];
        args.extend_from_slice(source);
        for (flag, value) in [("--poll", "200ms"), ("--timeout", "60s")] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend_from_slice(extra);
        args
    }

    /// Runs `deckhand args…` against the sandbox in `cwd` (a temporary directory if none), off
    /// the runtime's workers: the sandbox answers on them.
    pub async fn run(sandbox: &Sandbox, cwd: Option<&std::path::Path>, args: &[&str]) -> Run {
        run_with_env(sandbox, cwd, args, &[]).await
    }

    /// [`run`] with more environment variables.
    pub async fn run_with_env(
        sandbox: &Sandbox,
        cwd: Option<&std::path::Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("AWS_ENDPOINT_URL".into(), sandbox.endpoint()));
        let cwd = cwd.map(std::path::Path::to_path_buf);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let temp = tempfile::tempdir().unwrap();
            let dir = cwd.unwrap_or_else(|| temp.path().to_path_buf());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            crate::bed::deckhand(&dir, &args, &env)
        })
        .await
        .unwrap()
    }

    /// A local image tag that runs like the base image (a new, good image).
    pub async fn good_image(bed: &Bed) -> String {
        let docker = deckhand::image::engine::connect().await.unwrap();
        let tag = format!("deckhand-test/good:{}", crate::bed::unique("v"));
        deckhand::image::build::tag(&docker, &bed.base_image, &tag)
            .await
            .unwrap();
        tag
    }

    /// A local image with no shell or `sleep`: its tasks cannot start the container's command.
    pub async fn broken_image() -> String {
        build_local(
            "broken",
            &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", "x")],
        )
        .await
    }

    /// Builds `files` (a Dockerfile among them) into a new local image `deckhand-test/<name>:…`.
    pub async fn build_local(name: &str, files: &[(&str, &str)]) -> String {
        let docker = deckhand::image::engine::connect().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            std::fs::write(dir.path().join(path), text).unwrap();
        }
        let tag = format!("deckhand-test/{name}:{}", crate::bed::unique("v"));
        let context = deckhand::image::context::Context::prepare(dir.path(), None).unwrap();
        let spec = deckhand::image::build::BuildSpec {
            tags: vec![tag.clone()],
            ..Default::default()
        };
        deckhand::image::build::build(
            &deckhand::report::Reporter::plain(),
            &docker,
            context,
            &spec,
        )
        .await
        .unwrap();
        tag
    }

    /// The task definition service `web` runs.
    pub async fn service_td(client: &Client) -> String {
        service_td_of(client, "web").await
    }

    /// The task definition `service` (in cluster `c`) runs.
    pub async fn service_td_of(client: &Client, service: &str) -> String {
        let out = client
            .describe_services()
            .cluster("c")
            .services(service)
            .send()
            .await
            .unwrap();
        out.services()[0].task_definition().unwrap().to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_good_image_deploys_and_exits_0() {
        let bed = Bed::get();
        let (sandbox, client, good) = stable_service(false).await;
        let image = good_image(&bed).await;
        let run = deploy(&sandbox, &image, &[]).await;
        run.expect_code(0);
        let out = run.json();
        assert_eq!(out["result"], "deployed");
        let td = out["task_definition_arn"].as_str().unwrap().to_string();
        assert_ne!(td, good);
        assert_eq!(service_td(&client).await, td);
        assert!(
            run.stderr.contains("has reached a steady state"),
            "events are printed:\n{}",
            run.stderr
        );
        // A rolling update is done when ECS shows it COMPLETED (after its alarms' bake, if
        // any): that is read from DescribeServices alone, with no service deployment to look up.
        assert!(!run.stderr.contains("service deployment"), "{}", run.stderr);
        assert_eq!(
            sandbox.calls().get("ECS.ListServiceDeployments"),
            None,
            "{:?}",
            sandbox.calls()
        );
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deploy_is_verified_where_ecs_counts_the_new_tasks_late() {
        let bed = Bed::get();
        let (sandbox, _client, _good) = stable_service(false).await;
        crate::sandbox::control(&sandbox, "mode", r#"{"late_running_count": true}"#);
        let image = good_image(&bed).await;
        let run = deploy(&sandbox, &image, &[]).await;
        run.expect_code(0);
        assert_eq!(run.json()["result"], "deployed");
        assert!(
            run.stderr
                .contains("waiting: 0 running of 1 desired (IN_PROGRESS)")
                && !run.stderr.contains("1 running of 1 desired (IN_PROGRESS)"),
            "the new task is never counted running while the rollout is in progress:\n{}",
            run.stderr
        );
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_image_is_rolled_back_and_exits_3() {
        let (sandbox, client, good) = stable_service(false).await;
        let image = broken_image().await;
        let run = deploy(&sandbox, &image, &[]).await;
        run.expect_code(3);
        let out = run.json();
        assert_eq!(out["result"], "rolled-back");
        assert_eq!(out["rolled_back"], true);
        assert_eq!(
            service_td(&client).await,
            good,
            "the service runs the old revision again"
        );
        crate::faults::expect_service(&out, "web", "rolled-back", Some(&good), &good);
        assert!(
            run.stderr.contains("CannotStartContainerError"),
            "the reason is shown:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("rolled back"), "{}", run.stderr);
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rollback_by_ecs_is_reported_as_3_never_0() {
        let (sandbox, client, good) = stable_service(true).await;
        let image = broken_image().await;
        // deckhand's own limit above ECS's breaker (3 failures for 1 task): ECS rolls back first.
        let run = deploy(&sandbox, &image, &["--max-failed-tasks", "50"]).await;
        run.expect_code(3);
        assert!(run.stderr.contains("circuit breaker"), "{}", run.stderr);
        assert_eq!(service_td(&client).await, good);
        let out = run.json();
        assert_eq!(out["result"], "rolled-back");
        crate::faults::expect_service(&out, "web", "rolled-back", Some(&good), &good);
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_rollback_never_a_failure_exits_4_and_changes_nothing_more() {
        let (sandbox, client, good) = stable_service(false).await;
        let image = broken_image().await;
        let run = deploy(&sandbox, &image, &["--rollback", "never"]).await;
        run.expect_code(4);
        assert_eq!(run.json()["result"], "failed");
        assert_ne!(
            service_td(&client).await,
            good,
            "left on the failed revision, as asked"
        );
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dry_run_prints_the_change_and_registers_nothing() {
        let bed = Bed::get();
        let (sandbox, client, good) = stable_service(false).await;
        let image = good_image(&bed).await;
        let run = deploy(&sandbox, &image, &["--dry-run"]).await;
        run.expect_code(0);
        assert!(
            run.stderr
                .contains(&format!("+       \"image\": \"{image}\"")),
            "{}",
            run.stderr
        );
        let listed = client.list_task_definitions().send().await.unwrap();
        assert_eq!(
            listed.task_definition_arns().len(),
            1,
            "no revision was registered"
        );
        assert_eq!(service_td(&client).await, good);
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_service_fails_before_changing_anything() {
        let (sandbox, _client, _) = stable_service(false).await;
        let run = run(
            &sandbox,
            None,
            &[
                "deploy",
                "--cluster",
                "c",
                "--service",
                "nope",
                "--image",
                "x/y:1",
            ],
        )
        .await;
        run.expect_code(1);
        assert!(
            run.stderr
                .contains("service \"nope\" does not exist in cluster \"c\""),
            "{}",
            run.stderr
        );
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_is_exit_2_before_any_call() {
        let (sandbox, client, good) = stable_service(false).await;
        crate::sandbox::control(&sandbox, "calls", "");
        for (extra, says) in [
            (
                &["--image", "garbage!!@@ not an image"][..],
                "is not an image reference",
            ),
            (&["--image", ""][..], "is not an image reference"),
            (&["--image", "x/y:1", "--timeout", "0"][..], "is too short"),
            (
                &["--image", "x/y:1", "--max-failed-tasks", "0"][..],
                "--max-failed-tasks 0",
            ),
        ] {
            let mut args = vec!["deploy", "--cluster", "c", "--service", "web"];
            args.extend_from_slice(extra);
            let run = run(&sandbox, None, &args).await;
            run.expect_code(2);
            assert!(run.stderr.contains(says), "{extra:?}: {}", run.stderr);
        }
        assert!(
            sandbox.calls().is_empty(),
            "nothing was asked of ECS: {:?}",
            sandbox.calls()
        );
        assert_eq!(service_td_of(&client, "web").await, good);
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dry_run_with_a_file_shows_the_change_from_the_live_revision() {
        let bed = Bed::get();
        let (sandbox, client, good) = stable_service(false).await;
        let image = good_image(&bed).await;
        let live = sandbox.task_definition(&good).await.unwrap();
        let mut file = live.body.clone();
        file["family"] = serde_json::json!("web");
        file["containerDefinitions"][0]["memory"] = serde_json::json!(99);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("td.json");
        std::fs::write(&path, file.to_string()).unwrap();
        let run = deploy(
            &sandbox,
            &image,
            &["--task-definition", path.to_str().unwrap(), "--dry-run"],
        )
        .await;
        run.expect_code(0);
        let line = |sign: char, text: &str| {
            run.stderr
                .lines()
                .any(|l| l.starts_with(sign) && l.contains(text))
        };
        assert!(
            line('-', "\"memory\": 32"),
            "the live value:\n{}",
            run.stderr
        );
        assert!(
            line('+', "\"memory\": 99"),
            "the file's value:\n{}",
            run.stderr
        );
        assert!(line('+', &image), "the new image:\n{}", run.stderr);
        assert_eq!(service_td_of(&client, "web").await, good, "a dry run");
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_misspelt_task_definition_field_is_exit_2_unless_allowed() {
        let bed = Bed::get();
        let (sandbox, client, good) = stable_service(false).await;
        let image = good_image(&bed).await;
        let mut file = sandbox.task_definition(&good).await.unwrap().body;
        file["family"] = serde_json::json!("web");
        file["containerDefinitions"][0]["healthcheck"] =
            serde_json::json!({"command": ["CMD-SHELL", "true"], "interval": 5});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("td.json");
        std::fs::write(&path, file.to_string()).unwrap();
        let path = path.to_str().unwrap();

        crate::sandbox::control(&sandbox, "calls", "");
        let refused = deploy(&sandbox, &image, &["--task-definition", path]).await;
        refused.expect_code(2);
        for says in [
            "unknown task-definition field $.containerDefinitions[0].healthcheck",
            "(did you mean `healthCheck`?)",
            "--allow-unknown-fields",
        ] {
            assert!(refused.stderr.contains(says), "{says}:\n{}", refused.stderr);
        }
        let calls = sandbox.calls();
        for operation in ["ECS.RegisterTaskDefinition", "ECS.UpdateService"] {
            assert!(!calls.contains_key(operation), "{operation}: {calls:?}");
        }
        assert!(calls.is_empty(), "checked before any call: {calls:?}");
        assert_eq!(service_td(&client).await, good);

        let allowed = deploy(
            &sandbox,
            &image,
            &["--task-definition", path, "--allow-unknown-fields"],
        )
        .await;
        allowed.expect_code(0);
        assert!(
            allowed.stderr.contains(
                "unknown task-definition field $.containerDefinitions[0].healthcheck \
                 (did you mean `healthCheck`?), sent as written"
            ),
            "a warning:\n{}",
            allowed.stderr
        );
        let out = allowed.json();
        assert_eq!(out["result"], "deployed");
        let arn = out["task_definition_arn"].as_str().unwrap();
        assert_eq!(service_td(&client).await, arn);
        let registered = sandbox.task_definition(arn).await.unwrap();
        assert_eq!(
            registered.body["containerDefinitions"][0]["healthcheck"]["interval"], 5,
            "registered as written"
        );
        sandbox.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_with_no_tasks_is_unverified_not_deployed() {
        let bed = Bed::get();
        let (sandbox, client) = crate::sandbox::sandbox(8192).await;
        let old = register(&client, "web", container(&bed, &["sleep", "600"])).await;
        create_service(&client, "web", &old, 0, false).await;
        let image = good_image(&bed).await;
        // In GitHub mode, for the annotation and the step's outputs.
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("output");
        let summary = dir.path().join("summary.md");
        let env = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", output.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ];
        let run = run_with_env(
            &sandbox,
            None,
            &deploy_args(&["--image", &image], &["--output", "json"]),
            &env,
        )
        .await;
        run.expect_code(0);
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("::warning") && l.contains("desiredCount is 0")),
            "an annotation:\n{}",
            run.stderr
        );
        let outputs = std::fs::read_to_string(&output).unwrap();
        assert!(outputs.contains("unverified"), "{outputs}");
        let out = run.json();
        assert_eq!(out["result"], "unverified", "{}", run.stderr);
        let new = service_td(&client).await;
        assert!(new.ends_with("web:2"), "on the new revision: {new}");
        crate::faults::expect_service(&out, "web", "unverified", Some(&new), &old);
        assert!(
            run.stderr.contains("desiredCount is 0") && run.stderr.contains("not verified"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("==> unverified: web is on web:2"),
            "{}",
            run.stderr
        );
        sandbox.stop().await;
    }
}
