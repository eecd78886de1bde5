//! The fault matrix: `deckhand deploy` on the sandbox while ECS misbehaves (throttling, 5xx,
//! dropped connections, lost answers, latency, the endpoint going away), while the process is
//! signalled or killed, while another deploy runs, and across a fleet. Each test asserts the exit
//! code, the revision the service runs at the end (read with the SDK) and what the result's
//! `services[]` says of it.
//!
//! Every row and the test that covers it:
//!
//! | row | expected | test |
//! |---|---|---|
//! | crash, no circuit breaker | 3, previous revision | `deploy::command::a_broken_image_is_rolled_back_and_exits_3` |
//! | crash, circuit breaker rolls back | 3, previous revision | `deploy::command::a_rollback_by_ecs_is_reported_as_3_never_0` |
//! | unplaceable tasks | 3, previous revision | `rollout::an_unplaceable_revision_is_rolled_back_and_exits_3` |
//! | missing image (CannotPullContainerError) | 3, previous revision | [`a_missing_image_is_rolled_back_and_exits_3`] |
//! | desiredCount 0 | 0, `unverified`, new revision | `deploy::command::a_service_with_no_tasks_is_unverified_not_deployed` |
//! | SIGTERM during the watch | 3, previous revision | `rollout::sigterm_during_the_watch_rolls_back_and_exits_3` |
//! | someone else's UpdateService before ours | waits, then 0 | `rollout::another_pipelines_deployment_is_waited_for_or_refused` |
//! | someone else's UpdateService during our watch | 4, theirs left alone | [`someone_elses_update_during_the_watch_is_left_alone_and_exits_4`] |
//! | throttling burst at rollback time | 3, previous revision | [`a_throttling_burst_at_rollback_time_is_waited_out_and_exits_3`] |
//! | 5xx bursts during the watch | 0, new revision | [`server_errors_during_the_watch_do_not_change_the_verdict`] |
//! | 5xx on every call, registration to rollback | 3, previous revision | [`server_errors_from_registration_to_rollback_do_not_change_the_verdict`] |
//! | TagResource throttled after a verified deploy | 0, the revision still marked verified | [`a_throttled_verified_mark_is_tried_again`] |
//! | dropped connections | 0, new revision | [`dropped_connections_do_not_change_the_verdict`] |
//! | UpdateService applied, answer lost | 0, new revision, said in the log | [`an_update_whose_answer_was_lost_is_found_and_followed`] |
//! | high latency | 0, new revision | [`high_latency_does_not_change_the_verdict`] |
//! | the ECS endpoint going away mid-watch | 4, `failed`, state unknown | [`the_endpoint_going_away_mid_watch_is_exit_4_and_the_state_unknown`] |
//! | SIGINT twice | 4, says where the service is | [`a_second_sigint_stops_the_rollback_wait_and_says_where_the_service_is`] |
//! | SIGKILL, then status and rollback | status 0, rollback 0, previous revision | [`after_a_sigkill_status_shows_the_deployment_and_rollback_undoes_it`] |
//! | two deploys started together | one revision live; each exit matches its own revision | [`two_deploys_started_together_each_say_what_became_of_their_revision`] |
//! | 20 services, 50 % throttling from the first UpdateService, good image | 0, all 20 on the new revision | [`a_fleet_of_20_under_heavy_throttling_deploys`] |
//! | the same, one service's image broken | 3, all 20 back | [`a_fleet_of_20_under_heavy_throttling_goes_back_together`] |
//!
//! Faults are held by the sandbox, so a fault starts and ends at a point of deckhand's own log
//! (read with [`Running`]) or around a whole run; the one timed hold (the throttling burst) is
//! the fault's duration, not a wait for deckhand.

use std::time::Duration;

use aws_sdk_ecs::Client;
use deckhand_sandbox::{Options, Sandbox};
use serde_json::Value;

