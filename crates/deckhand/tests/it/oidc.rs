//! `--role-to-assume`: the CI's OIDC token (GitHub's ID-token endpoint played by a loopback
//! server, a GitLab `id_tokens` variable, a token file), STS AssumeRoleWithWebIdentity on the
//! bed's moto (through a recording relay), and the sandbox called with the assumed keys only;
//! no token or credential in any output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use deckhand_sandbox::Sandbox;

use crate::bed::{Bed, Run};
use crate::deploy::command::{deploy_args, good_image, stable_service};
use crate::sandbox::{container, create_service, register, sandbox};

const ROLE: &str = "arn:aws:iam::123456789012:role/deckhand-deploy";

/// One HTTP request as a test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP/1.1 server answering each request (one a connection) with `answer`:
/// (status, content type, body). Returns its address and what it was asked.
fn serve(
    answer: impl Fn(&Seen) -> (u16, &'static str, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let target = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request = Seen {
                target,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let (status, kind, text) = answer(&request);
            log.lock().unwrap().push(request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (addr, seen)
}

/// GitHub's ID-token endpoint: `{"value": token}` for the right bearer token and audience,
/// else 401 or 403 as GitHub answers.
fn github_endpoint(request_token: &str, id_token: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let (bearer, id_token) = (format!("Bearer {request_token}"), id_token.to_string());
    let (addr, seen) = serve(move |r| {
        if !r.target.starts_with("/token?api-version=2.0&") {
            return (404, "text/plain", "not found".into());
        }
        if r.header("authorization") != Some(bearer.as_str()) {
            return (401, "text/plain", "Bad credentials".into());
        }
        if !r.target.ends_with("&audience=sts.amazonaws.com") {
            return (
                403,
                "text/plain",
                "Can't issue ID_TOKEN for audience".into(),
            );
        }
        let body = serde_json::json!({"count": 1, "value": id_token}).to_string();
        (200, "application/json", body)
    });
    (format!("http://{addr}/token?api-version=2.0"), seen)
}

/// What a test server was asked, shared with its thread.
type Log<T> = Arc<Mutex<Vec<T>>>;

/// What STS handed out through [`sts_relay`].
#[derive(Debug, Default, Clone)]
struct Handed {
    access_key: String,
    secret: String,
    session_token: String,
}

/// How the STS relay answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sts {
    /// moto's answers as they are.
    Relay,
    /// moto's, the first one's credentials expiring two minutes from now.
    ShortFirst,
    /// AccessDenied.
    Refuse,
}

/// STS: moto's answers relayed (or refused), each answer's credentials kept for the test.
fn sts_relay(mode: Sts) -> (String, Log<Seen>, Log<Handed>) {
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("the bed's moto (AWS_ENDPOINT_URL)");
    let handed = Arc::new(Mutex::new(Vec::new()));
    let keep = handed.clone();
    let (addr, seen) = serve(move |r| {
        if mode == Sts::Refuse {
            let body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to \
                perform sts:AssumeRoleWithWebIdentity</Message></Error>\
                <RequestId>4c9d-refused</RequestId></ErrorResponse>";
            return (403, "text/xml", body.into());
        }
        let mut answer = ureq::post(&moto)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(r.body.as_bytes())
            .expect("moto answers");
        let mut text = answer.body_mut().read_to_string().unwrap();
        if mode == Sts::ShortFirst && keep.lock().unwrap().is_empty() {
            let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(120);
            let soon = aws_smithy_types::DateTime::from(soon)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap();
            let start = text.find("<Expiration>").unwrap() + "<Expiration>".len();
            let end = text.find("</Expiration>").unwrap();
            text.replace_range(start..end, &soon);
        }
        let between = |tag: &str| {
            let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
            let start = text.find(&open).map(|i| i + open.len())?;
            let end = text[start..].find(&close)? + start;
            Some(text[start..end].to_string())
        };
        if let (Some(access_key), Some(secret), Some(session_token)) = (
            between("AccessKeyId"),
            between("SecretAccessKey"),
            between("SessionToken"),
        ) {
            keep.lock().unwrap().push(Handed {
                access_key,
                secret,
                session_token,
            });
        }
        (200, "text/xml", text)
    });
    (format!("http://{addr}"), seen, handed)
}

/// A token that looks like a JWT and appears nowhere else.
fn id_token() -> String {
    let id = crate::bed::unique("oidc").replace('-', "");
    format!("eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ{id}In0.c2lnbmF0dXJl{id}")
}

/// `deckhand args…` on the sandbox with STS at `sts` and no AWS keys in its environment:
/// only the assumed role's credentials can work.
async fn run_without_keys(
    sandbox: &Sandbox,
    sts: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    run_without_keys_in(None, sandbox, sts, args, env).await
}

/// [`run_without_keys`] in `cwd` (a temporary directory if none).
async fn run_without_keys_in(
    cwd: Option<&std::path::Path>,
    sandbox: &Sandbox,
    sts: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let cwd = cwd.map(std::path::Path::to_path_buf);
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("AWS_ENDPOINT_URL".into(), sandbox.endpoint()));
    env.push(("AWS_ENDPOINT_URL_STS".into(), sts.into()));
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let temp = tempfile::tempdir().unwrap();
        let dir = cwd.unwrap_or_else(|| temp.path().to_path_buf());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut cmd = crate::bed::command(&dir, &args, &env);
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            cmd.env_remove(k);
        }
        let out = cmd.output().expect("deckhand runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// None of `secrets` in `texts` (masks told to GitHub aside).
fn assert_hidden(texts: &[&str], secrets: &[&str]) {
    for text in texts {
        let shown: String = text
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n");
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(
                !shown.contains(secret),
                "a secret ({}…) is in the output:\n{shown}",
                &secret[..6]
            );
        }
    }
}

