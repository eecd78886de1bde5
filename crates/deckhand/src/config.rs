//! `deckhand.toml`: a project's deploy settings in one file. The command line and `DECKHAND_*`
//! variables override it; unknown keys are errors that name their line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::cli::RollbackMode;
use crate::error::{Error, Result};

/// The default file, looked for in the working directory.
pub const DEFAULT_FILE: &str = "deckhand.toml";

/// The file's contents.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    pub cluster: Option<String>,
    pub region: Option<String>,
    /// ECR repository to build and push to.
    pub repository: Option<String>,
    /// An existing image instead of a build.
    pub image: Option<String>,
    /// The task definition file to register (as `--task-definition`), relative to this file;
    /// one service's.
    pub task_definition: Option<PathBuf>,
    #[serde(default, deserialize_with = "typed::timeout")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "typed::poll")]
    pub poll: Option<Duration>,
    pub rollback: Option<RollbackMode>,
    #[serde(default, deserialize_with = "typed::keep_revisions")]
    pub keep_revisions: Option<u32>,
    #[serde(default, deserialize_with = "typed::wait_for_others")]
    pub wait_for_others: Option<Duration>,
    pub take_over: Option<bool>,
    pub wait_until: Option<String>,
    pub max_failed_tasks: Option<usize>,
    pub log_lines: Option<usize>,
    /// IAM role assumed with the CI's OIDC token (`--role-to-assume`), and how.
    pub role_to_assume: Option<String>,
    pub role_session_name: Option<String>,
    #[serde(default, deserialize_with = "typed::role_duration")]
    pub role_duration: Option<Duration>,
    /// Audience of the GitHub Actions OIDC token.
    pub audience: Option<String>,
    /// Variable holding the OIDC token (GitLab's `id_tokens:`).
    pub web_identity_token_env: Option<String>,
    /// Extra names whose values are masked, besides the secret-looking ones.
    #[serde(default)]
    pub secret_names: Vec<String>,
    #[serde(default)]
    pub build: Build,
    /// What every service's new revision changes besides the image (`[render]`).
    #[serde(default)]
    pub render: Render,
    /// How CODE_DEPLOY services are deployed (`[codedeploy]`), under each service's own.
    #[serde(default)]
    pub codedeploy: CodeDeploy,
    /// In the order their updates start.
    #[serde(default)]
    pub services: Vec<Service>,
    /// One-off tasks that must succeed before any service changes (e.g. migrations).
    #[serde(default)]
    pub pre_deploy: Vec<PreDeploy>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Build {
    pub context: Option<PathBuf>,
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub create_repository: Option<bool>,
    /// `auto`, `buildkit` or `legacy`.
    pub builder: Option<crate::image::options::BuilderChoice>,
    /// Build secrets, each as `--secret` takes it: `id=NAME,src=FILE` or `id=NAME,env=VAR`.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// e.g. `linux/arm64`.
    pub platform: Option<String>,
    /// Images whose layers may serve as build cache.
    #[serde(default)]
    pub cache_from: Vec<String>,
    pub no_cache: Option<bool>,
    /// `default`, `host` or `none`.
    pub build_network: Option<crate::image::options::BuildNetwork>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    pub name: String,
    /// Containers that get the new image (default: those from the same repository).
    #[serde(default)]
    pub containers: Vec<String>,
    /// This service's own changes, applied after the file's `[render]` (`[services.render]`).
    #[serde(default)]
    pub render: Render,
    /// This service's CodeDeploy settings, over the file's `[codedeploy]`
    /// (`[services.codedeploy]`).
    #[serde(default)]
    pub codedeploy: CodeDeploy,
}

/// `[codedeploy]` / `[services.codedeploy]`: for services whose deployment controller is
/// CODE_DEPLOY, as the `--codedeploy-*` and `--appspec` flags take them.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CodeDeploy {
    pub application: Option<String>,
    pub deployment_group: Option<String>,
    /// Lifecycle event → Lambda function name or ARN (`{ BeforeAllowTraffic = "arn:…" }`).
    #[serde(default)]
    pub hooks: BTreeMap<String, String>,
    /// An AppSpec file (JSON or YAML), relative to this file.
    pub appspec: Option<PathBuf>,
}

