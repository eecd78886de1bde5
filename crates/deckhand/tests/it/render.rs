//! Per-deploy task-definition changes on the sandbox: what the flags and deckhand.toml set
//! lands in the registered revision (and only there), the dry-run diff shows it with secret
//! values masked, and bad input is exit 2 with nothing registered.

use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair};
use aws_sdk_ecs::Client;
use deckhand_sandbox::Sandbox;
use serde_json::{json, Value};

use crate::bed::{Bed, Run};
use crate::deploy::command::{deploy_args, good_image, run, run_with_env, service_td};
use crate::sandbox::{completed_on, create_service, sandbox, wait_until};

/// A secret-looking `--env` value: it must never appear in any output.
const SECRET: &str = "pw-0f3a9c-render";

/// Service `web` stable on a revision with container `app` (the image's, with environment
/// KEEP and MODE=old and a label) and container `side` (not the image's); returns its ARN.
async fn two_container_service() -> (Sandbox, Client, String) {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let pair = |k: &str, v: &str| KeyValuePair::builder().name(k).value(v).build();
    let app = ContainerDefinition::builder()
        .name("app")
        .image(&bed.base_image)
        .essential(true)
        .memory(32)
        .set_command(Some(vec!["sleep".into(), "600".into()]))
        .environment(pair("KEEP", "k"))
        .environment(pair("MODE", "old"))
        .docker_labels("team", "core")
        .build();
    let side = ContainerDefinition::builder()
        .name("side")
        .image(&bed.base_image)
        .essential(false)
        .memory(16)
        .set_command(Some(vec!["sleep".into(), "600".into()]))
        .build();
    let out = client
        .register_task_definition()
        .family("web")
        .container_definitions(app)
        .container_definitions(side)
        .send()
        .await
        .unwrap();
    let good = out
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    create_service(&client, "web", &good, 1, false).await;
    wait_until(&client, "web", "initial rollout", |s| {
        completed_on(s, &good)
    })
    .await;
    (sandbox, client, good)
}

fn container<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}: {body}"))
}

fn registrations(sandbox: &Sandbox) -> u64 {
    sandbox
        .calls()
        .get("ECS.RegisterTaskDefinition")
        .copied()
        .unwrap_or(0)
}