/// The sandbox's calls that came with `key` beyond those before.
fn calls_with(sandbox: &Sandbox, key: &str) -> u64 {
    sandbox.access_keys().get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_actions_deploy_runs_on_the_assumed_role_and_shows_no_token() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let request_token = format!("ghs_{}", crate::bed::unique("req").replace('-', ""));
    let token = id_token();
    let (url, asked) = github_endpoint(&request_token, &token);
    let (sts, sts_seen, handed) = sts_relay(Sts::Relay);
    let static_key = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let static_calls = calls_with(&sandbox, &static_key);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let report_arg = report.to_str().unwrap();
    let extra = [
        "--output",
        "json",
        "--ci",
        "github",
        "--report",
        report_arg,
        "--role-to-assume",
        ROLE,
    ];
    let args = deploy_args(&["--image", &image], &extra);
    let run = run_without_keys(
        &sandbox,
        &sts,
        &args,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "7001"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", &url),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &request_token),
        ],
    )
    .await;
    run.expect_code(0);
    assert_eq!(run.json()["result"], "deployed", "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "assumed role {ROLE} (session deckhand-7001-1) with the GitHub Actions OIDC token; \
             credentials until 20"
        )),
        "{}",
        run.stderr
    );
    // GitHub was asked once, with the request token, for STS's audience.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    // STS got GitHub's token; every call to the sandbox came with the keys it handed out.
    let sts_seen = sts_seen.lock().unwrap().clone();
    assert!(sts_seen
        .iter()
        .any(|r| r.body.contains("Action=AssumeRoleWithWebIdentity")
            && r.body.contains(&format!("WebIdentityToken={token}"))
            && r.body.contains("RoleSessionName=deckhand-7001-1")));
    let handed = handed.lock().unwrap().clone();
    assert_eq!(handed.len(), 1, "one assumption for the whole deploy");
    let keys = &handed[0];
    assert!(keys.access_key.starts_with("ASIA"), "{}", keys.access_key);
    assert!(
        calls_with(&sandbox, &keys.access_key) > 3,
        "{:?}",
        sandbox.access_keys()
    );
    assert_eq!(
        calls_with(&sandbox, &static_key),
        static_calls,
        "no call with the bed's static key"
    );
    // Nothing secret in any output; GitHub is told to mask each.
    let written = std::fs::read_to_string(&report).unwrap();
    let secrets = [
        token.as_str(),
        request_token.as_str(),
        keys.secret.as_str(),
        keys.session_token.as_str(),
    ];
    assert_hidden(&[&run.stdout, &run.stderr, &written], &secrets);
    for secret in secrets {
        assert!(
            run.stderr.contains(&format!("::add-mask::{secret}\n")),
            "no mask for {}…:\n{}",
            &secret[..6],
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_or_role_stops_before_any_call() {
    let (sandbox, _client) = sandbox(8192).await;
    let request_token = format!("ghs_{}", crate::bed::unique("req").replace('-', ""));
    let token = id_token();
    let (url, _) = github_endpoint(&request_token, &token);
    let (sts, _, _) = sts_relay(Sts::Relay);
    let (refusing_sts, _, _) = sts_relay(Sts::Refuse);
    let base = ["--image", "deckhand-test/x:1", "--role-to-assume", ROLE];
    // (extra flags, request token, STS, exit code, what the error says)
    let cases: [(&[&str], &str, &str, i32, &str); 3] = [
        (
            &["--audience", "api://elsewhere"],
            &request_token,
            &sts,
            1,
            "GitHub Actions refused the OIDC token request (HTTP 403: Can't issue ID_TOKEN",
        ),
        (&[], "ghs_wrong", &sts, 1, "(HTTP 401: Bad credentials)"),
        (
            &[],
            &request_token,
            &refusing_sts,
            1,
            "could not assume role arn:aws:iam::123456789012:role/deckhand-deploy with the \
             GitHub Actions OIDC token (STS AssumeRoleWithWebIdentity: AccessDenied: Not \
             authorized to perform sts:AssumeRoleWithWebIdentity)",
        ),
    ];
    for (extra, bearer, sts, code, words) in cases {
        let mut more = base.to_vec();
        more.extend_from_slice(extra);
        let args = deploy_args(&[], &more);
        let run = run_without_keys(
            &sandbox,
            sts,
            &args,
            &[
                ("ACTIONS_ID_TOKEN_REQUEST_URL", &url),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", bearer),
            ],
        )
        .await;
        run.expect_code(code);
        assert!(run.stderr.contains(words), "{words}:\n{}", run.stderr);
        assert_hidden(&[&run.stdout, &run.stderr], &[&token, &request_token]);
    }
    assert!(sandbox.calls().is_empty(), "{:?}", sandbox.calls());
    assert!(sandbox.access_keys().is_empty());
}

#[test]
fn without_a_token_the_error_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let status = ["status", "--cluster", "c", "--service", "web"];
    let with_role = |extra: &[&'static str]| {
        let mut a = status.to_vec();
        a.extend_from_slice(&["--role-to-assume", ROLE]);
        a.extend_from_slice(extra);
        a
    };
    // Nothing is listening here: the run must stop before any call.
    let nowhere = [("AWS_ENDPOINT_URL", "http://127.0.0.1:9")];
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            with_role(&[]),
            vec![("GITHUB_ACTIONS", "true")],
            "Add `permissions: id-token: write` (with `contents: read`) to the job",
        ),
        (
            with_role(&["--web-identity-token-env", "AWS_ID_TOKEN"]),
            vec![("GITLAB_CI", "true")],
            "declare AWS_ID_TOKEN under `id_tokens:` in the job, with `aud` sts.amazonaws.com",
        ),
        (
            with_role(&["--role-duration", "5m"]),
            vec![],
            "--role-duration 300s is outside what STS grants",
        ),
        (
            [&status[..], &["--audience", "sts.amazonaws.com"]].concat(),
            vec![],
            "--audience is only used with --role-to-assume",
        ),
    ];
    for (args, env, words) in cases {
        let mut env = env;
        env.extend_from_slice(&nowhere);
        let run = crate::bed::deckhand(dir.path(), &args, &env);
        run.expect_code(2);
        assert!(run.stderr.contains(words), "{words}:\n{}", run.stderr);
        assert!(
            !run.stderr.contains("could not be reached"),
            "{}",
            run.stderr
        );
    }
}

