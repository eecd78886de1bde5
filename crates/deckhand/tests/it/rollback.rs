//! `deckhand rollback` and `deckhand status` on the sandbox, with real containers.

use crate::bed::Bed;
use crate::deploy::command::{deploy, good_image, run, service_td, stable_service};

/// `deckhand rollback` of service `web` in cluster `c`, quick polling, JSON, then `extra`.
pub fn rollback<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "rollback",
        "--cluster",
        "c",
        "--service",
        "web",
        "--poll",
        "200ms",
        "--timeout",
        "60s",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_rollback_returns_to_the_last_good_revision_and_exits_0() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let deployed = deploy(&sandbox, &image, &[]).await;
    deployed.expect_code(0);
    let new = deployed.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string();

    let back = run(&sandbox, None, &rollback(&[])).await;
    back.expect_code(0);
    let out = back.json();
    assert_eq!(out["result"], "rolled-back");
    assert_eq!(out["task_definition_arn"], good.as_str());
    assert_eq!(out["previous_task_definition_arn"], new.as_str());
    assert_eq!(service_td(&client).await, good);
    assert!(
        back.stderr.contains("has reached a steady state"),
        "watched like a deploy:\n{}",
        back.stderr
    );

    // Forward again by revision number; asking for what already runs changes nothing.
    let forward = run(&sandbox, None, &rollback(&["--to", "2"])).await;
    forward.expect_code(0);
    assert_eq!(service_td(&client).await, new);
    let again = run(&sandbox, None, &rollback(&["--to", "2"])).await;
    again.expect_code(0);
    assert_eq!(again.json()["result"], "unchanged");

    // status, for a person: what runs, the deployments, recent events.
    let status = run(
        &sandbox,
        None,
        &["status", "--cluster", "c", "--service", "web"],
    )
    .await;
    status.expect_code(0);
    for want in [
        "service web in c: ACTIVE, 1 running of 1 desired",
        &format!("task definition {new}"),
        &format!("container app: {image}"),
        "PRIMARY ecs-svc/",
        "COMPLETED, 1 of 1 running",
        "recent events (newest first):",
        "has reached a steady state",
    ] {
        assert!(
            status.stdout.contains(want),
            "{want:?} missing:\n{}",
            status.stdout
        );
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_with_nowhere_to_go_changes_nothing() {
    let (sandbox, client, good) = stable_service(false).await;
    // Only one revision has ever run: there is no earlier good one.
    let none = run(&sandbox, None, &rollback(&[])).await;
    none.expect_code(1);
    assert!(
        none.stderr.contains("Pass --to REVISION"),
        "{}",
        none.stderr
    );
    let missing = run(&sandbox, None, &rollback(&["--to", "99"])).await;
    missing.expect_code(1);
    assert!(missing.stderr.contains("web:99"), "{}", missing.stderr);
    let bad = run(&sandbox, None, &rollback(&["--to", "web:latest"])).await;
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("expected a revision number"),
        "{}",
        bad.stderr
    );
    assert_eq!(service_td(&client).await, good);
    let unknown = run(
        &sandbox,
        None,
        &["status", "--cluster", "c", "--service", "nope"],
    )
    .await;
    unknown.expect_code(1);
    assert!(
        unknown.stderr.contains("does not exist"),
        "{}",
        unknown.stderr
    );
    sandbox.stop().await;
}

/// The revision `--output json` says a deploy registered.
fn registered(run: &crate::bed::Run) -> String {
    run.json()["task_definition_arn"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_rollbacks_walk_back_and_never_forth() {
    let bed = Bed::get();
    let (sandbox, client, first) = stable_service(false).await;
    let second = deploy(&sandbox, &good_image(&bed).await, &[]).await;
    second.expect_code(0);
    let third = deploy(&sandbox, &good_image(&bed).await, &[]).await;
    third.expect_code(0);
    let (second, third) = (registered(&second), registered(&third));
    let stored = sandbox
        .task_definition(&third)
        .await
        .unwrap()
        .tags
        .to_string();
    assert!(
        stored.contains("deckhand:previous") && stored.contains(&second),
        "the new revision names the one it replaced: {stored}"
    );
    assert!(stored.contains("deckhand:verified"), "{stored}");

    // web:3 → web:2 → web:1, then nowhere: never forward to a newer revision.
    for (want, from) in [(&second, &third), (&first, &second)] {
        let back = run(&sandbox, None, &rollback(&[])).await;
        back.expect_code(0);
        assert_eq!(back.json()["task_definition_arn"], want.as_str());
        assert_eq!(back.json()["previous_task_definition_arn"], from.as_str());
        assert_eq!(service_td(&client).await, *want);
    }
    let end = run(&sandbox, None, &rollback(&[])).await;
    end.expect_code(1);
    assert!(
        end.stderr.contains("no verified revision") && end.stderr.contains("Pass --to"),
        "{}",
        end.stderr
    );
    assert_eq!(service_td(&client).await, first, "nothing was changed");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_deployed_with_no_tasks_is_never_a_rollback_target() {
    let bed = Bed::get();
    let (sandbox, client, first) = stable_service(false).await;
    let scale = |n: i32| {
        let client = client.clone();
        async move {
            client
                .update_service()
                .cluster("c")
                .service("web")
                .desired_count(n)
                .send()
                .await
                .unwrap();
        }
    };
    scale(0).await;
    let unverified = deploy(&sandbox, &good_image(&bed).await, &[]).await;
    unverified.expect_code(0);
    assert_eq!(unverified.json()["result"], "unverified");
    assert_eq!(unverified.json()["services"][0]["state"], "unverified");
    // Another deploy while no task runs, then the service scales up on that last revision.
    let last = deploy(&sandbox, &good_image(&bed).await, &[]).await;
    last.expect_code(0);
    assert_eq!(last.json()["result"], "unverified");
    let last = registered(&last);
    scale(1).await;
    crate::sandbox::wait_until(&client, "web", "scaled up", |s| {
        crate::sandbox::completed_on(s, &last)
    })
    .await;

    let back = run(&sandbox, None, &rollback(&[])).await;
    back.expect_code(0);
    assert_eq!(
        back.json()["task_definition_arn"],
        first.as_str(),
        "past the revision no task verified:\n{}",
        back.stderr
    );
    assert!(
        back.stderr
            .contains("was never seen stable with tasks running"),
        "{}",
        back.stderr
    );
    assert_eq!(service_td(&client).await, first);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_rollback_is_tried_again_until_it_goes_through() {
    let bed = Bed::get();
    let (sandbox, client, first) = stable_service(false).await;
    deploy(&sandbox, &good_image(&bed).await, &[])
        .await
        .expect_code(0);
    // UpdateService is throttled past the SDK's own retries until deckhand says it tries
    // again; then the throttling ends.
    crate::sandbox::control(
        &sandbox,
        "faults",
        r#"{"throttle_rate": 1, "operations": ["UpdateService"]}"#,
    );
    let running = crate::rollout::start_until(&sandbox, &rollback(&[]), "; trying again in").await;
    crate::sandbox::control(&sandbox, "faults", "{}");
    let back = crate::faults::finished(running).await;
    back.expect_code(0);
    assert_eq!(back.json()["result"], "rolled-back");
    assert!(
        back.stderr.contains("UpdateService to web:1"),
        "{}",
        back.stderr
    );
    assert_eq!(service_td(&client).await, first);
    sandbox.stop().await;
}
