//! `deckhand push` end to end: real engine, real registry with auth, moto for ECR and STS.

use crate::bed::{deckhand, unique, Bed, Repo, Run};

const SCRATCH_APP: &[(&str, &str)] = &[
    ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
    ("app.txt", "hello\n"),
];

/// Neither the ECR token nor the password it decodes to may appear anywhere.
fn assert_no_secrets(bed: &Bed, run: &Run) {
    let all = run.all();
    assert!(!all.contains(&bed.token()), "the ECR token leaked:\n{all}");
    assert!(
        !all.contains(&bed.password),
        "the registry password leaked:\n{all}"
    );
}

#[test]
fn pushes_by_sha_and_the_registry_agrees() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("push"));
    let run = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--tag", "latest", "-vv"],
    );
    run.expect_code(0);
    assert_no_secrets(&bed, &run);

    let out = run.json();
    let uri = format!("{}/{name}", bed.registry);
    assert_eq!(out["image"], format!("{uri}:{}", repo.sha));
    assert_eq!(out["skipped"], false);
    assert_eq!(out["tags"], serde_json::json!([repo.sha, "latest"]));
    let digest = out["digest"].as_str().unwrap();
    assert_eq!(out["pinned"], format!("{uri}@{digest}"));

    let mut want = vec![repo.sha.clone(), "latest".to_string()];
    want.sort();
    assert_eq!(bed.registry_tags(&name), want);
    let (registry_digest, _) = bed.manifest(&name, &repo.sha);
    assert_eq!(
        registry_digest, digest,
        "deckhand printed the digest the registry serves"
    );
    let config = bed.image_config(&name, &repo.sha);
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.revision"],
        repo.sha.as_str()
    );
    // build output reached the log step by step
    assert!(
        run.stderr.contains("COPY app.txt /app.txt ... "),
        "{}",
        run.stderr
    );
}

#[test]
fn a_second_run_skips_build_and_push() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("skip"));
    let first = bed.push(repo.path(), &name, &["--create-repository"]);
    first.expect_code(0);
    let (digest_before, manifest_before) = bed.manifest(&name, &repo.sha);

    let second = bed.push(repo.path(), &name, &[]);
    second.expect_code(0);
    assert_no_secrets(&bed, &second);
    let out = second.json();
    assert_eq!(out["skipped"], true);
    assert_eq!(out["digest"], digest_before.as_str());
    assert!(
        second.stderr.contains("already pushed"),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("==> build"), "{}", second.stderr);
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
    assert_eq!(
        bed.manifest(&name, &repo.sha),
        (digest_before, manifest_before)
    );

    // An extra tag on a skipped push is pointed at the pushed image, once.
    let tagged = bed.push(repo.path(), &name, &["--tag", "latest"]);
    tagged.expect_code(0);
    assert_eq!(
        bed.manifest(&name, "latest").0,
        bed.manifest(&name, &repo.sha).0
    );
    let again = bed.push(repo.path(), &name, &["--tag", "latest"]);
    again.expect_code(0);
    assert!(
        again.stderr.contains("latest already points at"),
        "{}",
        again.stderr
    );

    // --force rebuilds; the content is the same, so the digest is too
    let forced = bed.push(repo.path(), &name, &["--force"]);
    forced.expect_code(0);
    assert_eq!(forced.json()["skipped"], false);
    assert!(forced.stderr.contains("==> build"), "{}", forced.stderr);
}

#[test]
fn an_immutable_repository_never_fails_a_rerun() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("immutable"));
    create_repository(&name, true);
    bed.push(repo.path(), &name, &[]).expect_code(0);
    let again = bed.push(repo.path(), &name, &["--force"]);
    again.expect_code(0);
    assert_eq!(again.json()["skipped"], true);
    assert!(again.stderr.contains("immutable"), "{}", again.stderr);
}