/// A sandbox with service `web` (no tasks) in cluster `c`, for `deckhand status`.
async fn quiet_service() -> Sandbox {
    let bed = Bed::get();
    let (sandbox, client) = sandbox(8192).await;
    let td = register(&client, "web", container(&bed, &["sleep", "600"])).await;
    create_service(&client, "web", &td, 0, false).await;
    sandbox
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_id_token_variable_assumes_the_role_again_before_it_expires() {
    let sandbox = quiet_service().await;
    let token = id_token();
    // The first credentials are about to expire: the calls get new ones, assumed again.
    let (sts, sts_seen, handed) = sts_relay(Sts::ShortFirst);
    let args = [
        "status",
        "--cluster",
        "c",
        "--service",
        "web",
        "--ci",
        "gitlab",
        "--role-to-assume",
        ROLE,
        "--web-identity-token-env",
        "AWS_ID_TOKEN",
        "--role-duration",
        "20m",
    ];
    let env = [
        ("GITLAB_CI", "true"),
        ("CI_JOB_ID", "8123"),
        ("AWS_ID_TOKEN", token.as_str()),
    ];
    let run = run_without_keys(&sandbox, &sts, &args, &env).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "assumed role {ROLE} (session deckhand-8123) with the OIDC token in $AWS_ID_TOKEN"
        )),
        "{}",
        run.stderr
    );
    let sts_seen = sts_seen.lock().unwrap().clone();
    assert!(sts_seen
        .iter()
        .any(|r| r.body.contains(&format!("WebIdentityToken={token}"))
            && r.body.contains("DurationSeconds=1200")));
    let handed = handed.lock().unwrap().clone();
    assert_eq!(handed.len(), 2, "assumed again once: {handed:?}");
    let (first, renewed) = (&handed[0], &handed[1]);
    assert_eq!(calls_with(&sandbox, &first.access_key), 0);
    assert!(
        calls_with(&sandbox, &renewed.access_key) > 0,
        "{:?}",
        sandbox.access_keys()
    );
    assert_eq!(
        sandbox.access_keys().len(),
        2,
        "the test's key and the renewed role's"
    );
    for keys in [first, renewed] {
        assert_hidden(
            &[&run.stdout, &run.stderr],
            &[&token, &keys.secret, &keys.session_token],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_works_through_the_aws_chain_and_with_role_to_assume() {
    let sandbox = quiet_service().await;
    let token = id_token();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let file = file.to_str().unwrap();
    let status = ["status", "--cluster", "c", "--service", "web"];
    // AWS's own variables, no deckhand flag: aws-config's web-identity provider (Jenkins,
    // EKS-style runners).
    let (sts, sts_seen, handed) = sts_relay(Sts::Relay);
    let run = run_without_keys(
        &sandbox,
        &sts,
        &status,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", file),
            ("AWS_ROLE_ARN", ROLE),
            ("AWS_ROLE_SESSION_NAME", "jenkins-42"),
        ],
    )
    .await;
    run.expect_code(0);
    assert!(sts_seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.body.contains("RoleSessionName=jenkins-42")
            && r.body.contains(&format!("WebIdentityToken={token}"))));
    let chain = handed.lock().unwrap()[0].clone();
    assert!(
        calls_with(&sandbox, &chain.access_key) > 0,
        "{:?}",
        sandbox.access_keys()
    );
    assert_hidden(
        &[&run.stdout, &run.stderr],
        &[&token, &chain.secret, &chain.session_token],
    );

    // The same file with --role-to-assume, a role of deckhand's choosing.
    let (sts, _, handed) = sts_relay(Sts::Relay);
    let mut args = status.to_vec();
    args.extend_from_slice(&[
        "--role-to-assume",
        ROLE,
        "--role-session-name",
        "jenkins-43",
    ]);
    let run = run_without_keys(
        &sandbox,
        &sts,
        &args,
        &[("AWS_WEB_IDENTITY_TOKEN_FILE", file)],
    )
    .await;
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "assumed role {ROLE} (session jenkins-43) with the OIDC token in {file}"
        )),
        "{}",
        run.stderr
    );
    let ours = handed.lock().unwrap()[0].clone();
    assert!(
        calls_with(&sandbox, &ours.access_key) > 0,
        "{:?}",
        sandbox.access_keys()
    );
    assert_hidden(
        &[&run.stdout, &run.stderr],
        &[&token, &ours.secret, &ours.session_token],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckhand_toml_names_the_role_for_a_deploy() {
    let sandbox = quiet_service().await;
    let token = id_token();
    let (sts, sts_seen, handed) = sts_relay(Sts::Relay);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deckhand.toml"),
        format!(
            "role-to-assume = \"{ROLE}\"\nrole-session-name = \"from-toml\"\n\
             role-duration = \"30m\"\nweb-identity-token-env = \"AWS_ID_TOKEN\"\n"
        ),
    )
    .unwrap();
    let args = deploy_args(&["--image", "deckhand-test/x:1"], &["--dry-run"]);
    let run = run_without_keys_in(
        Some(dir.path()),
        &sandbox,
        &sts,
        &args,
        &[("AWS_ID_TOKEN", token.as_str())],
    )
    .await;
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "assumed role {ROLE} (session from-toml) with the OIDC token in $AWS_ID_TOKEN"
        )),
        "{}",
        run.stderr
    );
    assert!(sts_seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.body.contains("DurationSeconds=1800")));
    let keys = handed.lock().unwrap()[0].clone();
    assert!(
        calls_with(&sandbox, &keys.access_key) > 0,
        "{:?}",
        sandbox.access_keys()
    );
    assert_hidden(
        &[&run.stdout, &run.stderr],
        &[&token, &keys.secret, &keys.session_token],
    );
}