/// Per-deploy task-definition changes, as the `--env`, `--secret-env`, … flags take them; a
/// key may start with `CONTAINER:` (`"worker:QUEUE" = "low"`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Render {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Name → Secrets Manager or SSM parameter ARN, or SSM parameter name.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// `[CONTAINER:]arn:aws:s3:::bucket/key.env`.
    #[serde(default)]
    pub env_files: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A shell line (`[CONTAINER:]…`) or a list of arguments for the containers that get
    /// the new image.
    pub command: Option<Command>,
    pub entry_point: Option<Command>,
    pub task_role: Option<String>,
    pub execution_role: Option<String>,
    /// `"1024"`, `"1 vCPU"` (a number is CPU units).
    pub cpu: Option<Size>,
    /// `"2048"`, `"2 GB"` (a number is MiB).
    pub memory: Option<Size>,
    pub log_group: Option<String>,
    pub log_stream_prefix: Option<String>,
}

/// A task size as a string (`"1 vCPU"`) or a number (`1024`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Number(u64),
    Text(String),
}

impl Size {
    pub fn text(&self) -> String {
        match self {
            Size::Number(n) => n.to_string(),
            Size::Text(t) => t.clone(),
        }
    }
}

/// A one-off task run with the new image before any service changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PreDeploy {
    /// The task definition family to register a revision of and run.
    pub family: String,
    /// The command, as a shell line (`bin/rails db:migrate`) or a list.
    pub command: Command,
    /// The container that runs the command and gets the new image (default: the family's
    /// containers from the image's repository).
    pub container: Option<String>,
}

/// A command as a string (split on whitespace) or as a list of arguments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Line(String),
    Args(Vec<String>),
}

impl Command {
    /// The arguments; a line is split as a POSIX shell would (quotes kept together), or on
    /// whitespace if its quotes do not close.
    pub fn args(&self) -> Vec<String> {
        match self {
            Command::Line(l) => shlex::split(l)
                .unwrap_or_else(|| l.split_whitespace().map(str::to_string).collect()),
            Command::Args(a) => a.clone(),
        }
    }
}

/// Parses a file's text; `origin` names it in errors.
pub fn parse(text: &str, origin: &Path) -> Result<File> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        Error::usage(format!(
            "{}{at}: {}",
            origin.display(),
            e.message().trim_end()
        ))
    })
}

/// Reads `--config PATH` (which must exist) or `deckhand.toml` in `dir` if there is one.
pub fn load(explicit: Option<&Path>, dir: &Path) -> Result<Option<(PathBuf, File)>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = dir.join(DEFAULT_FILE);
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some((path.clone(), parse(&text, &path)?)))
}

/// Values checked as they are read, so a bad one is an error naming its key and line.
mod typed {
    use super::*;

    fn duration<'de, D: Deserializer<'de>>(
        d: D,
        key: &str,
        parse: fn(&str) -> std::result::Result<Duration, String>,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{key}: {e}")))
    }

    pub fn timeout<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        duration(d, "timeout", crate::cli::parse_duration)
    }

    pub fn poll<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        duration(d, "poll", crate::cli::parse_poll)
    }

    pub fn wait_for_others<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        duration(d, "wait-for-others", crate::cli::parse_duration)
    }

    pub fn role_duration<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        duration(d, "role-duration", crate::cli::parse_duration)
    }

    pub fn keep_revisions<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<u32>, D::Error> {
        match u32::deserialize(d)? {
            0 => Err(serde::de::Error::custom("keep-revisions: keep at least 1")),
            n => Ok(Some(n)),
        }
    }
}

/// A file that sets every kind of setting, for tests here and in `settings`.
#[cfg(test)]
pub(crate) const FULL_EXAMPLE: &str = r#"
cluster = "production"
region = "eu-west-1"
repository = "team/app"
timeout = "15m"
keep-revisions = 5
role-to-assume = "arn:aws:iam::123456789012:role/deploy-app"
role-duration = "2h"
secret-names = ["HMAC", "LICENSE_BLOB"]

[build]
context = "app"
args = { RAILS_ENV = "production" }
tags = ["latest"]
builder = "buildkit"
secrets = ["id=npm,env=NPM_TOKEN"]
platform = "linux/arm64"
cache-from = ["team/app:latest"]
no-cache = true

[render]
env = { RAILS_ENV = "production", "worker:QUEUES" = "default" }
secret-env = { DB_PASSWORD = "arn:aws:ssm:eu-west-1:123456789012:parameter/db" }
cpu = "1 vCPU"
memory = 2048

[[services]]
name = "web"
containers = ["web"]

[[services]]
name = "worker"

[services.render]
command = ["bin/worker", "--all"]

[services.codedeploy]
deployment-group = "worker-bg"
hooks = { AfterAllowTestTraffic = "smoke-test" }

