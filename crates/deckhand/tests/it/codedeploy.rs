//! `deckhand deploy`, `continue` and `rollback` for CODE_DEPLOY services, on the sandbox's
//! CodeDeploy: all at once and canary, a crashing replacement task set, a failing hook,
//! deckhand's own StopDeployment, someone else's deployment, and the manual rollback.

use crate::bed::{Bed, Run};
use crate::deploy::command::{broken_image, deploy_args, good_image, run, service_td};
use crate::rollback::rollback;
use crate::sandbox::control;
use crate::strategies::resume;
use crate::taskset::{blue_green, BlueGreen, GroupOptions};

/// `deckhand deploy --image image` to service `web`, JSON out, polling quickly, then `extra`.
async fn deploy(bg: &BlueGreen, image: &str, extra: &[&str]) -> Run {
    let mut more = vec!["--output", "json", "--poll", "300ms"];
    more.extend_from_slice(extra);
    run(&bg.sandbox, None, &deploy_args(&["--image", image], &more)).await
}

/// `deckhand deploy` started in the background and read until it waits for re-routing.
async fn until_waiting(bg: &BlueGreen, image: &str) -> crate::bed::Running {
    let args = deploy_args(
        &["--image", image],
        &["--output", "json", "--poll", "300ms"],
    );
    crate::rollout::start_until(&bg.sandbox, &args, "waiting for traffic re-routing").await
}

/// Waits for a background deckhand to exit (off the runtime's workers).
async fn finish(running: crate::bed::Running) -> Run {
    tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap()
}

/// Lets the sandbox's CodeDeploy wait on a crashing replacement task set instead of failing
/// its Install after three failed tasks: the replacement's tasks fail faster than a poll, and
/// a test of deckhand's own fail-fast must not race CodeDeploy's verdict.
fn leave_crashes_to_deckhand(bg: &BlueGreen) {
    control(
        &bg.sandbox,
        "mode",
        r#"{"replacement_failure_limit": 1000}"#,
    );
}

/// A group whose deployments wait an hour for traffic re-routing (`deckhand continue`).
async fn rerouting_waits() -> BlueGreen {
    blue_green(GroupOptions {
        ready_wait_minutes: Some(60),
        ..GroupOptions::default()
    })
    .await
}

/// How many times the sandbox was asked `operation` (`CodeDeploy.StopDeployment`).
fn calls(bg: &BlueGreen, operation: &str) -> u64 {
    bg.sandbox.calls().get(operation).copied().unwrap_or(0)
}

/// The AppSpec of a CodeDeploy deployment, as CodeDeploy holds it.
async fn appspec_of(bg: &BlueGreen, id: &str) -> serde_json::Value {
    let out = bg
        .codedeploy
        .get_deployment()
        .deployment_id(id)
        .send()
        .await
        .unwrap();
    let content = out
        .deployment_info()
        .and_then(|d| d.revision())
        .and_then(|r| r.app_spec_content())
        .and_then(|c| c.content())
        .unwrap()
        .to_string();
    serde_json::from_str(&content).unwrap()
}

