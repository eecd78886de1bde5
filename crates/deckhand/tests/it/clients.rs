//! Independent clients must accept the sandbox: the aws CLI drives a deploy that fails and is
//! rolled back, and fabfuel's ecs-deploy deploys a new image.

use std::process::Command;
use std::time::Duration;

use deckhand_sandbox::Sandbox;
use serde_json::Value;

use crate::bed::Bed;

const PATIENCE: Duration = Duration::from_secs(90);

async fn start() -> Sandbox {
    crate::sandbox::sandbox(8192).await.0
}

/// Runs a client program against the sandbox off the runtime's workers (the sandbox answering
/// it lives on them); returns (exit ok, stdout, stderr).
pub async fn run(program: &str, args: &[&str], endpoint: &str) -> (bool, String, String) {
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let endpoint = endpoint.to_string();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(&program)
            .args(&args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `aws ecs …` with JSON output, which must succeed.
async fn aws(bed: &Bed, endpoint: &str, args: &[&str]) -> Value {
    let mut all = vec!["ecs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let (ok, stdout, stderr) = run(&bed.aws_cli, &all, endpoint).await;
    assert!(ok, "aws {all:?} failed:\n{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("aws {all:?}: not JSON ({e}): {stdout}"))
}

async fn service_until(
    bed: &Bed,
    endpoint: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = aws(
            bed,
            endpoint,
            &["describe-services", "--cluster", "c", "--services", "web"],
        )
        .await;
        let s = out["services"][0].clone();
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached; last state: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn completed_on(s: &Value, td: &str) -> bool {
    let deps = s["deployments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    deps.len() == 1
        && deps[0]["taskDefinition"] == td
        && deps[0]["rolloutState"] == "COMPLETED"
        && s["runningCount"] == s["desiredCount"]
}

fn containers(bed: &Bed, command: &str) -> String {
    format!(
        r#"[{{"name":"app","image":"{}","memory":32,"command":["sh","-c","{command}"]}}]"#,
        bed.base_image
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_sees_a_failed_deploy_rolled_back() {
    let bed = Bed::get();
    let sandbox = start().await;
    let ep = sandbox.endpoint();
    aws(&bed, &ep, &["create-cluster", "--cluster-name", "c"]).await;
    let good = aws(
        &bed,
        &ep,
        &[
            "register-task-definition",
            "--family",
            "web",
            "--container-definitions",
            &containers(&bed, "sleep 600"),
        ],
    )
    .await;
    let good = good["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();
    aws(
        &bed,
        &ep,
        &[
            "create-service", "--cluster", "c", "--service-name", "web", "--task-definition", "web:1",
            "--desired-count", "1", "--deployment-configuration",
            "deploymentCircuitBreaker={enable=true,rollback=true},maximumPercent=200,minimumHealthyPercent=100",
        ],
    )
    .await;
    service_until(&bed, &ep, "first rollout", |s| completed_on(s, &good)).await;

    aws(
        &bed,
        &ep,
        &[
            "register-task-definition",
            "--family",
            "web",
            "--container-definitions",
            &containers(&bed, "exit 3"),
        ],
    )
    .await;
    let updated = aws(
        &bed,
        &ep,
        &[
            "update-service",
            "--cluster",
            "c",
            "--service",
            "web",
            "--task-definition",
            "web:2",
        ],
    )
    .await;
    assert_eq!(
        updated["service"]["deployments"][0]["rolloutState"],
        "IN_PROGRESS"
    );
    let s = service_until(&bed, &ep, "rollback", |s| {
        completed_on(s, &good) && s["events"].to_string().contains("rolling back")
    })
    .await;
    let events = s["events"].to_string();
    assert!(
        events.contains("deployment failed: tasks failed to start"),
        "{events}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_deploy_deploys_a_new_revision() {
    let bed = Bed::get();
    let sandbox = start().await;
    let ep = sandbox.endpoint();
    aws(&bed, &ep, &["create-cluster", "--cluster-name", "c"]).await;
    aws(
        &bed,
        &ep,
        &[
            "register-task-definition",
            "--family",
            "web",
            "--container-definitions",
            &containers(&bed, "sleep 600"),
        ],
    )
    .await;
    aws(
        &bed,
        &ep,
        &[
            "create-service",
            "--cluster",
            "c",
            "--service-name",
            "web",
            "--task-definition",
            "web:1",
            "--desired-count",
            "1",
        ],
    )
    .await;

    let (ok, stdout, stderr) = run(
        &bed.ecs_deploy,
        &[
            "deploy",
            "c",
            "web",
            "--command",
            "app",
            "sleep 601",
            "--timeout",
            "60",
        ],
        &ep,
    )
    .await;
    assert!(ok, "ecs deploy failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Deployment successful"), "{stdout}");
    let s = service_until(&bed, &ep, "ecs-deploy's revision", |s| {
        s["taskDefinition"]
            .as_str()
            .is_some_and(|t| t.ends_with("web:2"))
            && s["runningCount"] == 1
    })
    .await;
    assert_eq!(s["deployments"].as_array().unwrap().len(), 1);
    sandbox.stop().await;
}

/// Polls `aws ecs describe-service-deployments` for the newest deployment of service web
/// until `done` holds.
async fn newest_deployment_until(
    bed: &Bed,
    endpoint: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let list = aws(
            bed,
            endpoint,
            &[
                "list-service-deployments",
                "--cluster",
                "c",
                "--service",
                "web",
            ],
        )
        .await;
        let arn = list["serviceDeployments"][0]["serviceDeploymentArn"]
            .as_str()
            .unwrap()
            .to_string();
        let out = aws(
            bed,
            endpoint,
            &[
                "describe-service-deployments",
                "--service-deployment-arns",
                &arn,
            ],
        )
        .await;
        let d = out["serviceDeployments"][0].clone();
        if done(&d) {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached; last state: {d:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn awaiting(d: &Value) -> bool {
    d["lifecycleHookDetails"]
        .as_array()
        .is_some_and(|h| h.iter().any(|h| h["status"] == "AWAITING_ACTION"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_continues_and_stops_a_blue_green_deployment() {
    let bed = Bed::get();
    let (sandbox, _) = crate::sandbox::sandbox_with(deckhand_sandbox::Options {
        time_scale: 0.02,
        ..crate::sandbox::test_options()
    })
    .await;
    let ep = sandbox.endpoint();
    aws(&bed, &ep, &["create-cluster", "--cluster-name", "c"]).await;
    for command in ["sleep 600", "sleep 601"] {
        aws(
            &bed,
            &ep,
            &[
                "register-task-definition",
                "--family",
                "web",
                "--container-definitions",
                &containers(&bed, command),
            ],
        )
        .await;
    }
    let config = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0,
        "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"],
                            "timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"}}]}"#;
    let created = aws(
        &bed,
        &ep,
        &[
            "create-service",
            "--cluster",
            "c",
            "--service-name",
            "web",
            "--task-definition",
            "web:1",
            "--desired-count",
            "1",
            "--deployment-configuration",
            config,
        ],
    )
    .await;
    assert_eq!(
        created["service"]["deploymentConfiguration"]["strategy"],
        "BLUE_GREEN"
    );
    assert_eq!(
        created["service"]["deploymentConfiguration"]["lifecycleHooks"][0]["targetType"],
        "PAUSE"
    );

    // The first deployment pauses after scaling up; continue-service-deployment lets it finish.
    let d = newest_deployment_until(&bed, &ep, "paused", awaiting).await;
    assert_eq!(d["lifecycleStage"], "POST_SCALE_UP");
    let arn = d["serviceDeploymentArn"].as_str().unwrap().to_string();
    let hook = d["lifecycleHookDetails"][0]["hookId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = aws(
        &bed,
        &ep,
        &[
            "continue-service-deployment",
            "--service-deployment-arn",
            &arn,
            "--hook-id",
            &hook,
            "--action",
            "CONTINUE",
        ],
    )
    .await;
    assert_eq!(out["serviceDeploymentArn"], arn.as_str());
    let d =
        newest_deployment_until(&bed, &ep, "first success", |d| d["status"] == "SUCCESSFUL").await;
    assert_eq!(d["lifecycleHookDetails"][0]["status"], "SUCCEEDED");

    // The next one is stopped while it waits: back on web:1.
    aws(
        &bed,
        &ep,
        &[
            "update-service",
            "--cluster",
            "c",
            "--service",
            "web",
            "--task-definition",
            "web:2",
        ],
    )
    .await;
    let d = newest_deployment_until(&bed, &ep, "paused again", |d| {
        d["serviceDeploymentArn"] != arn.as_str() && awaiting(d)
    })
    .await;
    let second = d["serviceDeploymentArn"].as_str().unwrap().to_string();
    aws(
        &bed,
        &ep,
        &[
            "stop-service-deployment",
            "--service-deployment-arn",
            &second,
            "--stop-type",
            "ROLLBACK",
        ],
    )
    .await;
    let d = newest_deployment_until(&bed, &ep, "rolled back", |d| {
        d["status"] == "ROLLBACK_SUCCESSFUL"
    })
    .await;
    assert_eq!(d["serviceDeploymentArn"], second.as_str());
    assert!(
        d["rollback"]["reason"]
            .as_str()
            .unwrap()
            .contains("stop request"),
        "{d:#}"
    );
    let good = d["sourceServiceRevisions"][0]["arn"].clone();
    assert_eq!(d["rollback"]["serviceRevisionArn"], good);
    let s = service_until(&bed, &ep, "back on web:1", |s| {
        s["deployments"][0]["taskDefinition"]
            .as_str()
            .is_some_and(|t| t.ends_with("web:1"))
            && s["deployments"].as_array().map(Vec::len) == Some(1)
    })
    .await;
    assert_eq!(s["deploymentConfiguration"]["strategy"], "BLUE_GREEN");
    sandbox.stop().await;
}
