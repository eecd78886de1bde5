//! The command-line contract: usage errors, flags from environment variables, help.

use crate::bed::{deckhand, Repo};

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = deckhand(dir.path(), &["push"], &[]);
    run.expect_code(2);
    assert!(run.stderr.contains("--repository"), "{}", run.stderr);
    let run = deckhand(dir.path(), &["push", "--repository", "Bad Name"], &[]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("not a valid ECR repository name"),
        "{}",
        run.stderr
    );
    let run = deckhand(
        dir.path(),
        &["push", "--repository", "web", "--output", "yaml"],
        &[],
    );
    run.expect_code(2);
}

#[test]
fn deploy_rollback_and_status_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["deploy", "--cluster", "c", "--service", "web"][..],
            "--image",
        ),
        (
            &[
                "deploy",
                "--cluster",
                "c",
                "--service",
                "web",
                "--image",
                "x",
                "--repository",
                "r",
            ][..],
            "cannot be used with",
        ),
        (&["rollback", "--cluster", "c"][..], "--service"),
        (
            &[
                "rollback",
                "--cluster",
                "c",
                "--service",
                "web",
                "--to",
                "v2",
            ][..],
            "--to",
        ),
        (&["status", "--service", "web"][..], "--cluster"),
        (
            &[
                "deploy",
                "--cluster",
                "c",
                "--service",
                "web",
                "--image",
                "x",
                "--keep-revisions",
                "0",
            ][..],
            "keep-revisions",
        ),
    ] {
        let run = deckhand(dir.path(), args, &[("AWS_REGION", "us-east-1")]);
        run.expect_code(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn flags_are_read_from_deckhand_env_vars() {
    // DECKHAND_REPOSITORY and DECKHAND_FILE stand in for the flags; the missing Dockerfile they
    // point at proves they were read.
    let repo = Repo::new(&[("app.txt", "x")]);
    let run = deckhand(
        repo.path(),
        &["push"],
        &[
            ("DECKHAND_REPOSITORY", "web"),
            ("DECKHAND_FILE", "custom.Dockerfile"),
        ],
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("no Dockerfile at custom.Dockerfile"),
        "{}",
        run.stderr
    );
}

#[test]
fn version_and_help_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let run = deckhand(dir.path(), &["--version"], &[]);
    run.expect_code(0);
    assert!(run.stdout.starts_with("deckhand "), "{}", run.stdout);
    let run = deckhand(dir.path(), &["push", "--help"], &[]);
    run.expect_code(0);
    for flag in [
        "--repository",
        "--context",
        "--file",
        "--build-arg",
        "--target",
        "--tag",
        "--sha",
        "--registry",
        "--create-repository",
        "--force",
        "--allow-dirty",
        "DECKHAND_REPOSITORY",
    ] {
        assert!(
            run.stdout.contains(flag),
            "{flag} missing from help:\n{}",
            run.stdout
        );
    }
}
