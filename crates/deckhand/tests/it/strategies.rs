//! `deckhand deploy` for every way ECS deploys, on the sandbox: blue/green, linear and canary
//! judged by the service deployment (stages, alarms, the circuit breaker, PAUSE hooks),
//! rollbacks through StopServiceDeployment, `deckhand continue`, `--wait-until`, and the
//! fallback to `deployments[]` where ECS has no ServiceDeployments API.

use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentAlarms, DeploymentConfiguration, DeploymentLifecycleHook,
    DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType, DeploymentStrategy,
    LinearConfiguration,
};
use aws_sdk_ecs::Client;
use deckhand_sandbox::{Options, Sandbox};

use crate::bed::{Bed, Run};
use crate::deploy::command::{broken_image, deploy, deploy_args, good_image, run, service_td};
use crate::faults::{expect_service, finished};
use crate::rollout::start_until;
use crate::sandbox::{
    completed_on, container, control, register, sandbox_with, strategy_config, test_options,
    wait_until,
};

/// A sandbox whose minutes pass quickly (a bake of 1 minute lasts 1.2 s), with service `web`
/// of a good revision, to be deployed with `config`; returns the good revision.
async fn service_with(config: DeploymentConfiguration) -> (Sandbox, Client, String) {
    let bed = Bed::get();
    let (sandbox, client) = sandbox_with(Options {
        time_scale: 0.02,
        ..test_options()
    })
    .await;
    let good = register(&client, "web", container(&bed, &["sleep", "600"])).await;
    client
        .create_cluster()
        .cluster_name("c")
        .send()
        .await
        .unwrap();
    client
        .create_service()
        .cluster("c")
        .service_name("web")
        .task_definition(&good)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    wait_until(&client, "web", "initial rollout", |s| {
        completed_on(s, &good)
    })
    .await;
    // The strategy from here on (a change of configuration alone starts no deployment): the
    // first rollout neither bakes nor pauses.
    client
        .update_service()
        .cluster("c")
        .service("web")
        .deployment_configuration(config)
        .send()
        .await
        .unwrap();
    control(&sandbox, "calls", "");
    (sandbox, client, good)
}

/// The deploy's arguments for `image`, quick polling, JSON, then `extra`.
fn args<'a>(image: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut more = vec!["--output", "json", "--poll", "1s"];
    more.extend_from_slice(extra);
    deploy_args(&["--image", image], &more)
}

/// How many times the sandbox was asked `operation`.
fn calls(sandbox: &Sandbox, operation: &str) -> u64 {
    let key = format!("ECS.{operation}");
    sandbox.calls().get(&key).copied().unwrap_or(0)
}

/// A blue/green service that pauses after scaling up, and a deploy waiting at the pause.
async fn paused() -> (Sandbox, Client, String, crate::bed::Running) {
    let bed = Bed::get();
    let mut config = strategy_config(DeploymentStrategy::BlueGreen, 0, false);
    config.lifecycle_hooks = Some(vec![DeploymentLifecycleHook::builder()
        .target_type(DeploymentLifecycleHookTargetType::Pause)
        .lifecycle_stages(DeploymentLifecycleHookStage::PostScaleUp)
        .build()]);
    let (sandbox, client, good) = service_with(config).await;
    let image = good_image(&bed).await;
    let running = start_until(
        &sandbox,
        &args(&image, &["--ci", "github"]),
        "awaiting action",
    )
    .await;
    (sandbox, client, good, running)
}