#[test]
fn an_image_ecr_already_has_is_skipped_without_an_engine() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("ecr-has-it"));
    create_repository(&name, false);
    let digest = put_image(&name, &repo.sha);
    // No --registry and no engine: the answer must come from ECR's DescribeImages alone.
    let run = deckhand(
        repo.path(),
        &[
            "push",
            "--repository",
            &name,
            "--output",
            "json",
            "--tag",
            "latest",
        ],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    run.expect_code(0);
    assert_no_secrets(&bed, &run);
    let out = run.json();
    assert_eq!(out["skipped"], true);
    assert_eq!(out["digest"], digest.as_str());
    // the extra tag was added through ECR's API, on the same manifest
    let mut tags = tags_in_ecr(&name, &digest);
    tags.sort();
    assert_eq!(tags, vec![repo.sha.clone(), "latest".to_string()]);
    assert!(out["image"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/{name}:{}", repo.sha)));
}

#[test]
fn the_sha_comes_from_ci_variables_before_git() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("ci-sha"));
    let ci_sha = "0123456789abcdef0123456789abcdef01234567";
    let args = [
        "push",
        "--repository",
        &name,
        "--registry",
        &bed.registry,
        "--output",
        "json",
        "--create-repository",
    ];
    let run = deckhand(repo.path(), &args, &[("CI_COMMIT_SHA", ci_sha)]);
    run.expect_code(0);
    assert_eq!(run.json()["sha"], ci_sha);
    assert_eq!(bed.registry_tags(&name), vec![ci_sha.to_string()]);

    let bad = deckhand(repo.path(), &args, &[("GITHUB_SHA", "abc123")]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("$GITHUB_SHA"), "{}", bad.stderr);
}

#[test]
fn a_dirty_tree_is_refused_unless_allowed() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    std::fs::write(repo.path().join("app.txt"), "changed\n").unwrap();
    let name = format!("it/{}", unique("dirty"));
    let refused = bed.push(repo.path(), &name, &["--create-repository"]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("uncommitted changes"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--allow-dirty"),
        "{}",
        refused.stderr
    );
    assert!(bed.registry_tags(&name).is_empty());

    let allowed = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--allow-dirty"],
    );
    allowed.expect_code(0);
    assert_eq!(
        bed.registry_tags(&name),
        vec![format!("{}-dirty", repo.sha)]
    );
}

#[test]
fn build_args_target_and_run_steps_reach_the_engine() {
    let bed = Bed::get();
    let dockerfile = format!(
        "FROM {base} AS base\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\n\
         FROM base AS final\nRUN false\n",
        base = bed.base_image
    );
    let repo = Repo::new(&[("Dockerfile", &dockerfile)]);
    let name = format!("it/{}", unique("target"));
    // `--target base` stops before the failing stage
    let run = bed.push(
        repo.path(),
        &name,
        &[
            "--create-repository",
            "--build-arg",
            "GREETING=hi there",
            "--target",
            "base",
        ],
    );
    run.expect_code(0);
    let config = bed.image_config(&name, &repo.sha);
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.revision"],
        repo.sha.as_str()
    );
    assert!(run.stderr.contains("RUN echo"), "{}", run.stderr);
}

