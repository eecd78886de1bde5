//! Access to the local bed, the deckhand binary, and the registry's own view of an image.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;

/// The bed's addresses, read from the environment `scripts/bed up` writes to `.bed/env`.
pub struct Bed {
    pub registry: String,
    pub wrong_auth_registry: String,
    pub password: String,
    pub base_image: String,
    /// The aws CLI and fabfuel's ecs-deploy, from the bed's venv.
    pub aws_cli: String,
    pub ecs_deploy: String,
}

impl Bed {
    /// The bed, or a loud failure: these tests never skip.
    pub fn get() -> Bed {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: the local bed is not up. Run `scripts/test`, or \
                     `scripts/bed up && . .bed/env` before `cargo test`."
                )
            })
        };
        Bed {
            registry: var("DECKHAND_TEST_REGISTRY"),
            wrong_auth_registry: var("DECKHAND_TEST_WRONG_AUTH_REGISTRY"),
            password: var("DECKHAND_TEST_REGISTRY_PASSWORD"),
            base_image: var("DECKHAND_TEST_BASE_IMAGE"),
            aws_cli: var("DECKHAND_TEST_AWS_CLI"),
            ecs_deploy: var("DECKHAND_TEST_ECS_DEPLOY"),
        }
    }

    /// The ECR token moto hands out, which must never appear in output.
    pub fn token(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", self.password))
    }

    /// `deckhand push --repository <repo> --registry <bed> --output json` plus `extra`, in `cwd`.
    pub fn push(&self, cwd: &Path, repo: &str, extra: &[&str]) -> Run {
        self.push_with_env(cwd, repo, extra, &[])
    }

    /// [`Bed::push`] with more environment variables.
    pub fn push_with_env(
        &self,
        cwd: &Path,
        repo: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut args = vec![
            "push",
            "--repository",
            repo,
            "--registry",
            &self.registry,
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        deckhand(cwd, &args, env)
    }

    fn auth_header(&self) -> String {
        format!("Basic {}", self.token())
    }

    /// Tags of `repo` in the bed's registry (empty if the repository is unknown).
    pub fn registry_tags(&self, repo: &str) -> Vec<String> {
        let url = format!("http://{}/v2/{repo}/tags/list", self.registry);
        match ureq::get(&url)
            .header("Authorization", self.auth_header())
            .call()
        {
            Ok(mut resp) => {
                let body: serde_json::Value =
                    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
                let mut tags: Vec<String> = body["tags"]
                    .as_array()
                    .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default();
                tags.sort();
                tags
            }
            Err(ureq::Error::StatusCode(404)) => Vec::new(),
            Err(e) => panic!("registry tags/list for {repo}: {e}"),
        }
    }

    /// (manifest digest, manifest JSON) of `repo:tag` as the registry serves it.
    pub fn manifest(&self, repo: &str, tag: &str) -> (String, serde_json::Value) {
        let url = format!("http://{}/v2/{repo}/manifests/{tag}", self.registry);
        let mut resp = ureq::get(&url)
            .header("Authorization", self.auth_header())
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )
            .call()
            .unwrap_or_else(|e| panic!("manifest {repo}:{tag}: {e}"));
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .expect("registry sends the digest")
            .to_str()
            .unwrap()
            .to_string();
        let body = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        (digest, body)
    }

    /// The image config (labels etc.) of `repo:tag`, fetched from the registry.
    pub fn image_config(&self, repo: &str, tag: &str) -> serde_json::Value {
        let (_, manifest) = self.manifest(repo, tag);
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let url = format!("http://{}/v2/{repo}/blobs/{config_digest}", self.registry);
        let mut resp = ureq::get(&url)
            .header("Authorization", self.auth_header())
            .call()
            .unwrap();
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
    }
}

/// A name no other test uses, for repositories and tags on the shared bed.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// A committed git repository in a temp dir, holding `files` (path, contents).
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub sha: String,
}

impl Repo {
    pub fn new(files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        git(dir.path(), &["init", "-q"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "test"]);
        let sha = git(dir.path(), &["rev-parse", "HEAD"]);
        Repo { dir, sha }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `files` and commits them; `sha` becomes the new commit's.
    pub fn commit(&mut self, files: &[(&str, &str)]) {
        for (path, contents) in files {
            std::fs::write(self.dir.path().join(path), contents).unwrap();
        }
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "-q", "-m", "change"]);
        self.sha = git(self.dir.path(), &["rev-parse", "HEAD"]);
    }
}

/// Runs the docker CLI against the bed's engine; returns its stdout, failing on an error.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "user.name=test",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The result of running the deckhand binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.all()))
    }

    /// Asserts the exit code, printing everything on mismatch.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; output:\n{}", self.all());
        self
    }
}

/// `deckhand args…` in `cwd` with a clean CI environment plus `env`, ready to run.
pub fn command(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deckhand"));
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DECKHAND_") && !k.starts_with("DECKHAND_TEST_")
            || [
                "GITHUB_SHA",
                "CI_COMMIT_SHA",
                "GIT_COMMIT",
                "GITHUB_ACTIONS",
                "GITLAB_CI",
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN",
            ]
            .contains(&k.as_str())
        {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `deckhand args…` in `cwd` with a clean CI environment plus `env`.
pub fn deckhand(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command(cwd, args, env).output().expect("deckhand runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A running deckhand whose log can be read as it is written.
pub struct Running {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    seen: String,
}

impl Running {
    /// Starts `deckhand args…` like [`deckhand`] does.
    pub fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        use std::process::Stdio;
        let mut child = command(cwd, args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("deckhand starts");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
        Running {
            child,
            stderr,
            seen: String::new(),
        }
    }

    /// Reads the log until a line contains `text` (the process's own progress, no sleeping).
    pub fn wait_for_line(&mut self, text: &str) {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            let n = self.stderr.read_line(&mut line).expect("stderr readable");
            assert!(
                n > 0,
                "deckhand ended before logging {text:?}:\n{}",
                self.seen
            );
            self.seen.push_str(&line);
            if line.contains(text) {
                return;
            }
        }
    }

    /// Sends `signal` (e.g. "TERM") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the exit and collects the rest of the output.
    pub fn finish(mut self) -> Run {
        use std::io::Read;
        let mut rest = String::new();
        self.stderr
            .read_to_string(&mut rest)
            .expect("stderr readable");
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).expect("stdout readable");
        }
        let status = self.child.wait().expect("deckhand exits");
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.seen + &rest,
        }
    }
}
