//! Why a deploy or a rollback failed, told without the AWS console: a crashed container's own
//! last log lines (log, job summary, JSON result) and AWS errors in one line.

use serde_json::json;

use crate::bed::Bed;
use crate::deploy::command::{deploy, deploy_args, good_image, run, run_with_env, stable_service};
use crate::rollback::rollback;
use crate::rollout::write_json;
use crate::sandbox::{container, control, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_containers_last_lines_are_in_the_log_the_summary_and_the_result() {
    let bed = Bed::get();
    let (sandbox, _client, good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    let crash = json!({
        "family": "web",
        "containerDefinitions": [
            {
                "name": "app",
                "image": bed.base_image,
                "essential": true,
                "memory": 32,
                "command": ["sh", "-c",
                    "echo 'booting: out-line-4711'; echo 'fatal: err-line-4712 `db` <down>' >&2; \
                     echo \"login with $DB_PASSWORD\" >&2; exit 1"],
                "environment": [{"name": "DB_PASSWORD", "value": "crash-pass-5521"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": "/ecs/web", "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "web"}}
            },
            {
                "name": "proxy",
                "image": bed.base_image,
                "essential": true,
                "memory": 32,
                "command": ["sleep", "600"],
                "logConfiguration": {"logDriver": "json-file"}
            }
        ]
    });
    let file = write_json(&dir, "crash.json", &crash);
    let summary = dir.path().join("summary.md");
    let outputs = dir.path().join("outputs");
    let report = dir.path().join("report.json");
    let args = deploy_args(
        &["--image", &image],
        &[
            "--task-definition",
            &file,
            "--output",
            "json",
            "--ci",
            "github",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let run = run_with_env(
        &sandbox,
        None,
        &args,
        &[
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ],
    )
    .await;
    run.expect_code(3);
    // Under the stopped-task annotation, each line as the application printed it.
    for line in [
        "  app | booting: out-line-4711",
        "  app | fatal: err-line-4712 `db` <down>",
        "  app | login with ***",
        "  proxy: logs not in CloudWatch (log driver json-file)",
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "{line:?} in the log:\n{}",
            run.stderr
        );
    }
    let stopped = run
        .stderr
        .find("::warning::task ")
        .expect("the stopped task is annotated");
    let shown = run.stderr.find("  app | booting").unwrap();
    assert!(stopped < shown, "the lines follow the stopped task");

    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### Failed tasks' last log lines"), "{md}");
    assert!(
        md.contains("<details><summary>task ")
            && md.contains("container app: last 3 log lines</summary>"),
        "{md}"
    );
    // Docker reads stdout and stderr apart: the lines may come in any order.
    let fenced = md
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```\n").next())
        .unwrap_or_else(|| panic!("a fence longer than the lines' backticks:\n{md}"));
    let mut fenced: Vec<&str> = fenced.lines().collect();
    fenced.sort();
    assert_eq!(
        fenced,
        [
            "booting: out-line-4711",
            "fatal: err-line-4712 `db` <down>",
            "login with ***"
        ],
        "the lines verbatim, masked:\n{md}"
    );
    assert!(
        md.contains("container proxy: logs not in CloudWatch (log driver json-file)"),
        "{md}"
    );

    let out = run.json();
    let from_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(out, from_file);
    assert_eq!(out["result"], "rolled-back");
    let failed = out["failed_tasks"].as_array().expect("failed_tasks");
    assert!(!failed.is_empty(), "{out:#}");
    let first = &failed[0];
    assert_eq!(first["service"], "web");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("app exit code 1"),
        "{first:#}"
    );
    let mut logs = first["logs"].clone();
    logs[0]["lines"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|l| l.to_string());
    assert_eq!(
        logs,
        json!([
            {"container": "app", "lines": ["booting: out-line-4711",
                "fatal: err-line-4712 `db` <down>", "login with ***"], "note": ""},
            {"container": "proxy", "lines": [],
                "note": "logs not in CloudWatch (log driver json-file)"}
        ])
    );
    assert_ne!(first["task_definition_arn"], good);
    for (what, text) in [
        ("log", run.all()),
        ("summary", md.clone()),
        ("outputs", std::fs::read_to_string(&outputs).unwrap()),
        ("report", std::fs::read_to_string(&report).unwrap()),
    ] {
        let shown: String = text
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect();
        assert!(!shown.contains("crash-pass-5521"), "{what}:\n{text}");
    }
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        outputs.contains("failed-tasks=[{"),
        "a step output for scripts:\n{outputs}"
    );

    // `--log-lines 0` reads no log at all.
    control(&sandbox, "calls", "");
    let quiet = deploy(
        &sandbox,
        &image,
        &["--task-definition", &file, "--log-lines", "0"],
    )
    .await;
    quiet.expect_code(3);
    assert!(!quiet.stderr.contains("  app | "), "{}", quiet.stderr);
    assert!(
        !sandbox.calls().contains_key("GetLogEvents"),
        "{:?}",
        sandbox.calls()
    );
    sandbox.stop().await;
}

/// A task definition `web` whose container `app` prints `numbered-line-1` to `…-25` on stdout,
/// one a line, then exits 1, logging through awslogs.
fn counting_crash(bed: &Bed) -> serde_json::Value {
    json!({
        "family": "web",
        "containerDefinitions": [{
            "name": "app",
            "image": bed.base_image,
            "essential": true,
            "memory": 32,
            "command": ["sh", "-c",
                "i=1; while [ $i -le 25 ]; do echo numbered-line-$i; i=$((i+1)); done; exit 1"],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/web", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "web"}}
        }]
    })
}

/// The numbered lines `from..=to`, as the container printed them.
fn numbered(from: u32, to: u32) -> Vec<String> {
    (from..=to).map(|i| format!("numbered-line-{i}")).collect()
}

/// Each logged failed task's `app` lines from the result (tasks past the first few have no
/// logs read), and the `app` lines shown in the log.
fn lines_of(run: &crate::bed::Run) -> (Vec<Vec<String>>, Vec<String>) {
    let out = run.json();
    let tasks = out["failed_tasks"]
        .as_array()
        .expect("failed_tasks")
        .clone();
    let results: Vec<Vec<String>> = tasks
        .iter()
        .filter(|t| t["logs"].as_array().is_some_and(|l| !l.is_empty()))
        .map(|t| {
            assert_eq!(t["logs"][0]["container"], "app", "{t:#}");
            t["logs"][0]["lines"]
                .as_array()
                .unwrap_or_else(|| panic!("{t:#}"))
                .iter()
                .map(|l| l.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert!(!results.is_empty(), "{out:#}");
    let shown = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  app | "))
        .map(str::to_string)
        .collect();
    (results, shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_20_lines_by_default_and_the_last_n_with_log_lines() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_json(&dir, "count.json", &counting_crash(&bed));

    let default = deploy(&sandbox, &image, &["--task-definition", &file]).await;
    default.expect_code(3);
    let (results, shown) = lines_of(&default);
    for lines in &results {
        assert_eq!(lines, &numbered(6, 25), "the last 20, oldest first");
    }
    // Each logged task's lines in turn, under its stopped-task line.
    assert_eq!(shown.len(), 20 * results.len(), "{}", default.stderr);
    for chunk in shown.chunks(20) {
        assert_eq!(chunk, numbered(6, 25).as_slice(), "{}", default.stderr);
    }
    assert!(
        !default
            .stderr
            .lines()
            .any(|l| l == "  app | numbered-line-5"),
        "{}",
        default.stderr
    );

    let three = deploy(
        &sandbox,
        &image,
        &["--task-definition", &file, "--log-lines", "3"],
    )
    .await;
    three.expect_code(3);
    let (results, shown) = lines_of(&three);
    for lines in &results {
        assert_eq!(lines, &numbered(23, 25), "--log-lines 3: the last 3");
    }
    let expected: Vec<String> = std::iter::repeat_n(numbered(23, 25), results.len())
        .flatten()
        .collect();
    assert_eq!(shown, expected, "{}", three.stderr);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_whose_revision_crashes_shows_its_tasks_last_lines() {
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    // An older revision that no longer starts (its database is gone, say): `--to` takes any.
    let logs = aws_sdk_ecs::types::LogConfiguration::builder()
        .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
        .options("awslogs-group", "/ecs/web")
        .options("awslogs-stream-prefix", "web")
        .build()
        .unwrap();
    let mut app = container(
        &bed,
        &[
            "sh",
            "-c",
            "echo 'old revision: out-line-9311'; echo 'fatal: err-line-9312' >&2; exit 1",
        ],
    );
    app.log_configuration = Some(logs);
    let crashing = register(&client, "web", app).await;
    assert_ne!(crashing, good);

    let back = run(&sandbox, None, &rollback(&["--to", &crashing])).await;
    back.expect_code(4);
    for line in [
        "  app | old revision: out-line-9311",
        "  app | fatal: err-line-9312",
    ] {
        assert!(
            back.stderr.lines().any(|l| l == line),
            "{line:?} under the stopped task:\n{}",
            back.stderr
        );
    }
    let out = back.json();
    assert_eq!(out["result"], "failed");
    assert_eq!(out["task_definition_arn"], crashing.as_str());
    let failed = out["failed_tasks"].as_array().expect("failed_tasks");
    assert!(!failed.is_empty(), "{out:#}");
    for task in failed {
        assert_eq!(task["service"], "web");
        assert_eq!(task["task_definition_arn"], crashing.as_str());
    }
    let mut lines: Vec<&str> = failed[0]["logs"][0]["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("{out:#}"))
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        ["fatal: err-line-9312", "old revision: out-line-9311"],
        "{out:#}"
    );
    assert_eq!(failed[0]["logs"][0]["container"], "app");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_api_is_one_line_naming_the_operation_and_the_request() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    control(&sandbox, "faults", r#"{"throttle_rate": 1}"#);
    let run = deploy(&sandbox, &image, &["--report", report.to_str().unwrap()]).await;
    // The same failure in GitHub mode: the annotation, the step output and the job summary.
    let output = dir.path().join("output");
    let summary = dir.path().join("summary.md");
    let github = run_with_env(
        &sandbox,
        None,
        &deploy_args(&["--image", &image], &["--ci", "github"]),
        &[
            ("GITHUB_OUTPUT", output.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
    )
    .await;
    control(&sandbox, "faults", "{}");
    run.expect_code(1);
    github.expect_code(1);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line:\n{}", run.stderr));
    assert!(
        error.contains("ECS DescribeServices: ThrottlingException: ")
            && error.contains("(request "),
        "service, operation, code, message and request id: {error}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let reason = report["reason"].as_str().unwrap();
    for text in [run.stderr.as_str(), reason] {
        for dump in ["ServiceError {", "raw: Response", "headers:", "Error {"] {
            assert!(!text.contains(dump), "no SDK dump ({dump}):\n{text}");
        }
    }
    assert!(
        reason.starts_with("ECS DescribeServices: ThrottlingException: ") && !reason.contains('\n'),
        "{reason}"
    );

    let outputs = std::fs::read_to_string(&output).unwrap();
    let md = std::fs::read_to_string(&summary).unwrap();
    let annotation = github
        .stderr
        .lines()
        .find(|l| l.starts_with("::error::"))
        .unwrap_or_else(|| panic!("an error annotation:\n{}", github.stderr));
    let reason_output = outputs
        .lines()
        .find_map(|l| l.strip_prefix("reason="))
        .unwrap_or_else(|| panic!("a one-line reason output:\n{outputs}"));
    let why = md
        .lines()
        .find_map(|l| l.strip_prefix("**Why:** "))
        .unwrap_or_else(|| panic!("the reason in the summary:\n{md}"));
    for (what, line) in [
        ("annotation", annotation),
        ("output", reason_output),
        ("summary", why),
    ] {
        assert!(
            line.contains("ECS DescribeServices: ThrottlingException: ")
                && line.contains("(request "),
            "{what}: service, operation, code, message and request id: {line}"
        );
    }
    for (what, text) in [
        ("log", github.stderr.as_str()),
        ("outputs", outputs.as_str()),
        ("summary", md.as_str()),
    ] {
        for dump in ["ServiceError {", "raw: Response", "headers:", "Error {"] {
            assert!(
                !text.contains(dump),
                "{what}: no SDK dump ({dump}):\n{text}"
            );
        }
    }
    assert!(
        !outputs.contains("reason<<"),
        "the reason is one line, not a block:\n{outputs}"
    );
    sandbox.stop().await;
}