/// The revision the service runs, and every task set's.
async fn task_sets(bg: &BlueGreen) -> (String, Vec<(String, String)>) {
    let out = bg
        .ecs
        .describe_services()
        .cluster(&bg.cluster)
        .services(&bg.service)
        .send()
        .await
        .unwrap();
    let s = &out.services()[0];
    (
        s.task_definition().unwrap_or_default().to_string(),
        s.task_sets()
            .iter()
            // A DRAINING task set is on its way out, its traffic gone.
            .filter(|t| t.status() != Some("DRAINING"))
            .map(|t| {
                (
                    t.status().unwrap_or_default().to_string(),
                    t.task_definition().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codedeploy_service_is_deployed_through_codedeploy_and_judged_by_it() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions::default()).await;
    let image = good_image(&bed).await;
    let out = deploy(&bg, &image, &[]).await;
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "deployed", "{}", out.all());
    let new = json["task_definition_arn"].as_str().unwrap().to_string();
    let id = json["deployment_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("d-"), "{}", out.all());
    assert_eq!(json["services"][0]["state"], "deployed");
    for line in [
        "CodeDeploy deployment group",
        "Install Succeeded",
        "AllowTraffic Succeeded",
        "traffic: ",
        "Succeeded",
        "deployed: web is stable on",
    ] {
        assert!(out.stderr.contains(line), "{line:?} in\n{}", out.all());
    }
    // ECS was never asked to change the task definition; CodeDeploy deployed it.
    assert_eq!(calls(&bg, "ECS.UpdateService"), 0);
    let spec = appspec_of(&bg, &id).await;
    let props = &spec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(props["TaskDefinition"], new.as_str());
    assert_eq!(
        props["LoadBalancerInfo"],
        serde_json::json!({"ContainerName": "app", "ContainerPort": 80})
    );
    let (running, sets) = task_sets(&bg).await;
    assert_eq!(running, new);
    assert_eq!(sets, vec![("PRIMARY".to_string(), new.clone())]);
    assert_eq!(service_td_of_bg(&bg).await, new);
    // Seen stable: the revision is marked verified, for `deckhand rollback`.
    let tags = bg
        .ecs
        .list_tags_for_resource()
        .resource_arn(&new)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == Some("deckhand:verified")),
        "{tags:?}"
    );
    bg.sandbox.stop().await;
}

async fn service_td_of_bg(bg: &BlueGreen) -> String {
    service_td(&bg.ecs).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_deployment_shows_each_traffic_shift() {
    let bed = Bed::get();
    use aws_sdk_codedeploy::types::{TimeBasedCanary, TrafficRoutingConfig, TrafficRoutingType};
    let bg = blue_green(GroupOptions {
        config: Some("canary-20-1".into()),
        routing: Some(
            TrafficRoutingConfig::builder()
                .r#type(TrafficRoutingType::TimeBasedCanary)
                .time_based_canary(
                    TimeBasedCanary::builder()
                        .canary_percentage(20)
                        .canary_interval(1)
                        .build(),
                )
                .build(),
        ),
        ..GroupOptions::default()
    })
    .await;
    let image = good_image(&bed).await;
    let out = deploy(&bg, &image, &[]).await;
    out.expect_code(0);
    let (old, new) = (
        bg.good.rsplit('/').next().unwrap().to_string(),
        out.json()["task_definition_arn"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string(),
    );
    for line in [
        "canary: 20% first, the rest after 1 minute".to_string(),
        format!("traffic: blue {old} 80%, green {new} 20%"),
        format!("deployed: web is stable on {new}"),
    ] {
        assert!(out.stderr.contains(&line), "{line:?} in\n{}", out.all());
    }
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_replacement_is_stopped_by_deckhand_and_rolled_back_by_codedeploy() {
    let bg = blue_green(GroupOptions::default()).await;
    leave_crashes_to_deckhand(&bg);
    let broken = broken_image().await;
    let out = deploy(&bg, &broken, &["--max-failed-tasks", "2"]).await;
    out.expect_code(3);
    let json = out.json();
    assert_eq!(json["result"], "rolled-back", "{}", out.all());
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("tasks of the replacement task set stopped as failures"),
        "{}",
        out.all()
    );
    assert!(!json["failed_tasks"].as_array().unwrap().is_empty());
    assert_eq!(calls(&bg, "CodeDeploy.StopDeployment"), 1);
    for line in [
        "StopDeployment of",
        "CodeDeploy is rolling it back",
        "rolled back: web is stable on",
    ] {
        assert!(out.stderr.contains(line), "{line:?} in\n{}", out.all());
    }
    let (running, sets) = task_sets(&bg).await;
    assert_eq!(running, bg.good);
    assert_eq!(sets, vec![("PRIMARY".to_string(), bg.good.clone())]);
    assert_eq!(json["services"][0]["state"], "rolled-back");
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_hook_is_named_and_codedeploys_own_rollback_is_followed() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions {
        auto_rollback: true,
        ..GroupOptions::default()
    })
    .await;
    control(
        &bg.sandbox,
        "hooks",
        r#"{"function": "smoke-test", "result": "Failed"}"#,
    );
    let image = good_image(&bed).await;
    let out = deploy(
        &bg,
        &image,
        &[
            "--codedeploy-hook",
            "AfterAllowTestTraffic=smoke-test",
            "--codedeploy-hook",
            "beforeinstall=arn:aws:lambda:us-east-1:123456789012:function:warm-up",
        ],
    )
    .await;
    out.expect_code(3);
    let json = out.json();
    let reason = json["reason"].as_str().unwrap();
    assert!(
        reason.contains("AfterAllowTestTraffic hook failed"),
        "{}",
        out.all()
    );
    // CodeDeploy rolled back by itself: deckhand stopped nothing.
    assert_eq!(calls(&bg, "CodeDeploy.StopDeployment"), 0);
    let spec = appspec_of(&bg, json["deployment_id"].as_str().unwrap()).await;
    assert_eq!(
        spec["Hooks"],
        serde_json::json!([
            {"AfterAllowTestTraffic": "smoke-test"},
            {"BeforeInstall": "arn:aws:lambda:us-east-1:123456789012:function:warm-up"}
        ])
    );
    assert_eq!(task_sets(&bg).await.0, bg.good);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_waiting_for_rerouting_goes_on_with_continue_and_back_on_sigterm() {
    let bed = Bed::get();
    let bg = rerouting_waits().await;
    let image = good_image(&bed).await;

    // deckhand continue: the waiting deploy goes on to its verdict.
    let waiting = until_waiting(&bg, &image).await;
    let continued = resume(&bg.sandbox, &[]).await;
    continued.expect_code(0);
    assert_eq!(
        continued.json()["result"],
        "continued",
        "{}",
        continued.all()
    );
    let out = finish(waiting).await;
    out.expect_code(0);
    let deployed = out.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(task_sets(&bg).await.0, deployed);

    // Nothing waits now: continue changes nothing (exit 1).
    let nothing = resume(&bg.sandbox, &[]).await;
    nothing.expect_code(1);

    // SIGTERM while it waits: deckhand stops it with CodeDeploy's rollback.
    let image = good_image(&bed).await;
    let running = until_waiting(&bg, &image).await;
    running.signal("TERM");
    let out = finish(running).await;
    out.expect_code(3);
    assert_eq!(out.json()["result"], "rolled-back", "{}", out.all());
    assert_eq!(calls(&bg, "CodeDeploy.StopDeployment"), 1);
    assert_eq!(task_sets(&bg).await.0, deployed);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_elses_deployment_replacing_ours_is_exit_4_and_not_rolled_back_over() {
    let bed = Bed::get();
    let bg = rerouting_waits().await;
    let image = good_image(&bed).await;
    let running = until_waiting(&bg, &image).await;
    let ours = bg
        .codedeploy
        .list_deployments()
        .application_name(&bg.application)
        .deployment_group_name(&bg.group)
        .send()
        .await
        .unwrap()
        .deployments()[0]
        .clone();
    // Someone stops ours, without a rollback, and deploys the good revision themselves.
    bg.codedeploy
        .stop_deployment()
        .deployment_id(&ours)
        .auto_rollback_enabled(false)
        .send()
        .await
        .unwrap();
    let theirs = crate::taskset::create_deployment(&bg, &bg.good, &[]).await;
    let out = finish(running).await;
    out.expect_code(4);
    let json = out.json();
    assert_eq!(json["result"], "failed", "{}", out.all());
    assert_eq!(json["services"][0]["state"], "taken-over", "{}", out.all());
    assert!(out.stderr.contains(&theirs), "{}", out.all());
    // Only the test's own StopDeployment: deckhand did not roll back over theirs.
    assert_eq!(calls(&bg, "CodeDeploy.StopDeployment"), 1);
    assert_eq!(calls(&bg, "CodeDeploy.CreateDeployment"), 2);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deckhand_rollback_deploys_the_previous_verified_revision_through_codedeploy() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions::default()).await;
    let first = deploy(&bg, &good_image(&bed).await, &[]).await;
    first.expect_code(0);
    let v2 = first.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let second = deploy(&bg, &good_image(&bed).await, &[]).await;
    second.expect_code(0);
    let v3 = second.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(task_sets(&bg).await.0, v3);

    let out = run(&bg.sandbox, None, &rollback(&[])).await;
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "rolled-back", "{}", out.all());
    assert_eq!(json["task_definition_arn"], v2.as_str());
    assert!(json["deployment_id"].as_str().unwrap().starts_with("d-"));
    let (running, sets) = task_sets(&bg).await;
    assert_eq!(running, v2);
    assert_eq!(sets, vec![("PRIMARY".to_string(), v2.clone())]);
    assert_eq!(calls(&bg, "ECS.UpdateService"), 0);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deckhand_rollback_during_a_deployment_stops_it_and_stays_on_the_original() {
    let bed = Bed::get();
    let bg = rerouting_waits().await;

    // The original task set is the one ECS made with the service: no CodeDeploy deployment of
    // it ever succeeded, yet it is steady, and it is where a rollback of the first deploy goes.
    let waiting = until_waiting(&bg, &good_image(&bed).await).await;
    let out = run(&bg.sandbox, None, &rollback(&[])).await;
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "rolled-back", "{}", out.all());
    assert_eq!(
        json["task_definition_arn"],
        bg.good.as_str(),
        "{}",
        out.all()
    );
    assert_eq!(
        task_sets(&bg).await.1,
        vec![("PRIMARY".to_string(), bg.good.clone())]
    );
    // CodeDeploy's rollback put it back: no deployment of its own.
    assert_eq!(calls(&bg, "CodeDeploy.CreateDeployment"), 1);
    assert_eq!(calls(&bg, "CodeDeploy.StopDeployment"), 1);
    finish(waiting).await.expect_code(3);

    // A verified v2 on PRIMARY, v3 waiting: the rollback goes back to v2, not before it.
    let waiting = until_waiting(&bg, &good_image(&bed).await).await;
    resume(&bg.sandbox, &[]).await.expect_code(0);
    let v2 = finish(waiting).await;
    v2.expect_code(0);
    let v2 = v2.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let waiting = until_waiting(&bg, &good_image(&bed).await).await;
    let out = run(&bg.sandbox, None, &rollback(&[])).await;
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "rolled-back", "{}", out.all());
    assert_eq!(json["task_definition_arn"], v2.as_str(), "{}", out.all());
    assert_eq!(task_sets(&bg).await.1, vec![("PRIMARY".to_string(), v2)]);
    assert_eq!(calls(&bg, "CodeDeploy.CreateDeployment"), 3);
    finish(waiting).await.expect_code(3);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_cannot_be_found_or_is_anothers_changes_nothing() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions::default()).await;
    let image = good_image(&bed).await;
    let registered = calls(&bg, "ECS.RegisterTaskDefinition");
    let wrong = deploy(
        &bg,
        &image,
        &[
            "--codedeploy-application",
            &bg.application,
            "--codedeploy-deployment-group",
            "no-such-group",
        ],
    )
    .await;
    wrong.expect_code(1);
    assert!(
        wrong.stderr.contains(&format!(
            "CodeDeploy application {} has no deployment group no-such-group",
            bg.application
        )) && wrong.stderr.contains("nothing was changed"),
        "{}",
        wrong.all()
    );
    // An application with no groups; a group name that matches none.
    let none = deploy(&bg, &image, &["--codedeploy-application", "another-app"]).await;
    none.expect_code(1);
    assert!(
        none.stderr
            .contains("no CodeDeploy deployment group matches CodeDeploy application another-app"),
        "{}",
        none.all()
    );
    let named = deploy(&bg, &image, &["--codedeploy-deployment-group", "nope"]).await;
    named.expect_code(1);
    assert!(
        named
            .stderr
            .contains("no CodeDeploy deployment group matches deployment group nope"),
        "{}",
        named.all()
    );
    assert_eq!(calls(&bg, "ECS.RegisterTaskDefinition"), registered);
    assert_eq!(calls(&bg, "CodeDeploy.CreateDeployment"), 0);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_mixing_controllers_is_all_or_nothing() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions::default()).await;
    let api = crate::sandbox::register(
        &bg.ecs,
        "api",
        crate::sandbox::container(&bed, &["sleep", "600"]),
    )
    .await;
    crate::sandbox::create_service(&bg.ecs, "api", &api, 1, false).await;
    crate::sandbox::wait_until(&bg.ecs, "api", "initial rollout", |s| {
        crate::sandbox::completed_on(s, &api)
    })
    .await;
    let both = |image: &str| {
        vec![
            "deploy".to_string(),
            "--cluster".into(),
            "c".into(),
            "--service".into(),
            "web".into(),
            "--service".into(),
            "api".into(),
            "--container".into(),
            "app".into(),
            "--image".into(),
            image.to_string(),
            "--output".into(),
            "json".into(),
            "--poll".into(),
            "300ms".into(),
            "--timeout".into(),
            "60s".into(),
            "--max-failed-tasks".into(),
            "2".into(),
        ]
    };

    let image = good_image(&bed).await;
    // A CodeDeploy hook for a deploy with no CODE_DEPLOY service would never run: exit 2.
    let registered = calls(&bg, "ECS.RegisterTaskDefinition");
    let hook = run(
        &bg.sandbox,
        None,
        &[
            "deploy",
            "--cluster",
            "c",
            "--service",
            "api",
            "--container",
            "app",
            "--image",
            &image,
            "--codedeploy-hook",
            "AfterAllowTestTraffic=smoke-test",
        ],
    )
    .await;
    hook.expect_code(2);
    assert!(
        hook.stderr.contains(
            "--codedeploy-hook set how a CODE_DEPLOY service is deployed, but service api \
             uses the ECS deployment controller"
        ),
        "{}",
        hook.all()
    );
    assert_eq!(calls(&bg, "ECS.RegisterTaskDefinition"), registered);
    let args = both(&image);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&bg.sandbox, None, &args).await;
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "deployed", "{}", out.all());
    let states: Vec<&str> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["deployed", "deployed"], "{}", out.all());
    let web_v2 = task_sets(&bg).await.0;
    let api_v2 = crate::deploy::command::service_td_of(&bg.ecs, "api").await;
    assert_ne!(api_v2, api);

    // Both fail: CodeDeploy takes web back, ECS api, and the deploy is exit 3.
    leave_crashes_to_deckhand(&bg);
    let broken = broken_image().await;
    let args = both(&broken);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&bg.sandbox, None, &args).await;
    out.expect_code(3);
    let json = out.json();
    assert_eq!(json["result"], "rolled-back", "{}", out.all());
    assert_eq!(json["services"][0]["state"], "rolled-back", "{}", out.all());
    assert_eq!(json["services"][1]["state"], "rolled-back", "{}", out.all());
    assert_eq!(task_sets(&bg).await.0, web_v2);
    assert_eq!(
        crate::deploy::command::service_td_of(&bg.ecs, "api").await,
        api_v2
    );
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_until_a_codedeploy_event_ends_there_and_an_alarm_is_named() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions {
        ready_wait_minutes: Some(60),
        auto_rollback: true,
        alarms: vec!["latency".into()],
        ..GroupOptions::default()
    })
    .await;
    let image = good_image(&bed).await;
    let out = deploy(&bg, &image, &["--wait-until", "afterallowtesttraffic"]).await;
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "reached-stage", "{}", out.all());
    assert_eq!(json["services"][0]["state"], "reached-stage");
    assert!(
        out.stderr.contains("reached AfterAllowTestTraffic"),
        "{}",
        out.all()
    );
    // An ECS stage for a CODE_DEPLOY service is a usage error, before anything is registered.
    let registered = calls(&bg, "ECS.RegisterTaskDefinition");
    let stage = deploy(&bg, &image, &["--wait-until", "BAKE_TIME"]).await;
    stage.expect_code(2);
    assert!(
        stage.stderr.contains("CodeDeploy's lifecycle events"),
        "{}",
        stage.all()
    );
    assert_eq!(calls(&bg, "ECS.RegisterTaskDefinition"), registered);

    // The deployment left waiting is one deckhand waits for; then an alarm stops the next.
    let id = json["deployment_id"].as_str().unwrap().to_string();
    bg.codedeploy
        .continue_deployment()
        .deployment_id(&id)
        .deployment_wait_type(aws_sdk_codedeploy::types::DeploymentWaitType::ReadyWait)
        .send()
        .await
        .unwrap();
    crate::taskset::wait_deployment(&bg, &id, &["Succeeded"]).await;
    let before = task_sets(&bg).await.0;
    let running = until_waiting(&bg, &good_image(&bed).await).await;
    control(
        &bg.sandbox,
        "alarms",
        r#"{"name": "latency", "state": "ALARM"}"#,
    );
    let out = finish(running).await;
    out.expect_code(3);
    let json = out.json();
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("a CloudWatch alarm went off"),
        "{}",
        out.all()
    );
    assert_eq!(task_sets(&bg).await.0, before);
    bg.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_codedeploy_does_not_roll_back_needs_a_person() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions::default()).await;
    crate::taskset::set_hook(&bg, "smoke-test", "Failed");
    let out = deploy(
        &bg,
        &good_image(&bed).await,
        &["--codedeploy-hook", "AfterAllowTestTraffic=smoke-test"],
    )
    .await;
    out.expect_code(4);
    let json = out.json();
    assert_eq!(json["result"], "failed", "{}", out.all());
    assert!(out.stderr.contains("without a rollback"), "{}", out.all());
    assert_eq!(json["services"][0]["state"], "not-confirmed");
    assert_eq!(calls(&bg, "CodeDeploy.StopDeployment"), 0);
    bg.sandbox.stop().await;
}

