//! BuildKit builds through `deckhand push` and `deckhand deploy` on the bed's engine: the
//! Dockerfile features the classic builder cannot build, build secrets kept out of the image and
//! the output, another platform, the registry's cache on an engine that has none, a failed
//! step's last lines, and the classic builder when asked for.

use std::process::Command;

use crate::bed::{docker, unique, Bed, Repo, Run};

/// A Dockerfile using each feature only BuildKit builds; its image prints what they made. Its
/// first step is new each time, so nothing comes from an earlier test's cache.
fn features_dockerfile(base: &str) -> String {
    let run = unique("run");
    format!(
        "# check=error=true\n\
         FROM {base}\n\
         RUN echo {run} > /run-id\n\
         RUN --mount=type=cache,target=/cache echo from-a-cache-mount > /cache/mark && cp /cache/mark /mark\n\
         RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secret-length && cat /run/secrets/token\n\
         COPY <<EOF /hello\n\
         hello from a heredoc\n\
         EOF\n\
         COPY --link app.txt /app.txt\n\
         CMD [\"/bin/sh\", \"-c\", \"cat /mark /hello /app.txt /secret-length\"]\n"
    )
}

/// The build secret's value: it must reach the build and nothing else.
fn token() -> String {
    format!("build-token-{}", unique("s"))
}

/// No output, and nothing of the image (layers, history, config), holds `value`.
fn assert_nowhere(run: &Run, image: &str, value: &str) {
    assert!(
        !run.all().contains(value),
        "the secret reached the output:\n{}",
        run.all()
    );
    let history = docker(&["history", "--no-trunc", image]);
    assert!(
        !history.contains(value),
        "the secret is in the history:\n{history}"
    );
    let inspect = docker(&["image", "inspect", image]);
    assert!(!inspect.contains(value), "the secret is in the config");
    let saved = Command::new("docker")
        .args(["save", image])
        .output()
        .expect("docker save runs");
    assert!(saved.status.success());
    let needle = value.as_bytes();
    assert!(
        !saved.stdout.windows(needle.len()).any(|w| w == needle),
        "the secret is in the image's layers"
    );
}

#[test]
fn the_dockerfile_features_only_buildkit_builds_build_and_run_and_the_secret_stays_out() {
    let bed = Bed::get();
    let dockerfile = features_dockerfile(&bed.base_image);
    let repo = Repo::new(&[("Dockerfile", &dockerfile), ("app.txt", "the app\n")]);
    let name = format!("it/{}", unique("features"));
    let secret = token();
    let run = bed.push_with_env(
        repo.path(),
        &name,
        &[
            "--create-repository",
            "--secret",
            "id=token,env=BUILD_TOKEN",
        ],
        &[("BUILD_TOKEN", &secret)],
    );
    run.expect_code(0);
    assert!(run.stderr.contains("builder: BuildKit"), "{}", run.stderr);
    // Docker 26's built-in frontend has no build checks: said, not silently ignored
    assert!(
        run.stderr
            .contains("ignores the # check= directive (line 1)"),
        "{}",
        run.stderr
    );
    // BuildKit's step names, and the secret echoed by the build masked
    assert!(
        run.stderr.contains("COPY --link app.txt /app.txt ... done"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("    ***"), "{}", run.stderr);
    let image = format!("{}/{name}:{}", bed.registry, repo.sha);
    let out = docker(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "from-a-cache-mount",
            "hello from a heredoc",
            "the app",
            &secret.len().to_string()
        ],
        "the image made by the four features"
    );
    assert_nowhere(&run, &image, &secret);
}

#[test]
fn a_secret_from_a_file_is_served_and_a_missing_one_is_bad_input() {
    let bed = Bed::get();
    let repo = Repo::new(&[
        ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
        ("app.txt", "x\n"),
    ]);
    let name = format!("it/{}", unique("secretfile"));
    let missing = repo.path().join("nope.txt");
    let src = format!("id=npm,src={}", missing.display());
    let run = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--secret", &src],
    );
    run.expect_code(2);
    assert!(run.stderr.contains("npm"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("creating ECR repository"),
        "bad input changed something:\n{}",
        run.stderr
    );
    assert!(bed.registry_tags(&name).is_empty());

    let file = tempfile::NamedTempFile::new().unwrap();
    let secret = token();
    std::fs::write(file.path(), &secret).unwrap();
    // Readable during the build: its length is checked there.
    let dockerfile = format!(
        "FROM {}\nRUN --mount=type=secret,id=npm test \"$(wc -c < /run/secrets/npm)\" -eq {}\n",
        bed.base_image,
        secret.len()
    );
    let repo = Repo::new(&[("Dockerfile", &dockerfile)]);
    let src = format!("id=npm,src={}", file.path().display());
    let run = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--secret", &src],
    );
    run.expect_code(0);
    let image = format!("{}/{name}:{}", bed.registry, repo.sha);
    assert_nowhere(&run, &image, &secret);
}