#[test]
fn secret_build_args_echoed_by_the_build_reach_no_output_in_any_mode() {
    let bed = Bed::get();
    // Secret-looking names (one value of 3 characters); and a password in the URL of a name
    // that is not secret.
    let token = "npm-token-value-4f1c";
    let short = "Qz8";
    let password = "mirror-pass-93";
    let mirror = format!("https://ci:{password}@mirror.example/npm/");
    let dir = tempfile::tempdir().unwrap();
    let token_arg = format!("NPM_TOKEN={token}");
    let short_arg = format!("DB_PASS={short}");
    let mirror_arg = format!("NPM_MIRROR={mirror}");
    for mode in ["none", "github"] {
        // A step of its own each run, so the build runs it rather than reuse a cached layer.
        let dockerfile = format!(
            "FROM {}\nARG NPM_TOKEN\nARG DB_PASS\nARG NPM_MIRROR\n\
             RUN echo {} && echo \"token $NPM_TOKEN\" && echo \"pass $DB_PASS.\" && \
             echo \"mirror $NPM_MIRROR\"\n",
            bed.base_image,
            unique("run")
        );
        let repo = Repo::new(&[("Dockerfile", &dockerfile)]);
        let path = |f: &str| dir.path().join(format!("{mode}.{f}"));
        let files = [path("output"), path("md"), path("json"), path("env")];
        let file = |i: usize| files[i].to_str().unwrap().to_string();
        let (report, dotenv) = (file(2), file(3));
        let name = format!("it/{}", unique("build-arg"));
        let args = [
            "push",
            "--repository",
            &name,
            "--registry",
            &bed.registry,
            "--create-repository",
            "--output",
            "json",
            "-vv",
            "--ci",
            mode,
            "--report",
            &report,
            "--dotenv",
            &dotenv,
            "--build-arg",
            &token_arg,
            "--build-arg",
            &short_arg,
            "--build-arg",
            &mirror_arg,
        ];
        let (output, summary) = (file(0), file(1));
        let env = [
            ("GITHUB_OUTPUT", output.as_str()),
            ("GITHUB_STEP_SUMMARY", summary.as_str()),
        ];
        let run = deckhand(repo.path(), &args, &env);
        run.expect_code(0);
        // The build did see them: its RUN printed each, masked.
        for line in [
            "token ***",
            "pass ***.",
            "mirror https://ci:***@mirror.example/npm/",
        ] {
            assert!(
                run.stderr.contains(line),
                "{mode}: {line:?}:\n{}",
                run.stderr
            );
        }
        let mut texts = vec![
            ("stdout".to_string(), run.stdout.clone()),
            ("stderr".to_string(), run.stderr.clone()),
        ];
        for f in &files {
            if let Ok(text) = std::fs::read_to_string(f) {
                texts.push((f.display().to_string(), text));
            }
        }
        assert_eq!(texts.len(), if mode == "github" { 6 } else { 4 }, "{mode}");
        for (what, text) in &texts {
            let shown: String = text
                .lines()
                // GitHub's own masking command carries the value to the runner, which hides it.
                .filter(|l| !l.starts_with("::add-mask::"))
                .map(|l| format!("{l}\n"))
                .collect();
            // The ECR token and its password too (GitHub mode announces them).
            for value in [token, short, password, &bed.token(), &bed.password] {
                assert!(
                    !crate::ci::shows(&shown, value),
                    "{mode}: {what} shows {value:?}:\n{shown}"
                );
            }
        }
        let out = serde_json::from_str::<serde_json::Value>(&texts[0].1).unwrap();
        assert_eq!(
            out["image"],
            format!("{}/{name}:{}", bed.registry, repo.sha)
        );
        if mode == "github" {
            // Each is masked for the runner before the first line that is not a mask.
            let lines: Vec<&str> = run.stderr.lines().collect();
            let first_other = lines
                .iter()
                .position(|l| !l.starts_with("::add-mask::"))
                .unwrap();
            for value in [token, short, password] {
                let at = lines
                    .iter()
                    .position(|l| *l == format!("::add-mask::{value}"))
                    .unwrap_or_else(|| panic!("::add-mask::{value}:\n{}", run.stderr));
                assert!(at < first_other, "{value} announced late:\n{}", run.stderr);
            }
        }
    }
}

/// The classic builder's failure (BuildKit's is in `buildkit::a_failed_step_is_named_with_its_last_lines`).
#[test]
fn a_failing_build_step_is_named() {
    let bed = Bed::get();
    let dockerfile = format!("FROM {}\nRUN echo before && false\n", bed.base_image);
    let repo = Repo::new(&[("Dockerfile", &dockerfile)]);
    let name = format!("it/{}", unique("run-false"));
    let run = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--builder", "legacy"],
    );
    run.expect_code(1);
    assert_no_secrets(&bed, &run);
    assert!(
        run.stderr.contains("the image build failed at Step 2/"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("RUN echo before && false"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("non-zero code: 1"), "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "no result on failure: {}",
        run.stdout
    );
    assert!(bed.registry_tags(&name).is_empty());
}

#[test]
fn a_missing_dockerfile_is_reported_before_anything_else() {
    let bed = Bed::get();
    let repo = Repo::new(&[("app.txt", "x")]);
    let run = bed.push(repo.path(), "it/no-dockerfile", &["--create-repository"]);
    run.expect_code(1);
    assert!(run.stderr.contains("no Dockerfile at"), "{}", run.stderr);
    assert!(run.stderr.contains("--file"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("error:").count(),
        1,
        "one error paragraph: {}",
        run.stderr
    );
}

#[test]
fn an_unknown_repository_is_named_and_not_created() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("unknown"));
    let run = bed.push(repo.path(), &name, &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!("{name:?} does not exist")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--create-repository"), "{}", run.stderr);
    assert!(bed.registry_tags(&name).is_empty());
}

#[test]
fn a_wrong_registry_password_fails_clearly() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("wrong-pass"));
    let args = [
        "push",
        "--repository",
        &name,
        "--registry",
        &bed.wrong_auth_registry,
        "--create-repository",
        "-vv",
    ];
    let run = deckhand(repo.path(), &args, &[]);
    run.expect_code(1);
    assert_no_secrets(&bed, &run);
    assert!(run.stderr.contains("rejected the login"), "{}", run.stderr);
}