/// The group's deployments deckhand created (creator `user`), CodeDeploy's rollbacks left out.
async fn users_deployments(bg: &BlueGreen) -> Vec<String> {
    let ids = bg
        .codedeploy
        .list_deployments()
        .application_name(&bg.application)
        .deployment_group_name(&bg.group)
        .send()
        .await
        .unwrap()
        .deployments()
        .to_vec();
    let mut users = Vec::new();
    for id in ids {
        let d = crate::taskset::deployment(bg, &id).await;
        if d.creator().map(|c| c.as_str()) == Some("user") {
            users.push(id);
        }
    }
    users
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_create_and_stop_answers_start_one_deployment_and_still_roll_back() {
    let bed = Bed::get();
    let bg = blue_green(GroupOptions::default()).await;
    // Every CreateDeployment is applied and its answer lost: deckhand finds the one it
    // started instead of starting another. (A good image: CodeDeploy's own verdict on a
    // crashing one could come before deckhand's first look, and is not what this tests.)
    control(
        &bg.sandbox,
        "faults",
        r#"{"lost_answer_rate": 1.0, "operations": ["CreateDeployment"]}"#,
    );
    let out = deploy(&bg, &good_image(&bed).await, &["--timeout", "240s"]).await;
    control(&bg.sandbox, "faults", "{}");
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["result"], "deployed", "{}", out.all());
    assert!(
        out.stderr.contains("CodeDeploy CreateDeployment") && out.stderr.contains("trying again"),
        "the answer was lost and the call tried again:\n{}",
        out.all()
    );
    let users = users_deployments(&bg).await;
    assert_eq!(users.len(), 1, "{users:?}\n{}", out.all());
    assert_eq!(json["deployment_id"], users[0].as_str());
    let deployed = json["task_definition_arn"].as_str().unwrap().to_string();
    assert_eq!(task_sets(&bg).await.0, deployed);

    // Every StopDeployment is applied and its answer lost, so no answer ever says it took:
    // deckhand reads the deployment stopped and follows CodeDeploy's rollback to the
    // revision deployed above.
    leave_crashes_to_deckhand(&bg);
    control(
        &bg.sandbox,
        "faults",
        r#"{"lost_answer_rate": 1.0, "operations": ["StopDeployment"]}"#,
    );
    let out = deploy(
        &bg,
        &broken_image().await,
        &["--max-failed-tasks", "2", "--timeout", "240s"],
    )
    .await;
    control(&bg.sandbox, "faults", "{}");
    out.expect_code(3);
    assert_eq!(out.json()["result"], "rolled-back", "{}", out.all());
    assert!(
        calls(&bg, "CodeDeploy.StopDeployment") >= 1,
        "{}",
        out.all()
    );
    assert_eq!(users_deployments(&bg).await.len(), 2, "{}", out.all());
    let (running, sets) = task_sets(&bg).await;
    assert_eq!(running, deployed);
    assert_eq!(sets, vec![("PRIMARY".to_string(), deployed.clone())]);
    bg.sandbox.stop().await;
}