/// `deckhand continue` for service `web`, with `extra`.
pub async fn resume(sandbox: &Sandbox, extra: &[&str]) -> Run {
    let mut argv = vec![
        "continue",
        "--cluster",
        "c",
        "--service",
        "web",
        "--output",
        "json",
    ];
    argv.extend_from_slice(extra);
    run(sandbox, None, &argv).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deploy_is_told_at_once_and_finishes_after_deckhand_continue() {
    let (sandbox, client, _good, running) = paused().await;
    let go = resume(&sandbox, &[]).await;
    go.expect_code(0);
    let went = go.json();
    assert_eq!(went["result"], "continued");
    assert_eq!(went["stage"], "POST_SCALE_UP");
    assert!(
        went["hook_id"].as_str().unwrap().starts_with("ecs-pause-"),
        "{went:#}"
    );
    let run = finished(running).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains(
            "::warning::the deployment is paused at POST_SCALE_UP awaiting action (hook ecs-pause-"
        ) && run
            .stderr
            .contains("`deckhand continue --cluster c --service web`"),
        "told as an annotation, with what to run:\n{}",
        run.stderr
    );
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    assert_eq!(
        service_td(&client).await,
        out["task_definition_arn"].as_str().unwrap()
    );
    // Nothing is paused any more: continue changes nothing.
    let again = resume(&sandbox, &[]).await;
    again.expect_code(1);
    assert!(
        again.stderr.contains("nothing was changed"),
        "{}",
        again.stderr
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deploy_rolled_back_with_continue_is_exit_3() {
    let (sandbox, client, good, running) = paused().await;
    let back = resume(&sandbox, &["--rollback"]).await;
    back.expect_code(0);
    assert_eq!(back.json()["result"], "rolling-back");
    let run = finished(running).await;
    run.expect_code(3);
    let out = run.json();
    assert_eq!(out["result"], "rolled-back");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .starts_with("ECS rolled the deployment back"),
        "{out:#}"
    );
    assert_eq!(service_td(&client).await, good);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_a_stage_ends_the_deploy_there_unfinished() {
    let bed = Bed::get();
    let (sandbox, _client, good) =
        service_with(strategy_config(DeploymentStrategy::BlueGreen, 600, false)).await;
    let image = good_image(&bed).await;
    let deploy = run(
        &sandbox,
        None,
        &args(&image, &["--wait-until", "bake_time"]),
    )
    .await;
    deploy.expect_code(0);
    let out = deploy.json();
    assert_eq!(out["result"], "reached-stage");
    let new = out["task_definition_arn"].as_str().unwrap().to_string();
    let e = expect_service(&out, "web", "reached-stage", Some(&new), &good);
    assert!(
        e["action"].as_str().unwrap().contains("deckhand status"),
        "{e:#}"
    );
    assert!(
        deploy.stderr.contains("reached BAKE_TIME"),
        "{}",
        deploy.stderr
    );
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
    let current = &status.json()["service_deployment"];
    assert_eq!(current["status"], "IN_PROGRESS", "{current:#}");
    assert_eq!(current["stage"], "BAKE_TIME");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_service_deployments_api_the_services_deployments_decide() {
    let bed = Bed::get();
    let (sandbox, client, _good) = crate::deploy::command::stable_service(true).await;
    control(&sandbox, "mode", r#"{"without_service_deployments": true}"#);
    let image = good_image(&bed).await;
    let good = deploy(&sandbox, &image, &[]).await;
    good.expect_code(0);
    let live = good.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(service_td(&client).await, live);
    // deckhand's own limit above ECS's breaker: ECS rolls back first, and deckhand, looking for
    // ECS's account of it, learns there is none to be had.
    let bad = deploy(
        &sandbox,
        &broken_image().await,
        &["--max-failed-tasks", "50"],
    )
    .await;
    bad.expect_code(3);
    assert!(
        bad.stderr.contains(
            "web: ECS has no ServiceDeployments API here; judging by the service's deployments"
        ),
        "{}",
        bad.stderr
    );
    for run in [&good, &bad] {
        assert!(
            !run.stderr.contains("service deployment arn:"),
            "{}",
            run.stderr
        );
    }
    let out = bad.json();
    assert_eq!(out["result"], "rolled-back");
    assert_eq!(service_td(&client).await, live);
    expect_service(&out, "web", "rolled-back", Some(&live), &live);
    sandbox.stop().await;
}

/// The strategies a service deployment walks stages for.
const STRATEGIES: [DeploymentStrategy; 3] = [
    DeploymentStrategy::BlueGreen,
    DeploymentStrategy::Linear,
    DeploymentStrategy::Canary,
];

/// `strategy` with a final bake of `bake` minutes; linear steps of 50 % and a 10 % canary, each
/// baking a minute.
fn config_for(strategy: &DeploymentStrategy, bake: i32) -> DeploymentConfiguration {
    let mut config = strategy_config(strategy.clone(), bake, false);
    match strategy {
        DeploymentStrategy::Linear => {
            config.linear_configuration = Some(
                LinearConfiguration::builder()
                    .step_percent(50.0)
                    .step_bake_time_in_minutes(1)
                    .build(),
            )
        }
        DeploymentStrategy::Canary => {
            config.canary_configuration = Some(
                CanaryConfiguration::builder()
                    .canary_percent(10.0)
                    .canary_bake_time_in_minutes(1)
                    .build(),
            )
        }
        _ => {}
    }
    config
}

/// The stage lines a strategy's successful deploy must show, beyond the stages' order: the
/// traffic shares, the bake time and the steps it takes.
fn stage_lines(strategy: &DeploymentStrategy) -> &'static [&'static str] {
    match strategy {
        DeploymentStrategy::BlueGreen => &["at BAKE_TIME (BLUE_GREEN, production traffic 100% to \
             the new revision, test traffic 100%, bake time 1 min, 1 of 1 new tasks running)"],
        DeploymentStrategy::Linear => &["(LINEAR, production traffic 50% to the new revision"],
        _ => &["(CANARY, production traffic 10% to the new revision"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_shows_its_stages_and_is_deployed_on_its_service_deployments_success() {
    let bed = Bed::get();
    let image = good_image(&bed).await;
    for strategy in STRATEGIES {
        let (sandbox, client, good) = service_with(config_for(&strategy, 1)).await;
        let run = run(&sandbox, None, &args(&image, &[])).await;
        run.expect_code(0);
        let out = run.json();
        assert_eq!(out["result"], "deployed", "{strategy:?}");
        let new = out["task_definition_arn"].as_str().unwrap().to_string();
        assert_eq!(service_td(&client).await, new, "{strategy:?}");
        expect_service(&out, "web", "deployed", Some(&new), &good);
        for line in stage_lines(&strategy)
            .iter()
            .chain(&["service deployment SUCCESSFUL"])
        {
            assert!(
                run.stderr.contains(line),
                "{strategy:?}: {line:?}:\n{}",
                run.stderr
            );
        }
        let at = |stage: &str| run.stderr.find(&format!("at {stage} ("));
        assert!(
            at("SCALE_UP").is_some() && at("SCALE_UP") < at("BAKE_TIME"),
            "{strategy:?}: stages in order:\n{}",
            run.stderr
        );
        sandbox.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_rolls_every_strategy_back_exit_3_naming_it_with_no_update_of_deckhands() {
    let bed = Bed::get();
    let image = good_image(&bed).await;
    for strategy in STRATEGIES {
        let mut config = config_for(&strategy, 60);
        config.alarms = Some(
            DeploymentAlarms::builder()
                .alarm_names("latency-high")
                .enable(true)
                .rollback(true)
                .build()
                .unwrap(),
        );
        let (sandbox, client, good) = service_with(config).await;
        let running = start_until(&sandbox, &args(&image, &[]), "at BAKE_TIME").await;
        control(
            &sandbox,
            "alarms",
            r#"{"name": "latency-high", "state": "ALARM"}"#,
        );
        let run = finished(running).await;
        run.expect_code(3);
        let out = run.json();
        assert_eq!(out["result"], "rolled-back", "{strategy:?}");
        let reason = out["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("ECS rolled the deployment back: alarm latency-high went off"),
            "{strategy:?}: {reason}"
        );
        assert!(!reason.contains("replaced ours"), "{strategy:?}: {reason}");
        assert_eq!(
            calls(&sandbox, "UpdateService"),
            1,
            "{strategy:?}: deckhand's own only"
        );
        assert_eq!(calls(&sandbox, "StopServiceDeployment"), 0, "{strategy:?}");
        assert_eq!(service_td(&client).await, good, "{strategy:?}");
        expect_service(&out, "web", "rolled-back", Some(&good), &good);
        sandbox.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_tasks_take_every_strategy_back_through_stop_service_deployment() {
    let image = broken_image().await;
    for strategy in STRATEGIES {
        let (sandbox, client, good) = service_with(config_for(&strategy, 30)).await;
        let run = run(&sandbox, None, &args(&image, &[])).await;
        run.expect_code(3);
        let out = run.json();
        assert_eq!(out["result"], "rolled-back", "{strategy:?}");
        assert!(
            run.stderr.contains("StopServiceDeployment (ROLLBACK)"),
            "{strategy:?}:\n{}",
            run.stderr
        );
        assert_eq!(calls(&sandbox, "StopServiceDeployment"), 1, "{strategy:?}");
        assert_eq!(
            calls(&sandbox, "UpdateService"),
            1,
            "{strategy:?}: no second UpdateService, the lifecycle does not run again"
        );
        wait_until(&client, "web", "back on the good revision", |s| {
            completed_on(s, &good)
        })
        .await;
        expect_service(&out, "web", "rolled-back", Some(&good), &good);
        sandbox.stop().await;
    }
}