use crate::bed::{Bed, Run, Running};
use crate::deploy::command::{
    deploy, deploy_args, good_image, run, service_td, service_td_of, stable_service,
};
use crate::rollout::{slow_revision, start_until, write_json};
use crate::sandbox::{
    completed_on, container, control, create_service, register, sandbox_with, test_options,
    wait_until,
};

/// A sandbox whose tasks without a health check count as healthy after `stable_after`, with
/// service `web` (family `web`, container `app`) stable on its first revision, returned.
async fn service_on(stable_after: Duration) -> (Sandbox, Client, String) {
    let bed = Bed::get();
    let (sandbox, client) = sandbox_with(Options {
        stable_after,
        ..test_options()
    })
    .await;
    let first = register(&client, "web", container(&bed, &["sleep", "600"])).await;
    create_service(&client, "web", &first, 1, false).await;
    wait_until(&client, "web", "initial rollout", |s| {
        completed_on(s, &first)
    })
    .await;
    (sandbox, client, first)
}

/// Reads `running`'s log until a line contains `line` (off the runtime's workers).
async fn read_until(mut running: Running, line: &str) -> Running {
    let line = line.to_string();
    tokio::task::spawn_blocking(move || {
        running.wait_for_line(&line);
        running
    })
    .await
    .unwrap()
}

/// Waits for `running` to exit and collects its output (off the runtime's workers).
pub async fn finished(running: Running) -> Run {
    tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap()
}

/// `service`'s entry in a deploy result's `services[]`.
fn entry<'a>(out: &'a Value, service: &str) -> &'a Value {
    out["services"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["service"] == service))
        .unwrap_or_else(|| panic!("services[] has no entry for {service}: {out:#}"))
}

/// Asserts what a deploy result says of `service`: the revision it goes back to on failure, what
/// it runs at the end (when `running` is given), its state, and that nothing is asked of a person
/// once it is deployed. Returns the entry.
pub fn expect_service<'a>(
    out: &'a Value,
    service: &str,
    state: &str,
    running: Option<&str>,
    target: &str,
) -> &'a Value {
    let e = entry(out, service);
    assert_eq!(
        e["rollback_target"], target,
        "{service}'s rollback target: {e:#}"
    );
    assert_eq!(e["state"], state, "{service}'s state: {e:#}");
    if let Some(running) = running {
        assert_eq!(
            e["running_task_definition_arn"], running,
            "what {service} runs at the end: {e:#}"
        );
    }
    let action = e["action"]
        .as_str()
        .unwrap_or_else(|| panic!("{service}: no action: {e:#}"));
    if state == "deployed" {
        assert_eq!(action, "", "{service} is deployed: nothing to do: {e:#}");
    }
    e
}

/// Asserts that the result says `service` needs a person: a state that is not an answer
/// (unknown, not confirmed, left on a new revision, taken over by another deployment) and an
/// action saying what to do. Returns
/// the entry.
fn expect_needs_person<'a>(
    out: &'a Value,
    service: &str,
    running: Option<&str>,
    target: &str,
) -> &'a Value {
    let e = entry(out, service);
    let state = e["state"].as_str().unwrap_or_default();
    assert!(
        ["unknown", "not-confirmed", "on-new-revision", "taken-over"].contains(&state),
        "{service} needs a person, its state says {state:?}: {e:#}"
    );
    expect_service(out, service, state, running, target);
    assert!(
        !e["action"].as_str().unwrap_or_default().is_empty(),
        "{service}: the result says what a person should do: {e:#}"
    );
    e
}

/// The revision deckhand registered for `service`, from its result.
fn registered<'a>(out: &'a Value, service: &str) -> &'a str {
    entry(out, service)["task_definition_arn"]
        .as_str()
        .unwrap_or_default()
}