[codedeploy]
application = "app"

[[pre-deploy]]
family = "migrate"
command = "bin/rails db:migrate"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_is_typed() {
        let file = parse(FULL_EXAMPLE, Path::new("deckhand.toml")).unwrap();
        assert_eq!(file.cluster.as_deref(), Some("production"));
        assert_eq!(file.region.as_deref(), Some("eu-west-1"));
        assert_eq!(file.repository.as_deref(), Some("team/app"));
        assert_eq!(file.timeout, Some(std::time::Duration::from_secs(900)));
        assert_eq!(file.keep_revisions, Some(5));
        assert_eq!(
            file.role_to_assume.as_deref(),
            Some("arn:aws:iam::123456789012:role/deploy-app")
        );
        assert_eq!(
            file.role_duration,
            Some(std::time::Duration::from_secs(7200))
        );
        assert_eq!(file.secret_names, vec!["HMAC", "LICENSE_BLOB"]);
        assert_eq!(file.build.context, Some(PathBuf::from("app")));
        assert_eq!(file.build.args["RAILS_ENV"], "production");
        assert_eq!(file.build.tags, vec!["latest"]);
        assert_eq!(
            file.build.builder,
            Some(crate::image::options::BuilderChoice::BuildKit)
        );
        assert_eq!(file.build.secrets, vec!["id=npm,env=NPM_TOKEN"]);
        assert_eq!(file.build.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(file.build.cache_from, vec!["team/app:latest"]);
        assert_eq!(file.build.no_cache, Some(true));
        let names: Vec<_> = file.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["web", "worker"]);
        assert_eq!(file.services[0].containers, vec!["web"]);
        let td = &file.render;
        assert_eq!(td.env["worker:QUEUES"], "default");
        assert_eq!(td.cpu.as_ref().map(Size::text).as_deref(), Some("1 vCPU"));
        assert_eq!(td.memory, Some(Size::Number(2048)));
        assert_eq!(
            file.services[1].render.command,
            Some(Command::Args(vec!["bin/worker".into(), "--all".into()]))
        );
        assert_eq!(file.services[0].render, Render::default());
        assert_eq!(file.codedeploy.application.as_deref(), Some("app"));
        assert_eq!(file.services[0].codedeploy, CodeDeploy::default());
        let cd = &file.services[1].codedeploy;
        assert_eq!(cd.deployment_group.as_deref(), Some("worker-bg"));
        assert_eq!(cd.hooks["AfterAllowTestTraffic"], "smoke-test");
        assert_eq!(
            file.pre_deploy[0].command.args(),
            vec!["bin/rails", "db:migrate"]
        );
    }

    #[test]
    fn the_task_definition_is_a_path() {
        let file = parse(
            "task-definition = \"deploy/web.json\"\n",
            Path::new("deckhand.toml"),
        )
        .unwrap();
        assert_eq!(
            file.task_definition.as_deref(),
            Some(Path::new("deploy/web.json"))
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let err = parse(
            "cluster = \"c\"\nclustr = \"d\"\n",
            Path::new("deckhand.toml"),
        )
        .unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message.contains("deckhand.toml (line 2)"),
            "{}",
            err.message
        );
        assert!(err.message.contains("clustr"), "{}", err.message);
        let err = parse(
            "[[services]]\nname = \"web\"\ncontainer = \"x\"\n",
            Path::new("d.toml"),
        )
        .unwrap_err();
        assert!(err.message.contains("line 3"), "{}", err.message);
        assert!(parse("rollback = \"sometimes\"\n", Path::new("d.toml")).is_err());
        let err = parse("cluster = \"c\"\ntimeout = \"soon\"\n", Path::new("d.toml")).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        assert!(err.message.contains("timeout"), "{}", err.message);
        let err = parse(
            "[codedeploy]\napplication = \"a\"\ngroup = \"g\"\n",
            Path::new("d.toml"),
        )
        .unwrap_err();
        assert!(err.message.contains("line 3"), "{}", err.message);
        assert!(err.message.contains("group"), "{}", err.message);
        let err = parse(
            "[[services]]\nname = \"web\"\n[services.codedeploy]\nhook = {}\n",
            Path::new("d.toml"),
        )
        .unwrap_err();
        assert!(err.message.contains("line 4"), "{}", err.message);
        let err = parse("keep-revisions = 0\n", Path::new("d.toml")).unwrap_err();
        assert!(
            err.message.contains("keep-revisions: keep at least 1"),
            "{}",
            err.message
        );
    }
}