#[test]
fn platform_arm64_is_written_into_the_pushed_image_config() {
    let bed = Bed::get();
    let repo = Repo::new(&[
        ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
        ("app.txt", "arm\n"),
    ]);
    let name = format!("it/{}", unique("arm"));
    let run = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--platform", "linux/arm64"],
    );
    run.expect_code(0);
    let config = bed.image_config(&name, &repo.sha);
    assert_eq!(config["architecture"], "arm64", "{config}");
    assert_eq!(config["os"], "linux");
}

/// Deletes the repository's images and all build cache from the bed's engine, as on a fresh
/// CI machine.
fn forget_locally(uri: &str) {
    let ids = docker(&["image", "ls", "-q", "--filter", &format!("reference={uri}")]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rmi", "-f"];
        args.extend(ids);
        docker(&args);
    }
    docker(&["builder", "prune", "-af"]);
}

#[test]
fn a_fresh_engine_takes_the_unchanged_steps_from_the_registry() {
    let bed = Bed::get();
    // The slow step is new to this engine (no earlier test cached it).
    let slow = format!("RUN echo the-slow-step {} > /slow", unique("slow"));
    let dockerfile = format!("FROM {}\n{slow}\nCOPY app.txt /app.txt\n", bed.base_image);
    let mut repo = Repo::new(&[("Dockerfile", &dockerfile), ("app.txt", "v1\n")]);
    let name = format!("it/{}", unique("cache"));
    let uri = format!("{}/{name}", bed.registry);
    let first = bed.push(repo.path(), &name, &["--create-repository"]);
    first.expect_code(0);
    let v1 = repo.sha.clone();
    assert!(
        first.stderr.contains(&format!("{slow} ... done")),
        "{}",
        first.stderr
    );

    forget_locally(&uri);
    repo.commit(&[("app.txt", "v2\n")]);
    let second = bed.push(repo.path(), &name, &[]);
    second.expect_code(0);
    assert!(
        second.stderr.contains(&format!("cache from {uri}:{v1}")),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("{slow} ... CACHED")),
        "the unchanged step came from the registry:\n{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("COPY app.txt /app.txt ... done"),
        "{}",
        second.stderr
    );

    // --no-cache: nothing imported, every step runs
    forget_locally(&uri);
    repo.commit(&[("app.txt", "v3\n")]);
    let third = bed.push(repo.path(), &name, &["--no-cache"]);
    third.expect_code(0);
    assert!(!third.stderr.contains("cache from"), "{}", third.stderr);
    assert!(
        third.stderr.contains(&format!("{slow} ... done")),
        "{}",
        third.stderr
    );
}

#[test]
fn a_failed_step_is_named_with_its_last_lines() {
    let bed = Bed::get();
    let dockerfile = format!(
        "FROM {}\nRUN echo first; echo second; exit 3\n",
        bed.base_image
    );
    let repo = Repo::new(&[("Dockerfile", &dockerfile)]);
    let name = format!("it/{}", unique("failstep"));
    let run = bed.push(repo.path(), &name, &["--create-repository"]);
    run.expect_code(1);
    let err = &run.stderr;
    assert!(err.contains("the image build failed at"), "{err}");
    assert!(err.contains("RUN echo first; echo second; exit 3"), "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(
        err.contains("its last output:\n    first\n    second"),
        "{err}"
    );
    assert!(bed.registry_tags(&name).is_empty());
}

