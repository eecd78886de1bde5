//! Several services in one deploy, on the sandbox with real containers: one image, one revision
//! per service's family, one combined watch (DescribeServices in batches), and all or nothing:
//! when one fails, every changed service goes back to its own previous revision.

use aws_sdk_ecs::Client;
use deckhand_sandbox::Sandbox;

use crate::bed::{Bed, Run};
use crate::deploy::command::{build_local, deploy_args, run, run_with_env, service_td_of};
use crate::sandbox::{completed_on, control, create_service, register, sandbox, wait_until};

/// Services `web` (runs `tail -f /dev/null`) and `worker` (runs `sleep 600`) from the base image,
/// each stable on its own family's first revision.
async fn web_and_worker() -> (Sandbox, Client, String, String) {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let web = register(
        &client,
        "web",
        crate::sandbox::container(&bed, &["tail", "-f", "/dev/null"]),
    )
    .await;
    let worker = register(
        &client,
        "worker",
        crate::sandbox::container(&bed, &["sleep", "600"]),
    )
    .await;
    create_service(&client, "web", &web, 1, false).await;
    create_service(&client, "worker", &worker, 1, false).await;
    for (service, td) in [("web", &web), ("worker", &worker)] {
        wait_until(&client, service, "initial rollout", |s| completed_on(s, td)).await;
    }
    (sandbox, client, web, worker)
}

/// A new image like the base one, without `sleep`: web still runs, worker cannot start.
pub async fn image_without_sleep(bed: &Bed) -> String {
    let dockerfile = format!("FROM {}\nRUN rm /bin/sleep\n", bed.base_image);
    build_local("nosleep", &[("Dockerfile", &dockerfile)]).await
}

/// Family `migrate`: the app container from the base image, logging through awslogs.
async fn register_migrate(client: &Client, bed: &Bed) {
    register(client, "migrate", migrate_app(bed)).await;
}

/// The `migrate` family's app container, logging through awslogs.
fn migrate_app(bed: &Bed) -> aws_sdk_ecs::types::ContainerDefinition {
    let logs = aws_sdk_ecs::types::LogConfiguration::builder()
        .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
        .options("awslogs-group", "/ecs/app")
        .options("awslogs-stream-prefix", "migrate")
        .build()
        .unwrap();
    let mut c = crate::sandbox::container(bed, &["true"]);
    c.log_configuration = Some(logs);
    c
}

/// A revision of `migrate` with the app (its `DB_PASSWORD` a secret deckhand masks) and an
/// essential `proxy` logging to json-file.
async fn register_migrate_with_proxy(client: &Client, bed: &Bed) -> String {
    let logs = aws_sdk_ecs::types::LogConfiguration::builder()
        .log_driver(aws_sdk_ecs::types::LogDriver::JsonFile)
        .build()
        .unwrap();
    let mut proxy = crate::sandbox::container(bed, &["sleep", "600"]);
    proxy.name = Some("proxy".into());
    proxy.log_configuration = Some(logs);
    let mut app = migrate_app(bed);
    app.environment = Some(vec![aws_sdk_ecs::types::KeyValuePair::builder()
        .name("DB_PASSWORD")
        .value("migrate-pass-7731")
        .build()]);
    let out = client
        .register_task_definition()
        .family("migrate")
        .container_definitions(app)
        .container_definitions(proxy)
        .send()
        .await
        .unwrap();
    out.task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string()
}

