//! What people read, pinned: `--help`, a usage error, and a dry run's log, as snapshots
//! (tests/it/snapshots/). Volatile parts (ports, SHAs, image tags) are filtered.

use crate::bed::{deckhand, Bed};
use crate::deploy::command::{deploy_args, good_image, run, stable_service};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    s.add_filter(r"deckhand-test/good:[\w-]+", "deckhand-test/good:[tag]");
    s.add_filter(r"ecs-svc/\d+", "ecs-svc/[id]");
    s.add_filter(r"deckhand \d+\.\d+\.\d+", "deckhand [version]");
    s
}

#[test]
fn help_texts() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("help", &["--help"][..]),
        ("deploy_help", &["deploy", "--help"][..]),
        ("rollback_help", &["rollback", "--help"][..]),
        ("status_help", &["status", "--help"][..]),
        ("continue_help", &["continue", "--help"][..]),
        ("push_help", &["push", "--help"][..]),
        ("init_help", &["init", "--help"][..]),
    ] {
        let run = deckhand(dir.path(), args, &[]);
        run.expect_code(0);
        settings().bind(|| insta::assert_snapshot!(name, run.stdout));
    }
}

#[test]
fn a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = deckhand(
        dir.path(),
        &["deploy", "--cluster", "c", "--service", "web"],
        &[],
    );
    run.expect_code(2);
    settings().bind(|| insta::assert_snapshot!("usage_error", run.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let run = run(
        &sandbox,
        None,
        &deploy_args(&["--image", &image], &["--dry-run"]),
    )
    .await;
    run.expect_code(0);
    let mut s = settings();
    s.add_filter(&regex_escape(&bed.base_image), "[base image]");
    s.bind(|| {
        insta::assert_snapshot!(
            "dry_run",
            format!("{}\n--- stdout ---\n{}", run.stderr, run.stdout)
        )
    });
    sandbox.stop().await;
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
