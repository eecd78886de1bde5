//! `deckhand init` against a service set up by hand with the aws CLI: the files it writes, a
//! dry run from them that changes only the image, and the refusals (existing files, a missing
//! service, a controller deckhand cannot deploy).

use std::path::Path;

use serde_json::{json, Value};

use crate::bed::{unique, Bed, Run};
use crate::deploy::command::run;

/// A plaintext value in the task definition that looks secret (its name says PASSWORD).
const SECRET: &str = "init-hunter2-secret-value";

/// `aws <args…> --output json` against `endpoint` off the runtime's workers (the sandbox
/// answering it lives on them); it must succeed.
async fn aws(bed: &Bed, endpoint: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let (ok, stdout, stderr) = crate::clients::run(&bed.aws_cli, &all, endpoint).await;
    assert!(ok, "aws {all:?} failed:\n{stderr}");
    if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("aws {all:?}: not JSON ({e}): {stdout}"))
    }
}

/// Registers `family` with an app container from `image` (an env var and a secret-looking
/// one) and a sidecar from the base image, tagged; returns its ARN.
async fn register(bed: &Bed, endpoint: &str, family: &str, image: &str) -> String {
    let input = json!({
        "family": family,
        "containerDefinitions": [
            {
                "name": "app",
                "image": image,
                "essential": true,
                "memory": 32,
                "command": ["sleep", "600"],
                "environment": [
                    {"name": "RAILS_ENV", "value": "production"},
                    {"name": "DB_PASSWORD", "value": SECRET}
                ]
            },
            {"name": "sidecar", "image": bed.base_image, "essential": false, "memory": 16,
             "command": ["sleep", "600"]}
        ],
        "tags": [{"key": "team", "value": "core"}]
    });
    let out = aws(
        bed,
        endpoint,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input.to_string(),
        ],
    )
    .await;
    out["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Cluster `c` with service `web` on `td`, desired count 0 (nothing needs to run for init).
async fn create_service(bed: &Bed, endpoint: &str, td: &str, extra: &[&str]) {
    aws(
        bed,
        endpoint,
        &["ecs", "create-cluster", "--cluster-name", "c"],
    )
    .await;
    let mut args = vec![
        "ecs",
        "create-service",
        "--cluster",
        "c",
        "--service-name",
        "web",
        "--task-definition",
        td,
        "--desired-count",
        "0",
    ];
    args.extend_from_slice(extra);
    aws(bed, endpoint, &args).await;
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The `-`/`+` lines of the task definition change a dry run printed.
fn changed_lines(run: &Run) -> Vec<String> {
    let (_, after) = run
        .stderr
        .split_once("task definition change:")
        .unwrap_or_else(|| panic!("no change printed:\n{}", run.all()));
    after
        .lines()
        .take_while(|l| !l.starts_with("dry run:"))
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_files_a_dry_run_deploys_with_only_the_image_changed() {
    let bed = Bed::get();
    let (sandbox, _) = crate::sandbox::sandbox(8192).await;
    let endpoint = sandbox.endpoint();
    let name = format!("team/{}", unique("init")).replace('_', "-");
    let repo = aws(
        &bed,
        &endpoint,
        &["ecr", "create-repository", "--repository-name", &name],
    )
    .await;
    let uri = repo["repository"]["repositoryUri"]
        .as_str()
        .unwrap()
        .to_string();
    let td = register(&bed, &endpoint, "web", &format!("{uri}:v1")).await;
    create_service(&bed, &endpoint, &td, &[]).await;

    let dir = tempfile::tempdir().unwrap();
    let init = [
        "init",
        "--cluster",
        "c",
        "--service",
        "web",
        "--region",
        "us-east-1",
    ];
    let first = run(&sandbox, Some(dir.path()), &init).await;
    first.expect_code(0);
    assert!(
        !first.all().contains(SECRET),
        "a secret leaked:\n{}",
        first.all()
    );
    for says in [
        "wrote ./deckhand.toml and ./taskdef.json from service web (web:1)",
        "the image goes to app (ECR repository",
        "next: deckhand deploy --dry-run",
    ] {
        assert!(first.stdout.contains(says), "{says}:\n{}", first.all());
    }
    assert!(
        first
            .stderr
            .contains("plaintext values that look secret (app: DB_PASSWORD)"),
        "{}",
        first.all()
    );

    // deckhand.toml: the keys a deploy needs, as deckhand reads them.
    let toml = read(dir.path(), "deckhand.toml");
    let config = deckhand::config::parse(&toml, Path::new("deckhand.toml")).unwrap();
    assert_eq!(config.cluster.as_deref(), Some("c"));
    assert_eq!(config.region.as_deref(), Some("us-east-1"));
    assert_eq!(config.repository.as_deref(), Some(name.as_str()));
    assert_eq!(config.image, None);
    assert_eq!(
        config.task_definition.as_deref(),
        Some(Path::new("taskdef.json"))
    );
    assert_eq!(config.timeout, Some(std::time::Duration::from_secs(600)));
    assert_eq!(config.rollback, Some(deckhand::cli::RollbackMode::Auto));
    assert_eq!(config.services.len(), 1);
    assert_eq!(config.services[0].name, "web");
    assert_eq!(config.services[0].containers, vec!["app"]);

    // taskdef.json: RegisterTaskDefinition input, every value kept, nothing ECS sets itself.
    let file_text = read(dir.path(), "taskdef.json");
    assert!(file_text.ends_with("}\n"), "{file_text}");
    let file: Value = serde_json::from_str(&file_text).unwrap();
    for gone in [
        "taskDefinitionArn",
        "revision",
        "status",
        "registeredAt",
        "registeredBy",
        "requiresAttributes",
        "compatibilities",
        "taskDefinition",
    ] {
        assert!(file.get(gone).is_none(), "{gone} in:\n{file_text}");
    }
    assert_eq!(file["family"], "web");
    assert_eq!(file["tags"], json!([{"key": "team", "value": "core"}]));
    let app = &file["containerDefinitions"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["image"], format!("{uri}:v1"));
    assert_eq!(app["command"], json!(["sleep", "600"]));
    assert_eq!(
        app["environment"],
        json!([{"name": "RAILS_ENV", "value": "production"},
               {"name": "DB_PASSWORD", "value": SECRET}])
    );
    assert_eq!(file["containerDefinitions"][1]["image"], bed.base_image);
    assert!(deckhand::deploy::shape::unknown_fields(&file).is_empty());

    // A dry run from the files alone (no target flags) changes only the app's image.
    let new_image = format!("{uri}:v2");
    let dry = run(
        &sandbox,
        Some(dir.path()),
        &["deploy", "--dry-run", "--image", &new_image],
    )
    .await;
    dry.expect_code(0);
    assert!(dry.stderr.contains("settings from"), "{}", dry.all());
    assert!(dry.stderr.contains("new image for app:"), "{}", dry.all());
    assert_eq!(
        changed_lines(&dry),
        vec![
            format!("+ \"image\": \"{new_image}\","),
            format!("- \"image\": \"{uri}:v1\","),
        ],
        "{}",
        dry.all()
    );
    assert!(
        !dry.all().contains(SECRET),
        "a secret leaked:\n{}",
        dry.all()
    );

    // Again without --force: exit 2, both files named, neither touched.
    let again = run(&sandbox, Some(dir.path()), &init).await;
    again.expect_code(2);
    assert!(
        again
            .stderr
            .contains("./deckhand.toml and ./taskdef.json already exist")
            && again.stderr.contains("--force"),
        "{}",
        again.all()
    );
    assert_eq!(read(dir.path(), "deckhand.toml"), toml);
    assert_eq!(read(dir.path(), "taskdef.json"), file_text);

    // With --force both are written again, as they were.
    std::fs::write(dir.path().join("deckhand.toml"), "cluster = \"edited\"\n").unwrap();
    std::fs::write(dir.path().join("taskdef.json"), "{}\n").unwrap();
    let mut forced_args = init.to_vec();
    forced_args.extend(["--force", "--output", "json"]);
    let forced = run(&sandbox, Some(dir.path()), &forced_args).await;
    forced.expect_code(0);
    assert_eq!(read(dir.path(), "deckhand.toml"), toml);
    assert_eq!(read(dir.path(), "taskdef.json"), file_text);
    let out = forced.json();
    assert_eq!(out["result"], "initialized");
    assert_eq!(out["service"], "web");
    assert_eq!(out["task_definition_arn"], td.as_str());
    assert_eq!(out["repository"], name.as_str());
    assert_eq!(out["containers"], json!(["app"]));
    assert_eq!(out["config_file"], "./deckhand.toml");
    assert_eq!(out["task_definition_file"], "./taskdef.json");
    assert_eq!(out["next"], "deckhand deploy --dry-run");
    assert!(
        !forced.all().contains(SECRET),
        "a secret leaked:\n{}",
        forced.all()
    );

    // --dir: a new directory, and the next step goes there.
    let sub = dir.path().join("deploy/web");
    let into = run(
        &sandbox,
        Some(dir.path()),
        &[
            "init",
            "--cluster",
            "c",
            "--service",
            "web",
            "--dir",
            "deploy/web",
            "--output",
            "json",
        ],
    )
    .await;
    into.expect_code(0);
    assert_eq!(read(&sub, "taskdef.json"), file_text);
    assert_eq!(
        into.json()["next"],
        "cd deploy/web && deckhand deploy --dry-run"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_no_files() {
    let bed = Bed::get();
    let (sandbox, _) = crate::sandbox::sandbox(8192).await;
    let endpoint = sandbox.endpoint();
    let td = register(&bed, &endpoint, "web", &bed.base_image).await;
    create_service(&bed, &endpoint, &td, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    for (cluster, service, says) in [
        (
            "c",
            "nope",
            "the ECS service \"nope\" does not exist in cluster \"c\"",
        ),
        (
            "nocluster",
            "web",
            "the ECS cluster \"nocluster\" does not exist",
        ),
    ] {
        let failed = run(
            &sandbox,
            Some(dir.path()),
            &["init", "--cluster", cluster, "--service", service],
        )
        .await;
        failed.expect_code(1);
        assert!(failed.stderr.contains(says), "{says}:\n{}", failed.all());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing is written"
        );
    }

    // No image from ECR: written all the same, saying what to fill in.
    let plain = run(
        &sandbox,
        Some(dir.path()),
        &["init", "--cluster", "c", "--service", "web"],
    )
    .await;
    plain.expect_code(0);
    assert!(
        plain.stderr.contains("no container's image is in ECR"),
        "{}",
        plain.all()
    );
    assert!(
        plain
            .stdout
            .contains("next: deckhand deploy --dry-run --image IMAGE"),
        "{}",
        plain.all()
    );
    let config = deckhand::config::parse(
        &read(dir.path(), "deckhand.toml"),
        Path::new("deckhand.toml"),
    )
    .unwrap();
    assert_eq!(config.repository, None);
    assert!(config.services[0].containers.is_empty());
    sandbox.stop().await;
}

/// moto models the deployment controller (the sandbox runs ECS's own only): a CodeDeploy
/// service is refused, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_deploy_service_is_refused() {
    let bed = Bed::get();
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("the bed's moto");
    let family = format!("it-{}", unique("init")).replace('_', "-");
    let td = register(&bed, &moto, &family, &bed.base_image).await;
    let cluster = format!("{family}-cluster");
    aws(
        &bed,
        &moto,
        &["ecs", "create-cluster", "--cluster-name", &cluster],
    )
    .await;
    aws(
        &bed,
        &moto,
        &[
            "ecs",
            "create-service",
            "--cluster",
            &cluster,
            "--service-name",
            "web",
            "--task-definition",
            &td,
            "--desired-count",
            "0",
            "--deployment-controller",
            "type=EXTERNAL",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let refused = crate::bed::deckhand(
        dir.path(),
        &["init", "--cluster", &cluster, "--service", "web"],
        &[],
    );
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("service web uses the EXTERNAL deployment controller"),
        "{}",
        refused.all()
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(!refused.all().contains(SECRET));
}