/// A file with a revision of `web` whose tasks stay unhealthy for half a minute: a watch that
/// stays in progress. The directory must outlive the run.
fn slow_file(bed: &Bed) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_json(&dir, "slow.json", &slow_revision(bed));
    (dir, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_burst_at_rollback_time_is_waited_out_and_exits_3() {
    let bed = Bed::get();
    let (sandbox, client, _first) = service_on(Duration::from_millis(500)).await;
    let second = register(&client, "web", container(&bed, &["sleep", "601"])).await;
    client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&second)
        .send()
        .await
        .unwrap();
    wait_until(&client, "web", "on the second revision", |s| {
        completed_on(s, &second)
    })
    .await;
    let image = good_image(&bed).await;
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &["--poll", "1s", "--timeout", "120s", "--output", "json"],
        ),
        "waiting: ",
    )
    .await;
    // A cancelled CI job while ECS throttles every call: the rollback meets the burst.
    control(&sandbox, "faults", r#"{"throttle_rate": 1}"#);
    running.signal("TERM");
    let running = read_until(running, "interrupted").await;
    // The burst lasts longer than the SDK's own retries of one call (6 attempts, at most 17 s
    // of backoff): holding the fault, not waiting for deckhand.
    tokio::time::sleep(Duration::from_secs(25)).await;
    control(&sandbox, "faults", "{}");
    let run = finished(running).await;
    run.expect_code(3);
    let out = run.json();
    assert_eq!(out["result"], "rolled-back", "{}", run.stderr);
    assert_eq!(out["rolled_back"], true);
    let new = registered(&out, "web").to_string();
    assert!(new.ends_with("web:3"), "{new}");
    wait_until(&client, "web", "back on the second revision", |s| {
        completed_on(s, &second)
    })
    .await;
    expect_service(&out, "web", "rolled-back", Some(&second), &second);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_during_the_watch_do_not_change_the_verdict() {
    let bed = Bed::get();
    // Tasks take 4 s to count: a watch of many polls.
    let (sandbox, client, first) = service_on(Duration::from_secs(4)).await;
    let image = good_image(&bed).await;
    let running = start_until(
        &sandbox,
        &deploy_args(&["--image", &image], &["--output", "json"]),
        "waiting: ",
    )
    .await;
    control(&sandbox, "faults", r#"{"error_rate": 0.3}"#);
    let run = finished(running).await;
    control(&sandbox, "faults", "{}");
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    let new = registered(&out, "web").to_string();
    assert_eq!(service_td(&client).await, new);
    expect_service(&out, "web", "deployed", Some(&new), &first);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_from_registration_to_rollback_do_not_change_the_verdict() {
    let (sandbox, client, good) = stable_service(false).await;
    let image = crate::deploy::command::broken_image().await;
    // Every ECS and CloudWatch Logs call of the run, RegisterTaskDefinition, UpdateService and
    // the rollback's among them, may be answered with HTTP 500.
    control(&sandbox, "faults", r#"{"error_rate": 0.3}"#);
    let run = deploy(&sandbox, &image, &[]).await;
    control(&sandbox, "faults", "{}");
    run.expect_code(3);
    let out = run.json();
    assert_eq!(out["result"], "rolled-back");
    assert_eq!(service_td(&client).await, good);
    expect_service(&out, "web", "rolled-back", Some(&good), &good);
    let calls = sandbox.calls();
    let count = |op: &str| calls.get(op).copied().unwrap_or(0);
    assert!(
        count("ECS.UpdateService") + count("ECS.StopServiceDeployment") >= 2,
        "deckhand's update and its rollback: {calls:?}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_verified_mark_is_tried_again() {
    let bed = Bed::get();
    let (sandbox, _client, _first) = stable_service(false).await;
    let image = good_image(&bed).await;
    // Only TagResource is throttled, past the SDK's own retries, until deckhand says it tries
    // again; then the throttling ends.
    control(
        &sandbox,
        "faults",
        r#"{"throttle_rate": 1, "operations": ["TagResource"]}"#,
    );
    let running = start_until(
        &sandbox,
        &deploy_args(&["--image", &image], &["--output", "json"]),
        "marking it verified: ",
    )
    .await;
    control(&sandbox, "faults", "{}");
    let run = finished(running).await;
    run.expect_code(0);
    assert!(
        !run.stderr.contains("could not be marked as verified"),
        "{}",
        run.stderr
    );
    let new = registered(&run.json(), "web").to_string();
    let tags = sandbox
        .task_definition(&new)
        .await
        .unwrap()
        .tags
        .to_string();
    assert!(tags.contains("deckhand:verified"), "{tags}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_do_not_change_the_verdict() {
    let bed = Bed::get();
    let (sandbox, client, first) = service_on(Duration::from_secs(2)).await;
    let image = good_image(&bed).await;
    // Every stage, from the first DescribeServices on.
    control(&sandbox, "faults", r#"{"drop_rate": 0.3}"#);
    let run = deploy(&sandbox, &image, &[]).await;
    control(&sandbox, "faults", "{}");
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    let new = registered(&out, "web").to_string();
    assert_eq!(service_td(&client).await, new);
    expect_service(&out, "web", "deployed", Some(&new), &first);
    // A dropped call is not applied: its retries registered one revision, not several.
    let listed = client.list_task_definitions().send().await.unwrap();
    assert_eq!(listed.task_definition_arns(), [first, new]);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_was_lost_is_found_and_followed() {
    let bed = Bed::get();
    let (sandbox, client, first) = service_on(Duration::from_millis(500)).await;
    let image = good_image(&bed).await;
    // Every UpdateService is applied and its answer lost, retries included.
    control(
        &sandbox,
        "faults",
        r#"{"lost_answer_rate": 1, "operations": ["UpdateService"]}"#,
    );
    let run = deploy(&sandbox, &image, &[]).await;
    control(&sandbox, "faults", "{}");
    run.expect_code(0);
    assert!(
        run.stderr.contains("but the service took the update"),
        "the log says the update happened:\n{}",
        run.stderr
    );
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    let new = registered(&out, "web").to_string();
    assert_eq!(service_td(&client).await, new);
    let e = expect_service(&out, "web", "deployed", Some(&new), &first);
    assert!(
        e["deployment_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ecs-svc/"),
        "the deployment it followed: {e:#}"
    );
    assert!(sandbox.calls()["ECS.UpdateService"] >= 1);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_latency_does_not_change_the_verdict() {
    let bed = Bed::get();
    let (sandbox, client, first) = service_on(Duration::from_millis(500)).await;
    let image = good_image(&bed).await;
    control(&sandbox, "faults", r#"{"latency_ms": 1500}"#);
    let run = deploy(&sandbox, &image, &["--timeout", "90s"]).await;
    control(&sandbox, "faults", "{}");
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    let new = registered(&out, "web").to_string();
    assert_eq!(service_td(&client).await, new);
    expect_service(&out, "web", "deployed", Some(&new), &first);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_going_away_mid_watch_is_exit_4_and_the_state_unknown() {
    let bed = Bed::get();
    let (sandbox, client, first) = service_on(Duration::from_secs(1)).await;
    let image = good_image(&bed).await;
    let (_dir, file) = slow_file(&bed);
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &[
                "--task-definition",
                &file,
                "--timeout",
                "5s",
                "--output",
                "json",
            ],
        ),
        "waiting: ",
    )
    .await;
    // From mid-watch until deckhand has given up, no call gets an answer.
    control(&sandbox, "faults", r#"{"drop_rate": 1}"#);
    let run = finished(running).await;
    control(&sandbox, "faults", "{}");
    run.expect_code(4);
    let out = run.json();
    assert_eq!(out["result"], "failed");
    // Said as what it is, with the state last seen: not "did not become stable in time".
    let reason = out["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("ECS could not be read up to the deadline")
            && reason.contains("ECS DescribeServices: ")
            && reason.contains(&sandbox.endpoint())
            && reason.contains("last seen: web on web:2"),
        "{reason}"
    );
    assert!(
        !run.stderr.contains("did not become stable in time"),
        "{}",
        run.stderr
    );
    let new = registered(&out, "web").to_string();
    assert!(new.ends_with("web:2"), "{new}");
    assert_eq!(
        service_td(&client).await,
        new,
        "nothing could take it back: it is on the new revision"
    );
    let e = expect_service(&out, "web", "unknown", None, &first);
    assert_ne!(e["action"], "", "what to do: {e:#}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_stops_the_rollback_wait_and_says_where_the_service_is() {
    let bed = Bed::get();
    // The rollback's tasks take 3 s to count: the second signal lands while it is unconfirmed.
    let (sandbox, client, first) = service_on(Duration::from_secs(3)).await;
    let image = good_image(&bed).await;
    let (_dir, file) = slow_file(&bed);
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &["--task-definition", &file, "--output", "json"],
        ),
        "deployment ecs-svc/",
    )
    .await;
    running.signal("INT");
    let running = read_until(running, "rollback deployment").await;
    running.signal("INT");
    let run = finished(running).await;
    run.expect_code(4);
    let out = run.json();
    assert_eq!(out["result"], "failed");
    assert_eq!(out["rolled_back"], false);
    // ECS has the rollback; only deckhand's wait for it was cut short.
    let now = service_td(&client).await;
    assert_eq!(now, first);
    let e = expect_needs_person(&out, "web", Some(&now), &first);
    assert_eq!(e["state"], "not-confirmed", "{e:#}");
    wait_until(&client, "web", "the rollback completes on its own", |s| {
        completed_on(s, &first)
    })
    .await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_status_shows_the_deployment_and_rollback_undoes_it() {
    let bed = Bed::get();
    let (sandbox, client, first) = service_on(Duration::from_secs(1)).await;
    let image = good_image(&bed).await;
    let (_dir, file) = slow_file(&bed);
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &["--task-definition", &file, "--output", "json"],
        ),
        "deployment ecs-svc/",
    )
    .await;
    // No chance to clean up: the runner's job was killed.
    running.signal("KILL");
    let killed = finished(running).await;
    assert_ne!(killed.code, 0, "killed: {}", killed.all());
    let new = service_td(&client).await;
    assert_ne!(new, first);

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
    assert_eq!(s["task_definition_arn"], new.as_str());
    assert_eq!(s["deploying"], true, "{s:#}");
    let deployments = s["deployments"].as_array().unwrap();
    assert!(
        deployments.iter().any(|d| d["status"] == "PRIMARY"
            && d["task_definition_arn"] == new.as_str()
            && d["rollout_state"] == "IN_PROGRESS"),
        "the deployment in progress: {s:#}"
    );

    let back = run(&sandbox, None, &crate::rollback::rollback(&[])).await;
    back.expect_code(0);
    let out = back.json();
    assert_eq!(out["result"], "rolled-back", "{}", back.stderr);
    assert_eq!(out["task_definition_arn"], first.as_str());
    assert_eq!(out["previous_task_definition_arn"], new.as_str());
    wait_until(&client, "web", "back on the first revision", |s| {
        completed_on(s, &first)
    })
    .await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deploys_started_together_each_say_what_became_of_their_revision() {
    let bed = Bed::get();
    let (sandbox, client, first) = service_on(Duration::from_secs(1)).await;
    let (one, two) = (good_image(&bed).await, good_image(&bed).await);
    let wait = ["--wait-for-others", "60s", "--output", "json"];
    let a_args = deploy_args(&["--image", &one], &wait);
    let b_args = deploy_args(&["--image", &two], &wait);
    let (a, b) = tokio::join!(run(&sandbox, None, &a_args), run(&sandbox, None, &b_args));
    for r in [&a, &b] {
        assert!([0, 1, 4].contains(&r.code), "exit {}:\n{}", r.code, r.all());
    }

    // One of the two revisions is live and stable, and its deploy said so.
    let live = service_td(&client).await;
    wait_until(&client, "web", "one revision settled", |s| {
        completed_on(s, &live)
    })
    .await;
    let mine = |r: &Run| (r.code != 1).then(|| registered(&r.json(), "web").to_string());
    let (winner, loser) = match (mine(&a), mine(&b)) {
        (Some(td), _) if td == live => (&a, &b),
        (_, Some(td)) if td == live => (&b, &a),
        _ => panic!(
            "the service runs {live}, neither deploy's revision:\n{}\n---\n{}",
            a.all(),
            b.all()
        ),
    };
    winner.expect_code(0);
    let won = winner.json();
    assert_eq!(won["result"], "deployed");
    let won_entry = entry(&won, "web");
    let won_target = won_entry["rollback_target"].as_str().unwrap().to_string();
    expect_service(&won, "web", "deployed", Some(&live), &won_target);
    let won_deployment = won_entry["deployment_id"].as_str().unwrap().to_string();

    // The other one's exit matches what became of its own revision.
    match loser.code {
        // It finished first, stable: the winner then deployed on top of its revision.
        0 => {
            let lost = loser.json();
            assert_eq!(lost["result"], "deployed");
            assert_eq!(
                won_target,
                registered(&lost, "web"),
                "a 0 whose revision is not live is only right if it was live and stable when it \
                 ended:\n{}\n---\n{}",
                loser.all(),
                winner.all()
            );
        }
        // It changed nothing.
        1 => assert!(
            loser.stderr.contains("another deployment is in progress"),
            "{}",
            loser.stderr
        ),
        // Replaced: it names the winner's deployment and leaves the service to it.
        _ => {
            let lost = loser.json();
            assert_eq!(lost["result"], "failed");
            assert!(
                lost["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&won_deployment),
                "the reason names {won_deployment}: {lost:#}"
            );
            // The winner started from the first revision, or from the loser's when that had
            // completed before the loser looked again; either way the loser's target is the
            // first and a person is asked to look.
            expect_needs_person(&lost, "web", Some(&live), &first);
        }
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_rolled_back_and_exits_3() {
    let (sandbox, client, good) = stable_service(false).await;
    let run = deploy(&sandbox, "127.0.0.1:9/does-not-exist:1", &[]).await;
    run.expect_code(3);
    assert!(
        run.stderr.contains("CannotPullContainerError"),
        "the reason is shown:\n{}",
        run.stderr
    );
    let out = run.json();
    assert_eq!(out["result"], "rolled-back");
    assert_eq!(service_td(&client).await, good);
    expect_service(&out, "web", "rolled-back", Some(&good), &good);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_update_during_the_watch_is_left_alone_and_exits_4() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let (_dir, file) = slow_file(&bed);
    let running = start_until(
        &sandbox,
        &deploy_args(
            &["--image", &image],
            &["--task-definition", &file, "--output", "json"],
        ),
        "waiting: ",
    )
    .await;
    let theirs = register(&client, "web", container(&bed, &["sleep", "602"])).await;
    let updated = client
        .update_service()
        .cluster("c")
        .service("web")
        .task_definition(&theirs)
        .send()
        .await
        .unwrap();
    let their_deployment = updated.service().unwrap().deployments()[0]
        .id()
        .unwrap()
        .to_string();
    let run = finished(running).await;
    run.expect_code(4);
    let out = run.json();
    assert_eq!(out["result"], "failed");
    assert!(
        out["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&their_deployment),
        "the reason names {their_deployment}: {out:#}"
    );
    wait_until(&client, "web", "their revision, left alone", |s| {
        completed_on(s, &theirs)
    })
    .await;
    let e = expect_needs_person(&out, "web", Some(&theirs), &good);
    assert_eq!(e["state"], "taken-over", "{e:#}");
    sandbox.stop().await;
}

/// How many services the fleet rows deploy together.
const FLEET: usize = 20;

/// `FLEET` services, each its own family's first revision from the base image: `worker` runs
/// `sleep 600`, the others `tail -f /dev/null`. Returns their names and revisions.
async fn fleet(bed: &Bed) -> (Sandbox, Client, Vec<(String, String)>) {
    let (sandbox, client) = sandbox_with(Options {
        stable_after: Duration::from_millis(500),
        ..test_options()
    })
    .await;
    let mut services = Vec::new();
    for i in 1..FLEET {
        services.push((format!("svc{i:02}"), vec!["tail", "-f", "/dev/null"]));
    }
    services.push(("worker".to_string(), vec!["sleep", "600"]));
    let mut live = Vec::new();
    for (name, command) in &services {
        let td = register(&client, name, container(bed, command)).await;
        create_service(&client, name, &td, 1, false).await;
        live.push((name.clone(), td));
    }
    for (name, td) in &live {
        wait_until(&client, name, "initial rollout", |s| completed_on(s, td)).await;
    }
    (sandbox, client, live)
}

/// `deckhand deploy` of every service of the fleet, with half of all calls throttled from the
/// first UpdateService on: the updates, the watch, and any rollback and its confirmation.
async fn deploy_fleet_throttled(
    sandbox: &Sandbox,
    services: &[(String, String)],
    image: &str,
) -> Run {
    let mut args = vec!["deploy", "--cluster", "c", "--container", "app"];
    for (name, _) in services {
        args.extend(["--service", name.as_str()]);
    }
    args.extend([
        "--image",
        image,
        "--poll",
        "500ms",
        "--timeout",
        "90s",
        "--max-failed-tasks",
        "1",
        "--output",
        "json",
    ]);
    let running = start_until(sandbox, &args, "==> deploy").await;
    control(sandbox, "faults", r#"{"throttle_rate": 0.5}"#);
    let run = finished(running).await;
    control(sandbox, "faults", "{}");
    run
}

/// The result names every service of the fleet, in order.
fn names_all(out: &Value, services: &[(String, String)]) {
    let named: Vec<&str> = out["services"]
        .as_array()
        .map(|all| all.iter().filter_map(|e| e["service"].as_str()).collect())
        .unwrap_or_default();
    let want: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(named, want, "{out:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_20_under_heavy_throttling_deploys() {
    let bed = Bed::get();
    let (sandbox, client, services) = fleet(&bed).await;
    let image = good_image(&bed).await;
    let run = deploy_fleet_throttled(&sandbox, &services, &image).await;
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out["result"], "deployed");
    names_all(&out, &services);
    for (name, before) in &services {
        let new = registered(&out, name).to_string();
        assert!(new.ends_with(&format!("{name}:2")), "{name}: {new}");
        assert_eq!(service_td_of(&client, name).await, new, "{name}");
        expect_service(&out, name, "deployed", Some(&new), before);
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_20_under_heavy_throttling_goes_back_together() {
    let bed = Bed::get();
    let (sandbox, client, services) = fleet(&bed).await;
    // The worker cannot start without `sleep`; the other services run it fine.
    let image = crate::fleet::image_without_sleep(&bed).await;
    let run = deploy_fleet_throttled(&sandbox, &services, &image).await;
    run.expect_code(3);
    let out = run.json();
    assert_eq!(out["result"], "rolled-back");
    assert!(
        out["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("worker: "),
        "{out:#}"
    );
    names_all(&out, &services);
    for (name, before) in &services {
        assert_eq!(
            service_td_of(&client, name).await,
            *before,
            "{name} is not left on the new revision"
        );
        expect_service(&out, name, "rolled-back", Some(before), before);
    }
    sandbox.stop().await;
}