/// The summary's fenced log lines, sorted (Docker reads stdout and stderr apart).
fn fenced_lines(md: &str) -> Vec<String> {
    let fenced = md
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```\n").next())
        .unwrap_or_else(|| panic!("a fenced block of log lines:\n{md}"));
    let mut lines: Vec<String> = fenced.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

async fn deploy_both(sandbox: &Sandbox, image: &str) -> Run {
    let args = deploy_args(
        &["--service", "worker", "--image", image],
        &["--output", "json"],
    );
    run(sandbox, None, &args).await
}

fn calls(sandbox: &Sandbox) -> std::collections::BTreeMap<String, u64> {
    sandbox.calls()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_and_worker_roll_out_together_from_one_image() {
    let bed = Bed::get();
    let (sandbox, client, web, worker) = web_and_worker().await;
    let image = crate::deploy::command::good_image(&bed).await;
    control(&sandbox, "calls", "");
    let deployed = deploy_both(&sandbox, &image).await;
    deployed.expect_code(0);
    let out = deployed.json();
    assert_eq!(out["result"], "deployed");
    let services = out["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    for (s, family, before) in [
        (&services[0], "web", &web),
        (&services[1], "worker", &worker),
    ] {
        assert_eq!(s["service"], family);
        assert_eq!(s["rollback_target"], before.as_str());
        let td = s["task_definition_arn"].as_str().unwrap();
        assert!(
            td.ends_with(&format!("task-definition/{family}:2")),
            "one revision per family: {td}"
        );
        assert_eq!(service_td_of(&client, family).await, td);
    }
    // One DescribeServices call covers both services while both are rolling out.
    let counted = calls(&sandbox);
    let (describe, named) = (
        counted["ECS.DescribeServices"],
        counted["ECS.DescribeServices.services"],
    );
    assert!(
        named > describe,
        "{describe} DescribeServices calls named {named} services: not batched ({counted:?})"
    );
    sandbox.stop().await;
}

/// All or nothing across strategies: `web` deploys blue/green with a long bake, `worker`
/// rolling; when the worker fails, web's service deployment (still baking) is rolled back by
/// ECS through StopServiceDeployment, and both are confirmed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mixed_strategies_a_failing_worker_takes_a_baking_blue_green_web_back_too() {
    let bed = Bed::get();
    let (sandbox, client, web, worker) = web_and_worker().await;
    client
        .update_service()
        .cluster("c")
        .service("web")
        .deployment_configuration(
            aws_sdk_ecs::types::DeploymentConfiguration::builder()
                .strategy(aws_sdk_ecs::types::DeploymentStrategy::BlueGreen)
                .bake_time_in_minutes(600)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let image = image_without_sleep(&bed).await;
    let failed = deploy_both(&sandbox, &image).await;
    failed.expect_code(3);
    let out = failed.json();
    assert_eq!(out["result"], "rolled-back");
    assert!(
        failed
            .stderr
            .contains("web: StopServiceDeployment (ROLLBACK)"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("rolled back: web is stable on")
            && failed.stderr.contains("rolled back: worker is stable on"),
        "{}",
        failed.stderr
    );
    assert_eq!(service_td_of(&client, "web").await, web, "web is back too");
    assert_eq!(service_td_of(&client, "worker").await, worker);
    // web's new revision ran healthy but went back with the fleet: it was never verified, so
    // a rollback of web does not go forward to it; with nothing verified before web:1 it
    // refuses and changes nothing.
    let back = run(&sandbox, None, &crate::rollback::rollback(&[])).await;
    back.expect_code(1);
    assert!(
        back.stderr.contains("no verified revision"),
        "{}",
        back.stderr
    );
    assert_eq!(service_td_of(&client, "web").await, web);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_worker_fails_both_go_back_and_exit_3() {
    let bed = Bed::get();
    let (sandbox, client, web, worker) = web_and_worker().await;
    let image = image_without_sleep(&bed).await;
    let failed = deploy_both(&sandbox, &image).await;
    failed.expect_code(3);
    let out = failed.json();
    assert_eq!(out["result"], "rolled-back");
    assert!(
        out["reason"].as_str().unwrap().starts_with("worker: "),
        "{out}"
    );
    assert!(
        failed.stderr.contains("rolling back web"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("rolling back worker"),
        "{}",
        failed.stderr
    );
    assert_eq!(service_td_of(&client, "web").await, web, "web is back too");
    assert_eq!(service_td_of(&client, "worker").await, worker);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckhand_toml_alone_drives_a_full_deploy_and_a_typo_is_named() {
    let bed = Bed::get();
    let (sandbox, client, _web, _worker) = web_and_worker().await;
    register_migrate(&client, &bed).await;
    let settings = r#"
cluster = "c"
repository = "team/app"
poll = "200ms"
timeout = "60s"

[build]
create-repository = true

[[services]]
name = "web"
containers = ["app"]

[[services]]
name = "worker"
containers = ["app"]

[[pre-deploy]]
family = "migrate"
command = "echo migrated the schema"
container = "app"
"#;
    let repo = crate::bed::Repo::new(&[
        (
            "Dockerfile",
            &format!("FROM {}\nCMD [\"sleep\", \"600\"]\n", bed.base_image),
        ),
        ("deckhand.toml", settings),
    ]);
    let deployed = run(&sandbox, Some(repo.path()), &["deploy"]).await;
    deployed.expect_code(0);
    assert!(
        deployed.stderr.contains("settings from"),
        "{}",
        deployed.stderr
    );
    assert!(
        deployed
            .stderr
            .contains("migrate app | migrated the schema"),
        "the migration's log is shown:\n{}",
        deployed.stderr
    );
    for family in ["web", "worker"] {
        let td = service_td_of(&client, family).await;
        assert!(td.ends_with(&format!("{family}:2")), "{family}: {td}");
        let described = client
            .describe_task_definition()
            .task_definition(&td)
            .send()
            .await
            .unwrap();
        let image = described.task_definition().unwrap().container_definitions()[0]
            .image()
            .unwrap()
            .to_string();
        assert!(image.contains("/team/app@sha256:"), "{family}: {image}");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deckhand.toml"),
        "cluster = \"c\"\nrepository = \"team/app\"\nkeep-revison = 3\n",
    )
    .unwrap();
    let typo = run(&sandbox, Some(dir.path()), &["deploy", "--service", "web"]).await;
    typo.expect_code(2);
    assert!(
        typo.stderr.contains("deckhand.toml (line 3)") && typo.stderr.contains("keep-revison"),
        "{}",
        typo.stderr
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_changes_no_service_and_shows_its_log() {
    let bed = Bed::get();
    let (sandbox, client, web, worker) = web_and_worker().await;
    let migrate_td = register_migrate_with_proxy(&client, &bed).await;
    let image = crate::deploy::command::good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let report = dir.path().join("report.json");
    let migrate = [
        "--pre-deploy-family",
        "migrate",
        "--pre-deploy-container",
        "app",
        "--ci",
        "github",
        "--report",
        report.to_str().unwrap(),
    ];
    let failing = "sh -c 'echo migrating 42 tables; echo duplicate column >&2; \
                   echo login with $DB_PASSWORD >&2; exit 1'";
    let mut args = deploy_args(
        &["--service", "worker", "--image", &image],
        &["--pre-deploy", failing],
    );
    args.extend(migrate);
    let env = [("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())];
    let failed = run_with_env(&sandbox, None, &args, &env).await;
    failed.expect_code(1);
    for want in [
        "migrate app | migrating 42 tables",
        "migrate app | duplicate column",
        "migrate proxy: logs not in CloudWatch (log driver json-file)",
        "app exited 1",
        "No service was changed",
    ] {
        assert!(failed.stderr.contains(want), "{want:?}:\n{}", failed.stderr);
    }
    assert_eq!(service_td_of(&client, "web").await, web);
    assert_eq!(service_td_of(&client, "worker").await, worker);

    // The job summary keeps the task's last lines, collapsed, as a deploy's failed tasks.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### Failed tasks' last log lines"), "{md}");
    assert!(
        md.contains("<details><summary>pre-deploy migrate: task ")
            && md.contains(", container app: last 3 log lines</summary>"),
        "{md}"
    );
    assert_eq!(
        fenced_lines(&md),
        ["duplicate column", "login with ***", "migrating 42 tables"],
        "{md}"
    );
    assert!(
        md.contains("container proxy: logs not in CloudWatch (log driver json-file)"),
        "{md}"
    );
    // The result's failed_tasks, shaped as a deploy's, with the gate's family.
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(out["result"], "failed");
    let tasks = out["failed_tasks"].as_array().expect("failed_tasks");
    assert_eq!(tasks.len(), 1, "{out:#}");
    let task = &tasks[0];
    assert_eq!(task["pre_deploy"], "migrate");
    assert_eq!(task["service"], "");
    let registered = task["task_definition_arn"].as_str().unwrap();
    assert!(
        registered.contains(":task-definition/migrate:") && registered != migrate_td,
        "the revision the gate registered: {task:#}"
    );
    assert!(
        task["reason"].as_str().unwrap().contains("app exit code 1"),
        "{task:#}"
    );
    let mut logs = task["logs"].clone();
    logs[0]["lines"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|l| l.to_string());
    assert_eq!(
        logs,
        serde_json::json!([
            {"container": "app", "lines": ["duplicate column", "login with ***",
                "migrating 42 tables"], "note": ""},
            {"container": "proxy", "lines": [],
                "note": "logs not in CloudWatch (log driver json-file)"}
        ])
    );

    for (what, text) in [
        ("log", failed.all()),
        ("summary", md.clone()),
        ("report", out.to_string()),
    ] {
        let shown: String = text
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect();
        assert!(!shown.contains("migrate-pass-7731"), "{what}:\n{text}");
    }

    // `--log-lines 0`: the log is still relayed as it arrives, but none is kept.
    let mut args = deploy_args(
        &["--image", &image],
        &["--pre-deploy", failing, "--log-lines", "0"],
    );
    args.extend(migrate);
    let quiet = run_with_env(&sandbox, None, &args, &env).await;
    quiet.expect_code(1);
    assert!(
        quiet.stderr.contains("migrate app | migrating 42 tables"),
        "{}",
        quiet.stderr
    );
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        out["failed_tasks"][0]["logs"],
        serde_json::json!([]),
        "{out:#}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    let this_run = md.rsplit("## deckhand deploy").next().unwrap();
    assert!(!this_run.contains("Failed tasks' last log lines"), "{md}");

    // A migration that outlives --timeout is stopped, not left to race the next attempt.
    let mut args = deploy_args(
        &["--image", &image],
        &["--pre-deploy", "sleep 600", "--timeout", "2s"],
    );
    args.extend(migrate);
    let slow = run(&sandbox, None, &args).await;
    slow.expect_code(1);
    assert!(slow.stderr.contains("it was stopped"), "{}", slow.stderr);
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let task = &out["failed_tasks"][0];
    assert_eq!(
        task["reason"], "did not finish within 2s; it was stopped",
        "{out:#}"
    );
    assert_eq!(
        task["logs"][1],
        serde_json::json!({"container": "proxy", "lines": [],
            "note": "logs not in CloudWatch (log driver json-file)"}),
        "{out:#}"
    );
    let running = client
        .list_tasks()
        .cluster("c")
        .started_by("deckhand")
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .unwrap();
    assert!(running.task_arns().is_empty(), "{:?}", running.task_arns());
    assert_eq!(service_td_of(&client, "web").await, web);
    sandbox.stop().await;
}

/// The files of `examples/rails-sidekiq`, as (path, contents).
fn example_files() -> Vec<(String, String)> {
    let root = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/rails-sidekiq"
    ));
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                files.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files
}

/// A task definition of the example with its placeholders filled in.
fn example_taskdef(
    files: &[(String, String)],
    name: &str,
    image: &str,
    stand_in: &str,
) -> serde_json::Value {
    let text = &files
        .iter()
        .find(|(p, _)| p == &format!("taskdefs/{name}.json"))
        .unwrap()
        .1;
    let mut td: serde_json::Value = serde_json::from_str(
        &text
            .replace("{{IMAGE}}", image)
            .replace("{{MYSQL_IMAGE}}", stand_in)
            .replace("{{REDIS_IMAGE}}", stand_in),
    )
    .unwrap();
    if name == "mysql" || name == "redis" {
        // The base image stands in for images the sandbox cannot pull.
        td["containerDefinitions"][0]["command"] = serde_json::json!(["sleep", "600"]);
    }
    td
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rails_sidekiq_example_deploys_from_its_settings_file() {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let files = example_files();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let repo = crate::bed::Repo::new(&borrowed);
    let base_arg = format!("BASE_IMAGE={}", bed.base_image);

    // The starting point: v1 pushed, and running as the example's services.
    let pushed = run(
        &sandbox,
        Some(repo.path()),
        &[
            "push",
            "--repository",
            "demo/rails",
            "--create-repository",
            "--build-arg",
            &base_arg,
            "--output",
            "json",
        ],
    )
    .await;
    pushed.expect_code(0);
    let v1 = pushed.json()["pinned"].as_str().unwrap().to_string();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let mut live = Vec::new();
    for name in [
        "mysql",
        "redis",
        "rails-migrate",
        "rails-web",
        "rails-worker",
    ] {
        let td = example_taskdef(&files, name, &v1, &bed.base_image);
        let arn = deckhand::aws::ecs::register_task_definition(
            &deckhand::aws::ecs::Ecs::new(&config),
            &td,
        )
        .await
        .unwrap()
        .arn;
        if name != "rails-migrate" {
            create_service(&client, name, &arn, 1, false).await;
            live.push((name, arn));
        }
    }
    for (name, arn) in &live {
        wait_until(&client, name, "the example's first rollout", |s| {
            completed_on(s, arn)
        })
        .await;
    }

    // v2: `deckhand deploy` with the settings file (the cluster flag overrides it).
    std::fs::write(repo.path().join("public/index.html"), "<h1>v2</h1>\n").unwrap();
    crate::bed::git(repo.path(), &["commit", "-q", "-am", "v2"]);
    let deployed = run(
        &sandbox,
        Some(repo.path()),
        &[
            "deploy",
            "--cluster",
            "c",
            "--build-arg",
            &base_arg,
            "--poll",
            "200ms",
            "--output",
            "json",
        ],
    )
    .await;
    deployed.expect_code(0);
    // The build takes its cache from the image the services run (v1, by digest).
    assert!(
        deployed.stderr.contains(&format!("cache from {v1}")),
        "{}",
        deployed.stderr
    );
    assert!(
        deployed
            .stderr
            .contains("rails-migrate app | == 20261124000000 CreateUsers: migrated"),
        "{}",
        deployed.stderr
    );
    let services = deployed.json()["services"].as_array().unwrap().clone();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["rails-web", "rails-worker"],
        "the order of deckhand.toml"
    );
    for family in ["rails-web", "rails-worker"] {
        assert!(service_td_of(&client, family)
            .await
            .ends_with(&format!("{family}:2")));
    }
    assert!(
        service_td_of(&client, "mysql").await.ends_with("mysql:1"),
        "untouched"
    );
    sandbox.stop().await;
}
