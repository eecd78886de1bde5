//! Several services in one deploy, on the sandbox with real containers: one image, one revision
//! per service's family, one combined watch (DescribeServices in batches), and all or nothing:
//! when one fails, every changed service goes back to its own previous revision.

use aws_sdk_ecs::Client;
use deckhand::sandbox::Sandbox;

use crate::bed::{Bed, Run};
use crate::deploy::command::run;
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
async fn image_without_sleep(bed: &Bed) -> String {
    let docker = deckhand::image::engine::connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\nRUN rm /bin/sleep\n", bed.base_image),
    )
    .unwrap();
    let tag = format!("deckhand-test/nosleep:{}", crate::bed::unique("v"));
    let context = deckhand::image::context::Context::prepare(dir.path(), None).unwrap();
    let spec = deckhand::image::build::BuildSpec {
        tags: vec![tag.clone()],
        build_args: Default::default(),
        target: None,
        labels: Default::default(),
    };
    deckhand::image::build::build(&docker, context, &spec)
        .await
        .unwrap();
    tag
}

async fn deploy_both(sandbox: &Sandbox, image: &str) -> Run {
    run(
        sandbox,
        None,
        &[
            "deploy",
            "--cluster",
            "c",
            "--service",
            "web",
            "--service",
            "worker",
            "--container",
            "app",
            "--image",
            image,
            "--poll",
            "200ms",
            "--timeout",
            "60s",
            "--output",
            "json",
        ],
    )
    .await
}

async fn service_td(client: &Client, service: &str) -> String {
    let out = client
        .describe_services()
        .cluster("c")
        .services(service)
        .send()
        .await
        .unwrap();
    out.services()[0].task_definition().unwrap().to_string()
}

fn calls(sandbox: &Sandbox) -> std::collections::BTreeMap<String, u64> {
    sandbox.shared.calls.lock().unwrap().clone()
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
        assert_eq!(service_td(&client, family).await, td);
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
    assert_eq!(service_td(&client, "web").await, web, "web is back too");
    assert_eq!(service_td(&client, "worker").await, worker);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckhand_toml_alone_drives_a_full_deploy_and_a_typo_is_named() {
    let bed = Bed::get();
    let (sandbox, client, _web, _worker) = web_and_worker().await;
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
    for family in ["web", "worker"] {
        let td = service_td(&client, family).await;
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
