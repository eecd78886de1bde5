//! `deckhand.toml`: a project's deploy settings in one file. The command line and `DECKHAND_*`
//! variables override it; unknown keys are errors that name their line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{DeployArgs, RollbackMode};
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
    pub timeout: Option<String>,
    pub poll: Option<String>,
    pub rollback: Option<String>,
    pub keep_revisions: Option<u32>,
    pub wait_for_others: Option<String>,
    pub max_failed_tasks: Option<usize>,
    #[serde(default)]
    pub build: Build,
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
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    pub name: String,
    /// Containers that get the new image (default: those from the same repository).
    #[serde(default)]
    pub containers: Vec<String>,
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

/// Fills in `args` from `file` wherever the command line and environment said nothing
/// (`given(id)` tells, by clap argument id), then checks what a deploy needs (pure).
pub fn apply(
    file: &File,
    args: &mut DeployArgs,
    region: &mut Option<String>,
    given: impl Fn(&str) -> bool,
) -> Result<()> {
    let duration = |key: &str, text: &str| {
        crate::cli::parse_duration(text).map_err(|e| Error::usage(format!("{key}: {e}")))
    };
    if let (false, Some(v)) = (given("region"), &file.region) {
        *region = Some(v.clone());
    }
    if let (false, Some(v)) = (given("cluster"), &file.cluster) {
        args.target.cluster = v.clone();
    }
    if !given("services") && !file.services.is_empty() {
        args.target.services = file.services.iter().map(|s| s.name.clone()).collect();
    }
    let source_given = given("image") || given("repository");
    if file.image.is_some() && file.repository.is_some() {
        return Err(Error::usage(
            "deckhand.toml sets both `image` and `repository`: deploy an existing image, or \
             build one into the repository, not both",
        ));
    }
    if !source_given {
        args.image = file.image.clone();
        args.repository = file.repository.clone();
    }
    if let (false, Some(v)) = (given("timeout"), &file.timeout) {
        args.watch.timeout = duration("timeout", v)?;
    }
    if let (false, Some(v)) = (given("poll"), &file.poll) {
        args.watch.poll =
            crate::cli::parse_poll(v).map_err(|e| Error::usage(format!("poll: {e}")))?;
    }
    if let (false, Some(v)) = (given("max_failed_tasks"), file.max_failed_tasks) {
        args.watch.max_failed_tasks = v;
    }
    if let (false, Some(v)) = (given("rollback"), &file.rollback) {
        args.rollback = match v.as_str() {
            "auto" => RollbackMode::Auto,
            "never" => RollbackMode::Never,
            other => {
                return Err(Error::usage(format!(
                    "rollback = {other:?}: expected \"auto\" or \"never\""
                )))
            }
        };
    }
    if let (false, Some(v)) = (given("keep_revisions"), file.keep_revisions) {
        if v == 0 {
            return Err(Error::usage("keep-revisions: keep at least 1"));
        }
        args.keep_revisions = Some(v);
    }
    if let (false, Some(v)) = (given("wait_for_others"), &file.wait_for_others) {
        args.wait_for_others = duration("wait-for-others", v)?;
    }
    let b = &file.build;
    if let (false, Some(v)) = (given("context"), &b.context) {
        args.build.context = v.clone();
    }
    if let (false, Some(v)) = (given("file"), &b.file) {
        args.build.file = Some(v.clone());
    }
    if !given("build_args") && !b.args.is_empty() {
        args.build.build_args = b.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    }
    if let (false, Some(v)) = (given("target"), &b.target) {
        args.build.target = Some(v.clone());
    }
    if !given("tags") && !b.tags.is_empty() {
        args.build.tags = b.tags.clone();
    }
    if let (false, Some(v)) = (given("create_repository"), b.create_repository) {
        args.build.create_repository = v;
    }
    if !given("containers") {
        args.service_containers = file
            .services
            .iter()
            .filter(|s| !s.containers.is_empty())
            .map(|s| (s.name.clone(), s.containers.clone()))
            .collect();
    }
    args.pre_deploy = file.pre_deploy.clone();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const FULL: &str = r#"
cluster = "production"
region = "eu-west-1"
repository = "team/app"
timeout = "15m"
keep-revisions = 5

[build]
context = "app"
args = { RAILS_ENV = "production" }
tags = ["latest"]

[[services]]
name = "web"
containers = ["web"]

[[services]]
name = "worker"

[[pre-deploy]]
family = "migrate"
command = "bin/rails db:migrate"
"#;

    fn deploy_args(argv: &[&str]) -> (DeployArgs, clap::ArgMatches) {
        let mut full = vec!["deckhand", "deploy"];
        full.extend_from_slice(argv);
        let matches = <crate::cli::Cli as clap::CommandFactory>::command()
            .try_get_matches_from(&full)
            .unwrap();
        let cli = crate::cli::Cli::try_parse_from(&full).unwrap();
        let crate::cli::Command::Deploy(args) = cli.command else {
            panic!("deploy")
        };
        (*args, matches.subcommand_matches("deploy").unwrap().clone())
    }

    #[test]
    fn a_full_file_fills_every_setting_and_flags_win() {
        let file = parse(FULL, Path::new("deckhand.toml")).unwrap();
        let (mut args, m) = deploy_args(&["--timeout", "2m"]);
        let mut region = None;
        let given = |id: &str| {
            matches!(
                m.value_source(id),
                Some(clap::parser::ValueSource::CommandLine)
            )
        };
        apply(&file, &mut args, &mut region, given).unwrap();
        assert_eq!(args.target.cluster, "production");
        assert_eq!(args.target.services, vec!["web", "worker"]);
        assert_eq!(args.repository.as_deref(), Some("team/app"));
        assert_eq!(region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            args.watch.timeout,
            std::time::Duration::from_secs(120),
            "the flag wins"
        );
        assert_eq!(args.keep_revisions, Some(5));
        assert_eq!(args.build.context, PathBuf::from("app"));
        assert_eq!(args.build.build_args, vec!["RAILS_ENV=production"]);
        assert_eq!(
            args.service_containers,
            vec![("web".to_string(), vec!["web".to_string()])]
        );
        assert_eq!(
            args.pre_deploy[0].command.args(),
            vec!["bin/rails", "db:migrate"]
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
        let file = parse("rollback = \"sometimes\"\n", Path::new("d.toml")).unwrap();
        let (mut args, _) = deploy_args(&[]);
        assert!(apply(&file, &mut args, &mut None, |_| false).is_err());
        let both = parse("image = \"a\"\nrepository = \"b\"\n", Path::new("d.toml")).unwrap();
        let err = apply(&both, &mut args, &mut None, |_| false).unwrap_err();
        assert!(err.message.contains("both"), "{}", err.message);
    }
}
