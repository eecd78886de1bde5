//! deckhand inside CI, on the sandbox: GitHub's groups, annotations, outputs and job summary;
//! GitLab's sections and dotenv report; the JSON report file; secrets in no output of any mode.

use std::collections::HashMap;

use crate::bed::{Bed, Repo, Run};
use crate::deploy::command::{broken_image, deploy_args, good_image, run_with_env, stable_service};

/// `key=value` lines (and `key<<DELIM` blocks) of a `$GITHUB_OUTPUT` file.
fn github_outputs(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((key, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            out.insert(key.to_string(), value.join("\n"));
        } else if let Some((key, value)) = line.split_once('=') {
            out.insert(key.to_string(), value.to_string());
        }
    }
    out
}

fn image_args<'a>(image: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    deploy_args(&["--image", image], extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_github_a_deploy_writes_outputs_a_summary_and_annotations() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary.md");
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_OUTPUT", output.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];

    let image = good_image(&bed).await;
    let good = run_with_env(&sandbox, None, &image_args(&image, &[]), &env).await;
    good.expect_code(0);
    let outputs = github_outputs(&std::fs::read_to_string(&output).unwrap());
    for key in [
        "image",
        "digest",
        "sha",
        "task-definition-arn",
        "deployment-id",
        "result",
        "rolled-back",
        "reason",
    ] {
        assert!(outputs.contains_key(key), "{key} missing from {outputs:?}");
    }
    assert_eq!(outputs["result"], "deployed");
    assert_eq!(outputs["rolled-back"], "false");
    assert_eq!(outputs["image"], image);
    assert!(
        outputs["task-definition-arn"].ends_with("web:2"),
        "{outputs:?}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("## deckhand deploy: deployed"), "{md}");
    assert!(
        md.contains("### Timeline") && md.contains("has reached a steady state"),
        "{md}"
    );
    assert!(good.stderr.contains("::group::register"), "{}", good.stderr);
    assert!(good.stderr.contains("::endgroup::"), "{}", good.stderr);

    // A failing deploy: annotations, and outputs the next step can branch on.
    std::fs::write(&output, "").unwrap();
    let broken = broken_image().await;
    let failed = run_with_env(&sandbox, None, &image_args(&broken, &[]), &env).await;
    failed.expect_code(3);
    let outputs = github_outputs(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(outputs["result"], "rolled-back");
    assert_eq!(outputs["rolled-back"], "true");
    assert!(
        failed
            .stderr
            .contains("::error::the deploy failed and was rolled back"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("::warning::task "),
        "{}",
        failed.stderr
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("## deckhand deploy: rolled-back"), "{md}");
    assert!(
        md.contains("CannotStartContainerError"),
        "the stopped-task reason:\n{md}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_gitlab_sections_a_dotenv_and_a_report_file() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let dir = tempfile::tempdir().unwrap();
    let dotenv = dir.path().join("deploy.env");
    let report = dir.path().join("report.json");
    let image = good_image(&bed).await;
    let args = image_args(
        &image,
        &[
            "--dotenv",
            dotenv.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    let run = run_with_env(&sandbox, None, &args, &[("GITLAB_CI", "true")]).await;
    run.expect_code(0);
    assert!(run.stderr.contains("section_start:"), "{}", run.stderr);
    assert!(run.stderr.contains("section_end:"), "{}", run.stderr);
    let env: HashMap<String, String> = std::fs::read_to_string(&dotenv)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(env["DECKHAND_RESULT"], "deployed");
    assert_eq!(env["DECKHAND_IMAGE"], image);
    assert_eq!(env["DECKHAND_ROLLED_BACK"], "false");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(written, run.json(), "the report file is the stdout result");
    assert_eq!(
        env["DECKHAND_TASK_DEFINITION_ARN"],
        written["task_definition_arn"].as_str().unwrap()
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecr_token_and_secret_env_values_reach_no_output_in_any_mode() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let secret = "hunter2-do-not-print-me";
    let dir = tempfile::tempdir().unwrap();
    let td = dir.path().join("td.json");
    std::fs::write(
        &td,
        serde_json::json!({
            "family": "web",
            "containerDefinitions": [{
                "name": "app", "image": "placeholder", "essential": true, "memory": 32,
                "command": ["sleep", "600"],
                "environment": [{"name": "DB_PASSWORD", "value": secret}, {"name": "MODE", "value": "prod"}]
            }]
        })
        .to_string(),
    )
    .unwrap();
    let repo = Repo::new(&[(
        "Dockerfile",
        &format!("FROM {}\nCMD [\"sleep\", \"600\"]\n", bed.base_image),
    )]);
    let leaks = |run: &Run, files: &[std::path::PathBuf]| -> Vec<String> {
        let mut texts = vec![run.stdout.clone(), run.stderr.clone()];
        texts.extend(files.iter().filter_map(|f| std::fs::read_to_string(f).ok()));
        let password = sandbox.password().to_string();
        texts
            .iter()
            .flat_map(|t| t.lines())
            // GitHub's own masking command carries the value to the runner, which hides it.
            .filter(|l| !l.starts_with("::add-mask::"))
            .filter(|l| l.contains(secret) || l.contains(&password))
            .map(str::to_string)
            .collect()
    };
    for (mode, dry) in [("none", true), ("gitlab", true), ("github", false)] {
        let out = dir.path().join(format!("{mode}.out"));
        let files = [
            out.clone(),
            dir.path().join(format!("{mode}.md")),
            dir.path().join(format!("{mode}.env")),
            dir.path().join(format!("{mode}.json")),
        ];
        let mut args = deploy_args(
            &["--repository", "team/web", "--create-repository"],
            &[
                "--task-definition",
                td.to_str().unwrap(),
                "-vv",
                "--ci",
                mode,
                "--dotenv",
                files[2].to_str().unwrap(),
                "--report",
                files[3].to_str().unwrap(),
            ],
        );
        if dry {
            args.push("--dry-run");
        }
        let env = [
            ("GITHUB_OUTPUT", files[0].to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", files[1].to_str().unwrap()),
        ];
        let run = run_with_env(&sandbox, Some(repo.path()), &args, &env).await;
        run.expect_code(0);
        assert_eq!(
            leaks(&run, &files),
            Vec::<String>::new(),
            "{mode}: a secret leaked"
        );
        if mode == "github" {
            assert!(
                run.stderr.contains(&format!("::add-mask::{secret}")),
                "the secret is masked for the runner too:\n{}",
                run.stderr
            );
        }
    }
    // The secret did pass through deckhand: it is in the revision the real deploy registered.
    let registered = sandbox
        .task_definition("web:2")
        .await
        .expect("the github run registered web:2");
    assert_eq!(
        registered.body["containerDefinitions"][0]["environment"][0]["value"],
        secret
    );
    sandbox.stop().await;
}

/// The four result outputs of a run in GitHub mode, as (report JSON, dotenv, step outputs,
/// summary), for a run whose files live in `dir`.
fn result_files(
    dir: &std::path::Path,
) -> (serde_json::Value, String, HashMap<String, String>, String) {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"))
    };
    (
        serde_json::from_str(&read("r.json")).unwrap(),
        read("d.env"),
        github_outputs(&read("output")),
        read("summary.md"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_before_any_change_still_writes_every_result_file() {
    let (sandbox, _client, _good) = stable_service(false).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // Stale files from an earlier run must not survive as this run's result.
    std::fs::write(path("r.json"), r#"{"result": "deployed"}"#).unwrap();
    std::fs::write(path("d.env"), "DECKHAND_RESULT=deployed\n").unwrap();
    let (report, dotenv, output, summary) = (
        path("r.json"),
        path("d.env"),
        path("output"),
        path("summary.md"),
    );
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_OUTPUT", output.as_str()),
        ("GITHUB_STEP_SUMMARY", summary.as_str()),
    ];
    let args = [
        "deploy",
        "--cluster",
        "c",
        "--service",
        "nope",
        "--image",
        "x:1",
        "--report",
        &report,
        "--dotenv",
        &dotenv,
    ];
    let run = run_with_env(&sandbox, None, &args, &env).await;
    run.expect_code(1);
    let (json, env_file, outputs, md) = result_files(dir.path());
    assert_eq!(json["result"], "failed", "{json}");
    let reason = json["reason"].as_str().unwrap();
    assert!(
        reason.contains("nope"),
        "the reason names the service: {reason}"
    );
    assert!(env_file.contains("DECKHAND_RESULT=failed\n"), "{env_file}");
    assert!(env_file.contains("DECKHAND_REASON="), "{env_file}");
    assert_eq!(outputs["result"], "failed");
    assert_eq!(outputs["reason"], reason);
    assert!(md.contains("## deckhand deploy: failed"), "{md}");
    assert!(md.contains(&format!("**Why:** {reason}")), "{md}");
    assert!(run.stderr.contains("::error::"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "no result on stdout: {}", run.stdout);

    // A command line clap refuses (exit 2) writes them too.
    let refused = crate::bed::deckhand(
        dir.path(),
        &[
            "deploy",
            "--cluster",
            "c",
            "--report",
            &report,
            "--dotenv",
            &dotenv,
            "--rollback",
            "sometimes",
        ],
        &env,
    );
    refused.expect_code(2);
    let (json, env_file, _, _) = result_files(dir.path());
    assert_eq!(json["result"], "failed", "{json}");
    assert!(
        json["reason"].as_str().unwrap().contains("sometimes"),
        "{json}"
    );
    assert!(env_file.contains("DECKHAND_RESULT=failed\n"), "{env_file}");
    sandbox.stop().await;
}

/// Whether `text` shows `value` as masking would see it: a short value only as a token of its
/// own (not next to a letter or digit), a longer one anywhere.
pub fn shows(text: &str, value: &str) -> bool {
    if value.len() >= deckhand::redact::SHORT {
        return text.contains(value);
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(value).any(|(at, _)| {
        !alnum(text[..at].chars().next_back()) && !alnum(text[at + value.len()..].chars().next())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_looking_env_values_echoed_by_a_pre_deploy_task_reach_no_output() {
    use aws_sdk_ecs::types::{KeyValuePair, LogConfiguration, LogDriver, Secret};
    let bed = Bed::get();
    let (sandbox, client) = crate::sandbox::sandbox(8192).await;
    // (name, value, what of it is secret): the whole value, or a URL's password.
    let secrets = [
        // Digits, and a 3-character password: masked at any length and form.
        ("DB_PASS", "1234", "1234"),
        ("REDIS_PASSWORD", "Zq7", "Zq7"),
        ("DATABASE_URL", "postgres://app:pw-in-url@db/x", "pw-in-url"),
        (
            "SIGNING_KEY",
            "signing-key-long-value-1",
            "signing-key-long-value-1",
        ),
        ("STRIPE_SK", "xK9w", "xK9w"),
        ("API_KEY", "api-key-long-value-77", "api-key-long-value-77"),
        (
            "SENTRY_DSN",
            "https://dsn-key-value@sentry.example/1",
            "https://dsn-key-value@sentry.example/1",
        ),
        ("NPM_AUTH_TOKEN", "Tk4", "Tk4"),
        ("SMTP_PASSWD", "smtp-passwd-value-5", "smtp-passwd-value-5"),
        ("MYSQL_PWD", "my-pwd-6", "my-pwd-6"),
        (
            "SESSION_SECRET",
            "session-secret-value",
            "session-secret-value",
        ),
        ("AWS_ACCESS_KEY", "AKIAEXAMPLEKEY7", "AKIAEXAMPLEKEY7"),
        ("PRIVATE_KEY", "private-key-value-8", "private-key-value-8"),
        ("GCP_CREDENTIALS", "gcp-credentials-9", "gcp-credentials-9"),
        (
            "SERVICE_CREDENTIAL",
            "svc-credential-11",
            "svc-credential-11",
        ),
        ("KEY", "bare-key-value-12", "bare-key-value-12"),
        ("AUTH", "auth-value-10", "auth-value-10"),
        // Secret only because `--secret-name` says so.
        ("HMAC_SALT", "hmac-salt-value-13", "hmac-salt-value-13"),
    ];
    let mut masked_values: Vec<&str> = secrets.iter().map(|(_, _, secret)| *secret).collect();
    // The key inside the DSN, on its own too; and the value ECS resolves from `secrets` at run
    // time: deckhand never sees it, only its name.
    masked_values.extend(["dsn-key-value", "resolved-at-run-time"]);
    let mut c = crate::sandbox::container(&bed, &["sleep", "600"]);
    c.environment = Some(
        secrets
            .iter()
            .map(|(k, v, _)| (*k, *v))
            .chain([("AUTHOR", "someone-visible"), ("HMAC", "hmac-is-plain")])
            .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
            .collect(),
    );
    c.secrets = Some(vec![Secret::builder()
        .name("FROM_SSM")
        .value_from("arn:aws:ssm:us-east-1:123456789012:parameter/from-ssm")
        .build()
        .unwrap()]);
    c.log_configuration = Some(
        LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .options("awslogs-group", "/ecs/web")
            .options("awslogs-stream-prefix", "web")
            .build()
            .unwrap(),
    );
    let good = crate::sandbox::register(&client, "web", c).await;
    crate::sandbox::create_service(&client, "web", &good, 1, false).await;
    crate::sandbox::wait_until(&client, "web", "initial rollout", |s| {
        crate::sandbox::completed_on(s, &good)
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let files: Vec<std::path::PathBuf> = ["output", "summary.md", "report.json", "result.env"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    let image = good_image(&bed).await;
    let path = |i: usize| files[i].to_str().unwrap();
    let args = image_args(
        &image,
        &[
            "--ci",
            "github",
            "--output",
            "json",
            "--report",
            path(2),
            "--dotenv",
            path(3),
            "--secret-name",
            "HMAC_SALT",
            "--pre-deploy",
            "sh -c 'env; echo FROM_SSM=resolved-at-run-time'",
        ],
    );
    let env = [("GITHUB_OUTPUT", path(0)), ("GITHUB_STEP_SUMMARY", path(1))];
    let run = run_with_env(&sandbox, None, &args, &env).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains("web app | AUTHOR=someone-visible"),
        "the task's log is shown, with what is not secret:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("web app | HMAC=hmac-is-plain"),
        "a name of several words given with --secret-name matches that name only:\n{}",
        run.stderr
    );
    for name in ["DB_PASS", "REDIS_PASSWORD", "KEY", "HMAC_SALT", "FROM_SSM"] {
        assert!(
            run.stderr.contains(&format!("web app | {name}=***\n")),
            "{name}:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("web app | FROM_SSM=***"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("web app | PWD=/\n"),
        "the shell's PWD is a directory:\n{}",
        run.stderr
    );
    let mut texts = vec![
        ("stdout".to_string(), run.stdout.clone()),
        ("stderr".to_string(), run.stderr.clone()),
    ];
    for f in &files {
        texts.push((f.display().to_string(), std::fs::read_to_string(f).unwrap()));
    }
    for (what, text) in &texts {
        let shown: String = text
            .lines()
            // GitHub's own masking command carries the value to the runner, which hides it.
            .filter(|l| !l.starts_with("::add-mask::"))
            .map(|l| format!("{l}\n"))
            .collect();
        for &value in &masked_values {
            assert!(!shows(&shown, value), "{what} shows {value:?}:\n{shown}");
        }
    }
    // Every secret deckhand knows of (all but the one ECS resolves) is masked for the runner.
    let announced = secrets.iter().map(|(_, _, secret)| *secret);
    for value in announced {
        assert!(
            run.stderr.contains(&format!("::add-mask::{value}\n")),
            "{value} is masked for the runner too:\n{}",
            run.stderr
        );
    }
    assert_eq!(run.json()["image"], image.as_str());
    sandbox.stop().await;
}