#[test]
fn a_registry_that_is_down_fails_clearly() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let closed = closed_port();
    let args = [
        "push",
        "--repository",
        "it/registry-down",
        "--registry",
        &closed,
        "--create-repository",
    ];
    let run = deckhand(repo.path(), &args, &[]);
    run.expect_code(1);
    assert_no_secrets(&bed, &run);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the registry {closed}")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_docker_engine_that_is_down_fails_clearly() {
    let bed = Bed::get();
    let repo = Repo::new(SCRATCH_APP);
    let name = format!("it/{}", unique("no-engine"));
    let run = bed.push_with_env(
        repo.path(),
        &name,
        &["--create-repository"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    run.expect_code(1);
    assert_no_secrets(&bed, &run);
    assert!(
        run.stderr
            .contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("DOCKER_HOST"), "{}", run.stderr);
}

#[test]
fn a_dockerfile_outside_the_context_is_sent_with_it() {
    let bed = Bed::get();
    let repo = Repo::new(&[
        ("ctx/app.txt", "hi"),
        ("build/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
    ]);
    let name = format!("it/{}", unique("outside"));
    let run = bed.push(
        &repo.path().join("ctx"),
        &name,
        &["--create-repository", "--file", "../build/Dockerfile"],
    );
    run.expect_code(0);
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
}

/// A loopback port with nothing listening.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ecr() -> aws_sdk_ecr::Client {
    runtime().block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        aws_sdk_ecr::Client::new(&config)
    })
}

/// Creates an ECR repository in moto, with immutable tags if asked.
fn create_repository(name: &str, immutable: bool) {
    use aws_sdk_ecr::types::ImageTagMutability;
    let client = ecr();
    let mutability = if immutable {
        ImageTagMutability::Immutable
    } else {
        ImageTagMutability::Mutable
    };
    runtime()
        .block_on(
            client
                .create_repository()
                .repository_name(name)
                .image_tag_mutability(mutability)
                .send(),
        )
        .unwrap();
}

/// The tags ECR (moto) holds for `digest` in `name`.
fn tags_in_ecr(name: &str, digest: &str) -> Vec<String> {
    use aws_sdk_ecr::types::ImageIdentifier;
    let client = ecr();
    let out = runtime()
        .block_on(
            client
                .describe_images()
                .repository_name(name)
                .image_ids(ImageIdentifier::builder().image_digest(digest).build())
                .send(),
        )
        .unwrap();
    out.image_details()
        .iter()
        .flat_map(|d| d.image_tags().iter().cloned())
        .collect()
}

/// Registers an image manifest with `tag` directly in moto's ECR; returns its digest.
fn put_image(name: &str, tag: &str) -> String {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": format!("sha256:{}", "1".repeat(64))},
        "layers": []
    })
    .to_string();
    let client = ecr();
    let out = runtime()
        .block_on(
            client
                .put_image()
                .repository_name(name)
                .image_tag(tag)
                .image_manifest(manifest)
                .send(),
        )
        .unwrap();
    out.image()
        .unwrap()
        .image_id()
        .unwrap()
        .image_digest()
        .unwrap()
        .to_string()
}