fn assert_no_secret(run: &Run) {
    assert!(
        !run.all().contains(SECRET),
        "the secret value is in the output:\n{}",
        run.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flags_change_the_new_revision_and_bad_ones_change_nothing() {
    let bed = Bed::get();
    let (sandbox, client, good) = two_container_service().await;
    let image = good_image(&bed).await;

    // Refused with exit 2, before anything is registered: by the flags' syntax (before any
    // call), or against the task definition (an unknown container, a Fargate-less size…).
    crate::sandbox::control(&sandbox, "calls", "");
    for (flags, says) in [
        (
            &["--env", "NOEQUALS"][..],
            "--env an item has no `=`: expected [CONTAINER:]NAME=VALUE",
        ),
        (
            &["--cpu", "lots"][..],
            "--cpu \"lots\" is not a task CPU size",
        ),
        (
            &["--secret-env", "K=not a ref"][..],
            "--secret-env K: the value is not a secret reference",
        ),
        (&["--task-role", "web-task"][..], "is not an IAM role ARN"),
        (
            &["--env", &format!("nope:DB_PASSWORD={SECRET}")][..],
            "no container named \"nope\" in the task definition (web's web has app, side)",
        ),
        (
            &["--log-stream-prefix", "web"][..],
            "container app has no log configuration: --log-stream-prefix needs --log-group too",
        ),
    ] {
        let mut extra = flags.to_vec();
        extra.extend(["--output", "json"]);
        let refused = run(&sandbox, None, &deploy_args(&["--image", &image], &extra)).await;
        refused.expect_code(2);
        assert!(
            refused.stderr.contains(says),
            "{flags:?}: {}",
            refused.stderr
        );
        assert_no_secret(&refused);
    }
    assert_eq!(registrations(&sandbox), 0, "{:?}", sandbox.calls());
    assert_eq!(service_td(&client).await, good);

    let secret_env = format!("DB_PASSWORD={SECRET}");
    let token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-token-AbCdEf";
    let token_env = format!("API_TOKEN={token}");
    let extra = [
        "--env",
        "MODE=new",
        "--env",
        "ADDED=http://x:1/a=b",
        "--env",
        &secret_env,
        "--env",
        "side:SIDE_ONLY=1",
        "--secret-env",
        &token_env,
        "--env-file",
        "arn:aws:s3:::config-bucket/web/prod.env",
        "--label",
        "team=payments",
        "--label",
        "side:role=helper",
        "--entry-point",
        "env",
        "--command",
        "sleep 601",
        "--task-role",
        "arn:aws:iam::123456789012:role/web-task",
        "--execution-role",
        "arn:aws:iam::123456789012:role/ecs-execution",
        "--cpu",
        ".5 vCPU",
        "--memory",
        "1 GB",
        "--log-group",
        "/ecs/web",
        "--log-stream-prefix",
        "web",
        "--output",
        "json",
    ];
    let deployed = run(&sandbox, None, &deploy_args(&["--image", &image], &extra)).await;
    deployed.expect_code(0);
    assert_no_secret(&deployed);
    assert!(
        deployed.stderr.contains(
            "DB_PASSWORD set as plain environment: the value is stored in the task definition"
        ),
        "{}",
        deployed.stderr
    );
    let out = deployed.json();
    assert_eq!(out["result"], "deployed");
    let arn = out["task_definition_arn"].as_str().unwrap();
    assert_eq!(
        service_td(&client).await,
        arn,
        "tasks of it run (env sleep 601)"
    );

    let body = sandbox.task_definition(arn).await.unwrap().body;
    let app = container(&body, "app");
    assert_eq!(app["image"], image.as_str());
    assert_eq!(
        app["environment"],
        json!([
            {"name": "KEEP", "value": "k"},
            {"name": "MODE", "value": "new"},
            {"name": "ADDED", "value": "http://x:1/a=b"},
            {"name": "DB_PASSWORD", "value": SECRET}
        ]),
        "replaced in place, kept, appended"
    );
    assert_eq!(
        app["secrets"],
        json!([{"name": "API_TOKEN", "valueFrom": token}])
    );
    assert_eq!(
        app["environmentFiles"],
        json!([{"value": "arn:aws:s3:::config-bucket/web/prod.env", "type": "s3"}])
    );
    assert_eq!(app["dockerLabels"], json!({"team": "payments"}));
    assert_eq!(app["entryPoint"], json!(["env"]));
    assert_eq!(app["command"], json!(["sleep", "601"]));
    assert_eq!(
        app["logConfiguration"],
        json!({"logDriver": "awslogs", "options": {
            "awslogs-group": "/ecs/web",
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "web"
        }}),
        "a container without a log configuration gets awslogs in the deploy's region"
    );
    let side = container(&body, "side");
    assert_eq!(
        side["environment"],
        json!([{"name": "SIDE_ONLY", "value": "1"}])
    );
    assert_eq!(side["dockerLabels"], json!({"role": "helper"}));
    assert_eq!(side["command"], json!(["sleep", "600"]), "not the image's");
    assert!(side.get("logConfiguration").is_none() && side.get("secrets").is_none());
    for (field, want) in [
        ("taskRoleArn", "arn:aws:iam::123456789012:role/web-task"),
        (
            "executionRoleArn",
            "arn:aws:iam::123456789012:role/ecs-execution",
        ),
        ("cpu", "512"),
        ("memory", "1024"),
    ] {
        assert_eq!(body[field], want, "{field}");
    }

    // The revision rolled back to is untouched.
    let old = sandbox.task_definition(&good).await.unwrap().body;
    assert_eq!(
        container(&old, "app")["environment"],
        json!([{"name": "KEEP", "value": "k"}, {"name": "MODE", "value": "old"}])
    );
    assert!(old.get("taskRoleArn").is_none() && old.get("cpu").is_none());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_file_and_flag_changes_with_secret_values_masked() {
    let bed = Bed::get();
    let (sandbox, client, good) = two_container_service().await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deckhand.toml"),
        "[render]\n\
         env = { MODE = \"from-file\", FROM_FILE = \"yes\" }\n\
         labels = { tier = \"web\" }\n\
         memory = \"512 MiB\"\n",
    )
    .unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary.md");
    let from_ci = format!("MODE=from-flag\nDB_PASSWORD={SECRET}");
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        // The secret reaches deckhand the way a CI variable would.
        ("DECKHAND_ENV", from_ci.as_str()),
    ];
    crate::sandbox::control(&sandbox, "calls", "");
    let run = run_with_env(
        &sandbox,
        Some(dir.path()),
        &deploy_args(
            &["--image", &image],
            &[
                "--secret-env",
                "API_TOKEN=/prod/api/token",
                "--dry-run",
                "--output",
                "json",
            ],
        ),
        &env,
    )
    .await;
    run.expect_code(0);
    assert_eq!(run.json()["result"], "dry-run");
    let line = |sign: char, text: &str| {
        run.stderr
            .lines()
            .any(|l| l.starts_with(sign) && l.contains(text))
    };
    for (sign, text) in [
        ('-', "\"value\": \"old\""),
        ('+', "\"value\": \"from-flag\""),
        ('+', "\"name\": \"FROM_FILE\""),
        ('+', "\"name\": \"DB_PASSWORD\""),
        ('+', "\"value\": \"***\""),
        ('+', "\"valueFrom\": \"/prod/api/token\""),
        ('+', "\"tier\": \"web\""),
        ('+', "\"memory\": \"512\""),
        ('+', &format!("\"image\": \"{image}\"")),
    ] {
        assert!(line(sign, text), "{sign} {text}:\n{}", run.stderr);
    }
    assert!(
        !run.stderr.contains("\"value\": \"from-file\""),
        "the flag wins over the file:\n{}",
        run.stderr
    );
    // The value is only ever told to the runner, to mask; never printed or written.
    let all = run.all();
    let shown: Vec<&str> = all.lines().filter(|l| l.contains(SECRET)).collect();
    assert_eq!(
        shown,
        vec![format!("::add-mask::{SECRET}")],
        "{}",
        run.all()
    );
    for file in [&output, &summary] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(SECRET), "{}: {text}", file.display());
    }
    assert_eq!(registrations(&sandbox), 0, "a dry run registers nothing");
    assert_eq!(service_td(&client).await, good);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_services_get_the_shared_settings_their_own_and_the_flags() {
    let bed = Bed::get();
    let (sandbox, client, _web) = two_container_service().await;
    let worker = crate::sandbox::register(
        &client,
        "worker",
        crate::sandbox::container(&bed, &["sleep", "600"]),
    )
    .await;
    create_service(&client, "worker", &worker, 1, false).await;
    wait_until(&client, "worker", "initial rollout", |s| {
        completed_on(s, &worker)
    })
    .await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deckhand.toml"),
        "cluster = \"c\"\n\
         [render]\nenv = { SHARED = \"all\" }\n\
         [[services]]\nname = \"web\"\ncontainers = [\"app\"]\n\
         [[services]]\nname = \"worker\"\ncontainers = [\"app\"]\n\
         [services.render]\ncommand = \"sleep 602\"\nenv = { ROLE = \"worker\" }\n",
    )
    .unwrap();
    let args = |extra: &[&'static str]| {
        let mut a: Vec<String> = ["deploy", "--image", &image, "--dry-run", "--output", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    crate::sandbox::control(&sandbox, "calls", "");
    let argv = args(&["--env", "side:SIDE=1"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let dry = run(&sandbox, Some(dir.path()), &argv).await;
    dry.expect_code(0);
    // One change per service, in service order.
    let parts: Vec<&str> = dry.stderr.split("task definition change:").collect();
    assert_eq!(parts.len(), 3, "{}", dry.stderr);
    let added = |part: &str, text: &str| {
        part.lines()
            .take_while(|l| !l.contains("task definition change"))
            .any(|l| l.starts_with('+') && l.contains(text))
    };
    let (web, worker) = (parts[1], parts[2]);
    assert!(added(web, "\"SHARED\"") && added(web, "\"SIDE\""), "{web}");
    assert!(!added(web, "\"ROLE\"") && !added(web, "602"), "{web}");
    assert!(
        added(worker, "\"SHARED\"") && added(worker, "\"ROLE\""),
        "{worker}"
    );
    assert!(
        added(worker, "\"602\""),
        "the worker's own command:\n{worker}"
    );
    assert!(
        !added(worker, "\"SIDE\""),
        "worker has no side container:\n{worker}"
    );

    let argv = args(&["--env", "nope:K=V"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let refused = run(&sandbox, Some(dir.path()), &argv).await;
    refused.expect_code(2);
    assert!(
        refused.stderr.contains(
            "no container named \"nope\" in the task definition (web's web has app, side; \
             worker's worker has app)"
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(registrations(&sandbox), 0);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_deploy_task_runs_with_the_changes_and_its_revision_is_retired() {
    let bed = Bed::get();
    let (sandbox, client, _) = crate::deploy::command::stable_service(false).await;
    let image = good_image(&bed).await;
    let extra = [
        "--env",
        "GATE=ready",
        "--pre-deploy",
        "sh -c 'test \"$GATE\" = ready'",
    ];
    let run = run(&sandbox, None, &deploy_args(&["--image", &image], &extra)).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains("pre-deploy task web succeeded"),
        "the migration ran with the deploy's --env (its command exits 0 only then):\n{}",
        run.stderr
    );
    let active = client
        .list_task_definitions()
        .family_prefix("web")
        .send()
        .await
        .unwrap();
    let revisions: Vec<&str> = active
        .task_definition_arns()
        .iter()
        .map(|a| a.rsplit('/').next().unwrap())
        .collect();
    let live = service_td(&client).await;
    let live = live.rsplit('/').next().unwrap();
    assert_eq!(
        revisions.len(),
        2,
        "only the old and the live revision stay; the gate's is deregistered once its task \
         stopped: {revisions:?}\n{}",
        run.stderr
    );
    assert!(
        revisions.contains(&"web:1") && revisions.contains(&live),
        "{revisions:?}"
    );
    sandbox.stop().await;
}