#[test]
fn the_classic_builder_runs_when_asked_and_refuses_what_it_cannot_build() {
    let bed = Bed::get();
    let repo = Repo::new(&[
        ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
        ("app.txt", "classic\n"),
    ]);
    let name = format!("it/{}", unique("legacy"));
    let run = bed.push(
        repo.path(),
        &name,
        &["--create-repository", "--builder", "legacy"],
    );
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("builder: legacy (asked with --builder legacy)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(": COPY app.txt /app.txt"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Step 1/"),
        "the classic builder's steps:\n{}",
        run.stderr
    );
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);

    let features = Repo::new(&[
        ("Dockerfile", &features_dockerfile(&bed.base_image)),
        ("app.txt", "x\n"),
    ]);
    let other = format!("it/{}", unique("legacyrefused"));
    let run = bed.push(
        features.path(),
        &other,
        &["--create-repository", "--builder", "legacy"],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("RUN --mount (line 4), RUN --mount (line 5), a heredoc"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("drop --builder legacy"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("creating ECR repository"),
        "{}",
        run.stderr
    );
    assert!(bed.registry_tags(&other).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_builds_the_features_with_buildkit_and_its_tasks_run() {
    use crate::deploy::command::{deploy_args, run_with_env, service_td, stable_service};
    let bed = Bed::get();
    let (sandbox, client, good) = stable_service(false).await;
    // The task definition's command (sleep) keeps the new image's tasks running.
    let dockerfile = features_dockerfile(&bed.base_image);
    let repo = Repo::new(&[("Dockerfile", &dockerfile), ("app.txt", "deployed\n")]);
    let secret = token();
    let args = deploy_args(
        &["--repository", "demo/features", "--create-repository"],
        &["--secret", "id=token,env=BUILD_TOKEN", "--output", "json"],
    );
    let run = run_with_env(
        &sandbox,
        Some(repo.path()),
        &args,
        &[("BUILD_TOKEN", &secret)],
    )
    .await;
    run.expect_code(0);
    assert!(run.stderr.contains("builder: BuildKit"), "{}", run.stderr);
    assert!(!run.all().contains(&secret), "{}", run.all());
    let now = service_td(&client).await;
    assert_ne!(now, good, "the service runs the new revision");
    assert_eq!(run.json()["result"], "deployed");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm64_build_for_an_x86_task_definition_is_warned_about_and_fails_as_warned() {
    use crate::deploy::command::{deploy_args, run, service_td, stable_service};
    let (sandbox, client, good) = stable_service(false).await;
    let repo = Repo::new(&[
        ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
        ("app.txt", "arm\n"),
    ]);
    let args = deploy_args(
        &["--repository", "demo/arm", "--create-repository"],
        &["--platform", "linux/arm64", "--output", "json"],
    );
    let run = run(&sandbox, Some(repo.path()), &args).await;
    assert!(
        run.stderr.contains(
            "the image is built for arm64, but the task definition's runtimePlatform is not set"
        ),
        "{}",
        run.stderr
    );
    // The task definition runs x86: its tasks cannot start, and the deploy goes back.
    run.expect_code(3);
    assert_eq!(service_td(&client).await, good);
    sandbox.stop().await;
}

#[test]
fn what_dockerignore_leaves_out_stays_out_the_dockerfile_and_itself_too() {
    let bed = Bed::get();
    // As with `docker buildx build`: the Dockerfile is read on its own, so the ignore file
    // can leave it (and itself) out of `COPY .`.
    let dockerfile = format!(
        "FROM {}\nCOPY . /app\nRUN test \"$(ls -A /app)\" = app.txt\n",
        bed.base_image
    );
    let repo = Repo::new(&[
        ("Dockerfile", &dockerfile),
        (".dockerignore", "Dockerfile\n.dockerignore\n.git\n"),
        ("app.txt", "only me\n"),
    ]);
    let name = format!("it/{}", unique("ignored-build-files"));
    let run = bed.push(repo.path(), &name, &["--create-repository"]);
    run.expect_code(0);
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
}

#[test]
fn an_exception_inside_a_left_out_directory_arrives_with_its_directories() {
    let bed = Bed::get();
    let dockerfile = format!(
        "FROM {}\nCOPY . /ctx\nRUN test -f /ctx/docs/api/README.md && test ! -e /ctx/docs/guide.md \
         && test ! -e /ctx/docs/api/other.md\n",
        bed.base_image
    );
    let repo = Repo::new(&[
        ("Dockerfile", &dockerfile),
        (".dockerignore", "docs\n!docs/api/README.md\n.git\n"),
        ("docs/guide.md", "left out\n"),
        ("docs/api/README.md", "kept\n"),
        ("docs/api/other.md", "left out\n"),
    ]);
    let name = format!("it/{}", unique("exception"));
    bed.push(repo.path(), &name, &["--create-repository"])
        .expect_code(0);
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
}

#[test]
fn a_context_of_thousands_of_files_arrives_whole() {
    let bed = Bed::get();
    let dockerfile = format!(
        "FROM {}\nCOPY src /src\nRUN test \"$(find /src -type f | wc -l)\" -eq 6000\n",
        bed.base_image
    );
    let repo = Repo::new(&[("Dockerfile", &dockerfile)]);
    // Thousands of files mean thousands of small requests from the engine at once.
    for i in 0..6000 {
        let dir = repo.path().join(format!("src/d{}", i / 500));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), "x").unwrap();
    }
    std::fs::write(repo.path().join(".git/info/exclude"), "src/\n").unwrap();
    let name = format!("it/{}", unique("many"));
    let run = bed.push(repo.path(), &name, &["--create-repository"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("(context: 6000 files"),
        "{}",
        run.stderr
    );
}
