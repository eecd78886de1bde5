//! The settings each command runs with, resolved once (command line and `DECKHAND_*` over
//! deckhand.toml over defaults) and checked before any AWS call, so the commands never re-parse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{
    BuildArgs, DeployArgs, RollbackArgs, RollbackMode, ServiceArgs, StatusArgs, WatchArgs,
};
use crate::config;
use crate::deploy::shape;
use crate::deploy::taskdef::{self, TaskDef};
use crate::error::{Error, Result};
use crate::image::options::{BuildSecret, BuilderChoice, Platform};

mod role;
pub use role::RoleSettings;

/// How long a deployment (and again a rollback) is watched when nothing says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a service is looked at while watching, by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(3);
/// Failed tasks of the new revision that fail a deploy, by default.
pub const DEFAULT_MAX_FAILED_TASKS: usize = 2;
/// Last log lines shown of a failed task's containers, by default, and the most one
/// GetLogEvents returns.
pub const DEFAULT_LOG_LINES: usize = 20;
pub const MAX_LOG_LINES: usize = 10_000;
/// How long to wait for someone else's deployment, by default.
pub const DEFAULT_WAIT_FOR_OTHERS: Duration = Duration::from_secs(300);

/// `deckhand deploy`, validated.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// `--region`, else `region` in the file; `None`: the AWS configuration chain.
    pub region: Option<String>,
    pub cluster: String,
    /// In the order their updates start; each named once.
    pub services: Vec<ServiceSettings>,
    pub source: ImageSource,
    /// The `--task-definition` file, read and parsed; only with one service.
    pub task_definition: Option<TaskDef>,
    /// Said as the deploy starts: what was let through with `--allow-unknown-fields`.
    pub warnings: Vec<String>,
    pub watch: WatchSettings,
    pub rollback: RollbackMode,
    pub no_wait: bool,
    pub dry_run: bool,
    /// From `--pre-deploy` (which replaces the file's), else `[[pre-deploy]]`. An empty family
    /// means the first service's.
    pub pre_deploy: Vec<config::PreDeploy>,
    pub keep_revisions: Option<u32>,
    pub wait_for_others: Duration,
    /// `--take-over`: replace a deployment in progress instead of waiting for it.
    pub take_over: bool,
    /// `--wait-until STAGE`: where in [`crate::deploy::verdict::STAGES`] a deploy may end,
    /// unfinished; `None`: at the deployment's final status.
    pub wait_until: Option<String>,
    /// The settings file that was applied.
    pub config_path: Option<PathBuf>,
}

/// One service to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Name or ARN, as given.
    pub name: String,
    /// Containers that get the new image; empty: those whose image is from the same repository.
    pub containers: Vec<String>,
}

/// Where the image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// `--image`: deploy this reference as it is.
    Given(String),
    /// `--repository`: build and push first (boxed: it is much the larger).
    Build(Box<PushSettings>),
}

/// How a deployment (or a rollback) is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    pub timeout: Duration,
    pub poll: Duration,
    pub max_failed_tasks: usize,
    /// Last log lines shown of each failed task's essential containers; 0 shows none.
    pub log_lines: usize,
}

/// `deckhand push`, or the build stage of `deckhand deploy`, validated.
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub repository: String,
    pub context: PathBuf,
    pub file: Option<PathBuf>,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub extra_tags: Vec<String>,
    pub sha: Option<String>,
    pub registry: Option<String>,
    pub create_repository: bool,
    pub force: bool,
    pub allow_dirty: bool,
    /// `--builder`: which of the engine's builders runs the build.
    pub builder: BuilderChoice,
    /// `--secret`s, each id once, each found (file readable, variable set) when resolved; the
    /// values are read when the build asks for them, never kept here.
    pub secrets: Vec<BuildSecret>,
    /// `--platform`; `None`: the engine's own.
    pub platform: Option<Platform>,
    /// `--build-network`; `None`: the engine's default (none where it has no bridge).
    pub network: Option<crate::image::options::BuildNetwork>,
    /// `--cache-from` references, each an image reference, each once, in order.
    pub cache_from: Vec<String>,
    /// `--no-cache`: no local layers, no registry cache import.
    pub no_cache: bool,
    /// Look, change nothing: no repository created, nothing built, pushed or tagged.
    pub dry_run: bool,
}

/// `deckhand rollback`, validated.
#[derive(Debug, Clone)]
pub struct RollbackSettings {
    pub cluster: String,
    pub service: String,
    /// `--to`, syntax-checked; the family is the service's, known later.
    pub to: Option<String>,
    pub watch: WatchSettings,
    pub no_wait: bool,
}

/// `deckhand status`, validated.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub cluster: String,
    pub service: String,
    pub events: usize,
}

impl DeploySettings {
    /// The command line (with `DECKHAND_*`, merged by clap) over `file` over the defaults.
    /// `region` is `--region`; `file` is the settings file and where it was read from; `env`
    /// reads the process environment (for `--build-arg NAME`).
    pub fn resolve(
        args: &DeployArgs,
        region: Option<&str>,
        file: Option<(&Path, &config::File)>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let empty = config::File::default();
        let (config_path, f) = match file {
            Some((path, f)) => (Some(path.to_path_buf()), f),
            None => (None, &empty),
        };
        let take_over_from_env = env("DECKHAND_TAKE_OVER").is_some();
        let origin = config_path
            .as_deref()
            .unwrap_or(Path::new(config::DEFAULT_FILE));

        let cluster = cluster(&args.target, f.cluster.as_deref())?;
        let services = services(args, f)?;
        if services.len() > 1 && args.task_definition.is_some() {
            return Err(Error::usage(
                "--task-definition is one service's task definition: use it with one --service",
            ));
        }
        let (task_definition, warnings) = match args.task_definition.as_deref() {
            Some(path) => {
                let (td, warnings) = read_task_definition(path, args.allow_unknown_fields)?;
                (Some(td), warnings)
            }
            None => (None, Vec::new()),
        };

        if f.image.is_some() && f.repository.is_some() {
            return Err(Error::usage(format!(
                "{} sets both `image` and `repository`: deploy an existing image, or build one \
                 into the repository, not both",
                origin.display()
            )));
        }
        // clap keeps --image and --repository apart; either one replaces the file's choice.
        let (image, repository) = if args.image.is_some() || args.repository.is_some() {
            (&args.image, &args.repository)
        } else {
            (&f.image, &f.repository)
        };
        let source =
            match (image, repository) {
                (Some(image), _) => {
                    crate::image::reference::ImageRef::parse(image).map_err(|why| {
                        Error::usage(format!(
                            "--image {image:?} is not an image reference: {why}"
                        ))
                    })?;
                    ImageSource::Given(image.clone())
                }
                (None, Some(repository)) => {
                    let build = merge_build(
                        &args.build,
                        &f.build,
                        env("DECKHAND_CREATE_REPOSITORY").is_some(),
                        env("DECKHAND_NO_CACHE").is_some_and(|v| !v.trim().is_empty()),
                    );
                    let mut push = PushSettings::resolve(repository, &build, env)?;
                    push.dry_run = args.dry_run;
                    ImageSource::Build(Box::new(push))
                }
                (None, None) => return Err(Error::usage(
                    "name the image: --image IMAGE, or --repository REPO to build and push one \
                     (or `image` / `repository` in deckhand.toml)",
                )),
            };

        Ok(DeploySettings {
            region: region.map(str::to_string).or_else(|| f.region.clone()),
            cluster,
            services,
            source,
            task_definition,
            warnings,
            watch: WatchSettings::resolve(&args.watch, Some(f))?,
            rollback: args.rollback.or(f.rollback).unwrap_or(RollbackMode::Auto),
            no_wait: args.no_wait,
            dry_run: args.dry_run,
            pre_deploy: pre_deploy(args, f)?,
            keep_revisions: args.keep_revisions.or(f.keep_revisions),
            wait_for_others: args
                .wait_for_others
                .or(f.wait_for_others)
                .unwrap_or(DEFAULT_WAIT_FOR_OTHERS),
            take_over: switch(args.take_over, take_over_from_env, f.take_over),
            wait_until: wait_until(args.wait_until.as_deref().or(f.wait_until.as_deref()))?,
            config_path,
        })
    }

    /// The service names, in order.
    pub fn service_names(&self) -> Vec<String> {
        self.services.iter().map(|s| s.name.clone()).collect()
    }

    /// The containers chosen for `service` (as ECS names it: a name given as an ARN matches
    /// its last segment); empty: the default choice.
    pub fn containers_for(&self, service: &str) -> &[String] {
        self.services
            .iter()
            .find(|s| s.name == service || s.name.rsplit('/').next() == Some(service))
            .map_or(&[], |s| s.containers.as_slice())
    }
}

impl WatchSettings {
    /// Flags over the file over the defaults; a timeout too short to watch anything, or a
    /// failed-task limit of 0, is a usage error.
    pub fn resolve(args: &WatchArgs, file: Option<&config::File>) -> Result<Self> {
        let s = WatchSettings {
            timeout: args
                .timeout
                .or(file.and_then(|f| f.timeout))
                .unwrap_or(DEFAULT_TIMEOUT),
            poll: args
                .poll
                .or(file.and_then(|f| f.poll))
                .unwrap_or(DEFAULT_POLL),
            max_failed_tasks: args
                .max_failed_tasks
                .or(file.and_then(|f| f.max_failed_tasks))
                .unwrap_or(DEFAULT_MAX_FAILED_TASKS),
            log_lines: args
                .log_lines
                .or(file.and_then(|f| f.log_lines))
                .unwrap_or(DEFAULT_LOG_LINES),
        };
        if s.log_lines > MAX_LOG_LINES {
            return Err(Error::usage(format!(
                "--log-lines {} is more than CloudWatch Logs returns in one read; use at most \
                 {MAX_LOG_LINES} (0 turns it off)",
                s.log_lines
            )));
        }
        if s.timeout < MIN_TIMEOUT {
            return Err(Error::usage(format!(
                "--timeout {}ms is too short: the deployment, and again a rollback, get this \
                 long to become stable; use at least {}s (e.g. 10m)",
                s.timeout.as_millis(),
                MIN_TIMEOUT.as_secs()
            )));
        }
        if s.max_failed_tasks == 0 {
            return Err(Error::usage(
                "--max-failed-tasks 0 would fail every deploy before it starts; use 1 or more",
            ));
        }
        Ok(s)
    }
}

/// The shortest `--timeout` accepted.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);

impl PushSettings {
    /// Checks every value once; `env` reads the process environment (injected for tests).
    pub fn resolve(
        repository: &str,
        args: &BuildArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        validate_repository(repository)?;
        let mut build_args = HashMap::new();
        for raw in args.build_args.iter().filter(|s| !s.is_empty()) {
            let (k, v) = match raw.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                // `--build-arg NAME` takes the value from the environment, as docker does.
                None => match env(raw) {
                    Some(v) => (raw.clone(), v),
                    None => {
                        return Err(Error::usage(format!(
                            "--build-arg {raw}: expected NAME=VALUE, or the name of a set environment variable"
                        )))
                    }
                },
            };
            if k.is_empty() {
                return Err(Error::usage(format!(
                    "--build-arg {raw}: the name is empty"
                )));
            }
            build_args.insert(k, v);
        }
        let mut extra_tags = Vec::new();
        for tag in args.tags.iter().filter(|s| !s.is_empty()) {
            validate_tag(tag)?;
            if !extra_tags.contains(tag) {
                extra_tags.push(tag.clone());
            }
        }
        let registry = match &args.registry {
            Some(r) if !r.trim().is_empty() => Some(validate_registry(r)?),
            _ => None,
        };
        let builder = args.builder.unwrap_or_default();
        let secrets = secrets(&args.secrets, builder, &env)?;
        let platform = match args.platform.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => Some(Platform::parse(p).map_err(Error::usage)?),
            _ => None,
        };
        let mut cache_from: Vec<String> = Vec::new();
        for image in args
            .cache_from
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            crate::image::reference::ImageRef::parse(image).map_err(|why| {
                Error::usage(format!(
                    "--cache-from {image:?} is not an image reference: {why}; give one such as \
                     team/web:latest or 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:latest"
                ))
            })?;
            if !cache_from.iter().any(|c| c == image) {
                cache_from.push(image.to_string());
            }
        }
        Ok(Self {
            repository: repository.to_string(),
            context: args.context.clone().unwrap_or_else(|| PathBuf::from(".")),
            file: args.file.clone(),
            build_args,
            target: args.target.clone().filter(|t| !t.is_empty()),
            extra_tags,
            sha: args.sha.clone(),
            registry,
            create_repository: args.create_repository,
            force: args.force,
            allow_dirty: args.allow_dirty,
            builder,
            secrets,
            platform,
            network: args.build_network,
            cache_from,
            no_cache: args.no_cache,
            dry_run: false,
        })
    }
}

impl RollbackSettings {
    /// One service, and `--to` in a form deckhand understands.
    pub fn resolve(args: &RollbackArgs) -> Result<Self> {
        let cluster = cluster(&args.target, None)?;
        let service = one_service(&args.target, "roll back one --service at a time")?;
        if let Some(spec) = &args.to {
            // The syntax is checked before any call; the family comes from the service later.
            crate::deploy::history::resolve_to(spec, "family:1").map_err(Error::usage)?;
        }
        Ok(RollbackSettings {
            cluster,
            service,
            to: args.to.clone(),
            watch: WatchSettings::resolve(&args.watch, None)?,
            no_wait: args.no_wait,
        })
    }
}

/// `deckhand continue`, validated.
#[derive(Debug, Clone)]
pub struct ContinueSettings {
    pub cluster: String,
    pub service: String,
    /// ROLLBACK instead of CONTINUE.
    pub rollback: bool,
}

/// `--wait-until`: `stable` (or nothing) is the deployment's end; else a lifecycle stage ECS
/// names, in any case.
fn wait_until(given: Option<&str>) -> Result<Option<String>> {
    use crate::deploy::verdict::{stage_order, STAGES};
    match given.map(|g| g.trim().to_ascii_uppercase()) {
        None => Ok(None),
        Some(g) if g == "STABLE" || g.is_empty() => Ok(None),
        Some(g) if stage_order(&g).is_some() => Ok(Some(g)),
        Some(g) => Err(Error::usage(format!(
            "--wait-until {g:?} is not a lifecycle stage; use stable or one of {}",
            STAGES.join(", ")
        ))),
    }
}

impl ContinueSettings {
    /// One service.
    pub fn resolve(args: &crate::cli::ContinueArgs) -> Result<Self> {
        Ok(ContinueSettings {
            cluster: cluster(&args.target, None)?,
            service: one_service(&args.target, "continue one --service at a time")?,
            rollback: args.rollback,
        })
    }
}

impl StatusSettings {
    /// One service.
    pub fn resolve(args: &StatusArgs) -> Result<Self> {
        Ok(StatusSettings {
            cluster: cluster(&args.target, None)?,
            service: one_service(&args.target, "show one --service at a time")?,
            events: args.events,
        })
    }
}

/// The extra secret names: `--secret-name` (and DECKHAND_SECRET_NAMES) together with the
/// file's `secret-names`, since masking more is never wrong; each entry may list several,
/// split on commas and whitespace.
pub fn secret_names(flags: &[String], file: Option<&config::File>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let listed = flags
        .iter()
        .chain(file.into_iter().flat_map(|f| &f.secret_names));
    for name in listed.flat_map(|s| s.split(|c: char| c == ',' || c.is_whitespace())) {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// `--cluster`, else the file's.
fn cluster(args: &ServiceArgs, file: Option<&str>) -> Result<String> {
    args.cluster
        .as_deref()
        .filter(|c| !c.is_empty())
        .or(file.filter(|c| !c.is_empty()))
        .map(str::to_string)
        .ok_or_else(|| {
            Error::usage(
                "name the cluster: --cluster, DECKHAND_CLUSTER, or `cluster` in deckhand.toml",
            )
        })
}

fn no_service() -> Error {
    Error::usage("name the service: --service, DECKHAND_SERVICE, or [[services]] in deckhand.toml")
}

/// Exactly one `--service` (rollback and status).
fn one_service(args: &ServiceArgs, many: &str) -> Result<String> {
    let named: Vec<&String> = args.services.iter().filter(|s| !s.is_empty()).collect();
    match named.as_slice() {
        [] => Err(no_service()),
        [one] => Ok((*one).clone()),
        _ => Err(Error::usage(many)),
    }
}

/// `--service` (each with `--container`), else `[[services]]`; a service's containers from the
/// file apply unless `--container` is given.
fn services(args: &DeployArgs, file: &config::File) -> Result<Vec<ServiceSettings>> {
    let names: Vec<String> = if args.target.services.iter().any(|s| !s.is_empty()) {
        args.target.services.clone()
    } else {
        file.services.iter().map(|s| s.name.clone()).collect()
    };
    let flag_containers: Vec<String> = args
        .containers
        .iter()
        .filter(|c| !c.is_empty())
        .cloned()
        .collect();
    let mut out: Vec<ServiceSettings> = Vec::new();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        if out.iter().any(|s| s.name == name) {
            return Err(Error::usage(format!("--service {name} is named twice")));
        }
        let containers = if flag_containers.is_empty() {
            file.services
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.containers.clone())
                .unwrap_or_default()
        } else {
            flag_containers.clone()
        };
        out.push(ServiceSettings { name, containers });
    }
    if out.is_empty() {
        return Err(no_service());
    }
    Ok(out)
}

/// `--pre-deploy` replaces the file's tasks; its family and container need it.
fn pre_deploy(args: &DeployArgs, file: &config::File) -> Result<Vec<config::PreDeploy>> {
    match &args.pre_deploy_command {
        Some(command) => Ok(vec![config::PreDeploy {
            family: args.pre_deploy_family.clone().unwrap_or_default(),
            command: config::Command::Line(command.clone()),
            container: args.pre_deploy_container.clone(),
        }]),
        None if args.pre_deploy_family.is_some() || args.pre_deploy_container.is_some() => {
            Err(Error::usage(
                "--pre-deploy-family and --pre-deploy-container go with --pre-deploy COMMAND",
            ))
        }
        None => Ok(file.pre_deploy.clone()),
    }
}

/// `--secret`s parsed, each id once, and each found now (its file readable, its variable set);
/// they need BuildKit, so `--builder legacy` with any is refused.
fn secrets(
    given: &[String],
    builder: BuilderChoice,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<BuildSecret>> {
    let mut out: Vec<BuildSecret> = Vec::new();
    for raw in given.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let secret = BuildSecret::parse(raw).map_err(Error::usage)?;
        if out.iter().any(|s| s.id == secret.id) {
            return Err(Error::usage(format!(
                "--secret id={} is given twice: give each secret id once",
                secret.id
            )));
        }
        out.push(secret);
    }
    if !out.is_empty() && builder == BuilderChoice::Legacy {
        return Err(Error::usage(
            "build secrets need BuildKit: drop --builder legacy (DECKHAND_BUILDER, `builder` \
             in deckhand.toml), or the --secret flags",
        ));
    }
    for secret in &out {
        secret.check(env).map_err(Error::usage)?;
    }
    Ok(out)
}

/// The build flags, each filled in from the file's `[build]` where the command line said
/// nothing. `--create-repository` and `--no-cache` are switches: the flag turns one on; the
/// file's value counts unless DECKHAND_CREATE_REPOSITORY (`create_from_env`) or
/// DECKHAND_NO_CACHE (`no_cache_from_env`; an empty one, as the GitHub action passes an input
/// not given, says nothing) said.
fn merge_build(
    args: &BuildArgs,
    file: &config::Build,
    create_from_env: bool,
    no_cache_from_env: bool,
) -> BuildArgs {
    let mut b = args.clone();
    if b.context.is_none() {
        b.context = file.context.clone();
    }
    if b.file.is_none() {
        b.file = file.file.clone();
    }
    if b.build_args.iter().all(String::is_empty) && !file.args.is_empty() {
        b.build_args = file.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    }
    if b.target.is_none() {
        b.target = file.target.clone();
    }
    if b.tags.iter().all(String::is_empty) && !file.tags.is_empty() {
        b.tags = file.tags.clone();
    }
    b.create_repository = switch(b.create_repository, create_from_env, file.create_repository);
    if b.builder.is_none() {
        b.builder = file.builder;
    }
    if b.secrets.iter().all(|s| s.trim().is_empty()) && !file.secrets.is_empty() {
        b.secrets = file.secrets.clone();
    }
    if b.platform.as_deref().is_none_or(|p| p.trim().is_empty()) {
        b.platform = file.platform.clone();
    }
    if b.cache_from.iter().all(|s| s.trim().is_empty()) && !file.cache_from.is_empty() {
        b.cache_from = file.cache_from.clone();
    }
    b.no_cache = switch(b.no_cache, no_cache_from_env, file.no_cache);
    if b.build_network.is_none() {
        b.build_network = file.build_network;
    }
    b
}

/// A switch set by a flag, its environment variable or deckhand.toml (pure): the flag turns it
/// on; the variable, when set, says either way (clap has read it into `flag`); else the file.
fn switch(flag: bool, from_env: bool, file: Option<bool>) -> bool {
    if flag || from_env {
        flag
    } else {
        file.unwrap_or(false)
    }
}

/// The file's task definition, checked against the SDK's model: a field it does not know is a
/// usage error, or with `allow_unknown` a warning (returned) and sent as written.
fn read_task_definition(path: &Path, allow_unknown: bool) -> Result<(TaskDef, Vec<String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read --task-definition {}: {e}",
            path.display()
        ))
    })?;
    let td = taskdef::parse(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    // The names as written: `parse` has dropped the read-only fields and nulls.
    let written: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let unknown = shape::unknown_fields(&written);
    if unknown.is_empty() {
        return Ok((td, Vec::new()));
    }
    if allow_unknown {
        let warnings = unknown
            .iter()
            .map(|u| {
                format!(
                    "{}: unknown task-definition field {u}, sent as written (--allow-unknown-fields)",
                    path.display()
                )
            })
            .collect();
        return Ok((td, warnings));
    }
    let (fields, them, names) = match unknown.len() {
        1 => ("unknown task-definition field".to_string(), "it", "name"),
        n => (
            format!("{n} unknown task-definition fields:"),
            "them",
            "names",
        ),
    };
    let listed: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    Err(Error::usage(format!(
        "{}: {fields} {}; the revision would be registered without {them}. Correct the \
         {names}, or for an ECS field newer than deckhand pass --allow-unknown-fields \
         (DECKHAND_ALLOW_UNKNOWN_FIELDS=true)",
        path.display(),
        listed.join(", ")
    )))
}

/// ECR repository names: lower-case segments separated by `/`, 2–256 characters.
fn validate_repository(name: &str) -> Result<()> {
    if crate::aws::ecr::valid_repository_name(name) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "--repository {name:?} is not a valid ECR repository name: use lower-case letters, digits, \
             and . _ - / (e.g. team/web), 2 to 256 characters"
        )))
    }
}

/// Docker tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<()> {
    let ok = (1..=128).contains(&tag.len())
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "--tag {tag:?} is not a valid image tag: letters, digits, _ . - (not first), at most 128"
        )))
    }
}

/// `host[:port]`, with an `https://` or `http://` prefix tolerated and dropped.
fn validate_registry(raw: &str) -> Result<String> {
    let host = raw
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let ok = !host.is_empty()
        && !host.contains('/')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if ok {
        Ok(host.to_string())
    } else {
        Err(Error::usage(format!(
            "--registry {raw:?} is not a registry host: give HOST or HOST:PORT"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `deckhand deploy ARGV` as clap parses it, with `env` standing in for DECKHAND_* (clap
    /// reads them itself; here they are given as the flags they stand for).
    fn deploy_args(argv: &[&str]) -> (DeployArgs, Option<String>) {
        let mut full = vec!["deckhand", "deploy"];
        full.extend_from_slice(argv);
        let cli = crate::cli::Cli::try_parse_from(&full).unwrap();
        let crate::cli::Command::Deploy(args) = cli.command else {
            panic!("deploy")
        };
        (*args, cli.global.region)
    }

    fn resolve(argv: &[&str], toml: Option<&str>) -> Result<DeploySettings> {
        let (args, region) = deploy_args(argv);
        let file = toml.map(|t| config::parse(t, Path::new("deckhand.toml")).unwrap());
        DeploySettings::resolve(
            &args,
            region.as_deref(),
            file.as_ref().map(|f| (Path::new("deckhand.toml"), f)),
            // FULL_EXAMPLE's build secret reads NPM_TOKEN.
            |name| (name == "NPM_TOKEN").then(|| "token".to_string()),
        )
    }

    const MIN: &[&str] = &["--cluster", "c", "--service", "web", "--image", "x"];

    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = MIN.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn a_full_file_fills_every_setting_and_flags_win() {
        let s = resolve(&["--timeout", "2m"], Some(crate::config::FULL_EXAMPLE)).unwrap();
        assert_eq!(s.cluster, "production");
        assert_eq!(s.service_names(), vec!["web", "worker"]);
        let ImageSource::Build(push) = &s.source else {
            panic!("a build: {:?}", s.source)
        };
        assert_eq!(push.repository, "team/app");
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.watch.timeout, Duration::from_secs(120), "the flag wins");
        assert_eq!(s.keep_revisions, Some(5));
        assert_eq!(push.context, PathBuf::from("app"));
        assert_eq!(push.build_args["RAILS_ENV"], "production");
        assert_eq!(push.extra_tags, vec!["latest"]);
        assert_eq!(s.containers_for("web"), ["web".to_string()]);
        assert!(s.containers_for("worker").is_empty());
        assert_eq!(
            s.pre_deploy[0].command.args(),
            vec!["bin/rails", "db:migrate"]
        );
        assert_eq!(s.config_path, Some(PathBuf::from("deckhand.toml")));
    }

    #[test]
    fn the_command_line_beats_the_file_which_beats_the_default() {
        let file =
            "timeout = \"15m\"\npoll = \"5s\"\nrollback = \"never\"\nwait-for-others = \"0\"\n\
                    max-failed-tasks = 4\nregion = \"eu-west-1\"\ncluster = \"from-file\"\n";
        // (flags, file, timeout, poll, rollback, wait_for_others, max_failed, region, cluster)
        type Case<'a> = (
            &'a [&'a str],
            Option<&'a str>,
            u64,
            u64,
            RollbackMode,
            u64,
            usize,
            Option<&'a str>,
            &'a str,
        );
        let cases: [Case; 3] = [
            (&[], None, 600, 3, RollbackMode::Auto, 300, 2, None, "c"),
            (
                &[],
                Some(file),
                900,
                5,
                RollbackMode::Never,
                0,
                4,
                Some("eu-west-1"),
                "c",
            ),
            (
                &[
                    "--timeout",
                    "1m",
                    "--poll",
                    "1s",
                    "--rollback",
                    "auto",
                    "--wait-for-others",
                    "1m",
                    "--max-failed-tasks",
                    "1",
                    "--region",
                    "us-east-1",
                ],
                Some(file),
                60,
                1,
                RollbackMode::Auto,
                60,
                1,
                Some("us-east-1"),
                "c",
            ),
        ];
        for (flags, toml, timeout, poll, rollback, wait, max_failed, region, cluster) in cases {
            let s = resolve(&with(flags), toml).unwrap();
            let why = format!("{flags:?} over {toml:?}");
            assert_eq!(s.watch.timeout, Duration::from_secs(timeout), "{why}");
            assert_eq!(s.watch.poll, Duration::from_secs(poll), "{why}");
            assert_eq!(s.watch.max_failed_tasks, max_failed, "{why}");
            assert_eq!(s.rollback, rollback, "{why}");
            assert_eq!(s.wait_for_others, Duration::from_secs(wait), "{why}");
            assert_eq!(s.region.as_deref(), region, "{why}");
            assert_eq!(s.cluster, cluster, "{why}");
        }
        // The cluster, services and image from the file when the command line names none.
        let s = resolve(
            &[],
            Some("cluster = \"f\"\nimage = \"img\"\n[[services]]\nname = \"a\"\n"),
        )
        .unwrap();
        assert_eq!(
            (s.cluster.as_str(), s.service_names()),
            ("f", vec!["a".to_string()])
        );
        assert!(matches!(&s.source, ImageSource::Given(i) if i == "img"));
        // --image replaces the file's repository (no build).
        let s = resolve(MIN, Some("repository = \"team/app\"\n")).unwrap();
        assert!(matches!(&s.source, ImageSource::Given(i) if i == "x"));
    }

    #[test]
    fn environment_variables_count_as_the_command_line() {
        // Names unique to this test: the environment is shared by the test threads.
        std::env::set_var("DECKHAND_WAIT_FOR_OTHERS", "7s");
        let parsed = deploy_args(MIN);
        std::env::remove_var("DECKHAND_WAIT_FOR_OTHERS");
        let file = config::parse("wait-for-others = \"1m\"\n", Path::new("d.toml")).unwrap();
        let s =
            DeploySettings::resolve(&parsed.0, None, Some((Path::new("d.toml"), &file)), |_| {
                None
            })
            .unwrap();
        assert_eq!(s.wait_for_others, Duration::from_secs(7));
    }

    #[test]
    fn containers_and_pre_deploy_from_the_flags_replace_the_files() {
        let s = resolve(
            &with(&["--container", "app", "--pre-deploy", "bin/migrate --all"]),
            Some(crate::config::FULL_EXAMPLE),
        )
        .unwrap();
        assert_eq!(s.containers_for("web"), ["app".to_string()]);
        assert_eq!(s.pre_deploy.len(), 1);
        assert_eq!(s.pre_deploy[0].family, "", "the first service's");
        assert_eq!(s.pre_deploy[0].command.args(), vec!["bin/migrate", "--all"]);
        // A service named by ARN finds its containers by its name.
        let s = resolve(
            &[
                "--cluster",
                "c",
                "--image",
                "x",
                "--service",
                "arn:aws:ecs:r:1:service/c/web",
            ],
            Some(crate::config::FULL_EXAMPLE),
        )
        .unwrap();
        assert!(
            s.containers_for("web").is_empty(),
            "the file lists `web`, not the ARN"
        );
        let s = resolve(&with(&["--container", "a"]), None).unwrap();
        assert_eq!(s.containers_for("web"), ["a".to_string()]);
    }

    #[test]
    fn usage_errors_exit_2_and_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let bad_td = dir.path().join("td.json");
        std::fs::write(&bad_td, "{ not json").unwrap();
        let bad_td = bad_td.to_str().unwrap().to_string();
        let missing_td = dir.path().join("missing.json");
        let missing_td = missing_td.to_str().unwrap().to_string();
        let two = ["--service", "worker"];
        let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (
                vec!["--service", "web", "--image", "x"],
                None,
                "name the cluster",
            ),
            (
                vec![
                    "--cluster",
                    "c",
                    "--service",
                    "web",
                    "--image",
                    "garbage!!@@ not an image",
                ],
                None,
                "is not an image reference",
            ),
            (
                vec!["--cluster", "c", "--service", "web", "--image", ""],
                None,
                "is not an image reference",
            ),
            (
                vec!["--cluster", "c", "--service", "web"],
                Some("image = \"Web:1\"\n"),
                "is not an image reference",
            ),
            (
                with(&["--timeout", "0"]),
                None,
                "--timeout 0ms is too short",
            ),
            (with(&["--timeout", "500ms"]), None, "is too short"),
            (MIN.to_vec(), Some("timeout = \"0s\"\n"), "is too short"),
            (
                with(&["--max-failed-tasks", "0"]),
                None,
                "--max-failed-tasks 0",
            ),
            (
                vec!["--cluster", "c", "--image", "x"],
                None,
                "name the service",
            ),
            (with(&["--service", "web"]), None, "is named twice"),
            (
                [with(&two), vec!["--task-definition", &bad_td]].concat(),
                None,
                "--task-definition is one service's task definition",
            ),
            (with(&["--task-definition", &bad_td]), None, "td.json"),
            (
                with(&["--task-definition", &missing_td]),
                None,
                "cannot read --task-definition",
            ),
            (
                vec!["--cluster", "c", "--service", "web"],
                None,
                "name the image",
            ),
            (
                with(&["--pre-deploy-family", "migrate"]),
                None,
                "--pre-deploy-family and --pre-deploy-container go with --pre-deploy COMMAND",
            ),
            (
                with(&["--pre-deploy-container", "app"]),
                None,
                "--pre-deploy-family and --pre-deploy-container go with --pre-deploy COMMAND",
            ),
            (
                MIN.to_vec(),
                Some("image = \"a\"\nrepository = \"b\"\n"),
                "sets both `image` and `repository`",
            ),
            (
                vec![
                    "--cluster",
                    "c",
                    "--service",
                    "web",
                    "--repository",
                    "Bad Name",
                ],
                None,
                "not a valid ECR repository name",
            ),
            (
                vec![
                    "--cluster",
                    "c",
                    "--service",
                    "web",
                    "--repository",
                    "team/r",
                    "--tag",
                    ".x",
                ],
                None,
                "not a valid image tag",
            ),
        ];
        for (argv, toml, says) in cases {
            let err = resolve(&argv, toml).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{argv:?}");
            assert!(err.message.contains(says), "{argv:?}: {}", err.message);
        }
    }

    #[test]
    fn unknown_task_definition_fields_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let td = dir.path().join("td.json");
        let container = |health: &str| {
            format!(
                r#"{{"family": "web", "revision": 3, "containerDefinitions": [{{"name": "web",
                "image": "web:1", "{health}": {{"command": ["CMD", "true"]}}}}]}}"#
            )
        };
        std::fs::write(&td, container("healthcheck")).unwrap();
        let path = td.to_str().unwrap();
        let err = resolve(&with(&["--task-definition", path]), None).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        for says in [
            "td.json: unknown task-definition field $.containerDefinitions[0].healthcheck",
            "(did you mean `healthCheck`?)",
            "--allow-unknown-fields",
        ] {
            assert!(err.message.contains(says), "{says}: {}", err.message);
        }

        let allowed = |argv: &[&str]| {
            let s = resolve(&with(argv), None).unwrap();
            let body = s.task_definition.clone().unwrap().body;
            assert!(
                body["containerDefinitions"][0].get("healthcheck").is_some(),
                "sent as written"
            );
            s.warnings
        };
        let warnings = allowed(&["--task-definition", path, "--allow-unknown-fields"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("$.containerDefinitions[0].healthcheck")
                && warnings[0].contains("sent as written"),
            "{warnings:?}"
        );
        // Names unique to this test: the environment is shared by the test threads.
        std::env::set_var("DECKHAND_ALLOW_UNKNOWN_FIELDS", "true");
        let from_env = deploy_args(&with(&["--task-definition", path]));
        std::env::set_var("DECKHAND_ALLOW_UNKNOWN_FIELDS", "false");
        let env_false = deploy_args(&with(&["--task-definition", path]));
        std::env::remove_var("DECKHAND_ALLOW_UNKNOWN_FIELDS");
        assert!(from_env.0.allow_unknown_fields);
        assert!(!env_false.0.allow_unknown_fields);

        std::fs::write(&td, container("healthCheck")).unwrap();
        let s = resolve(&with(&["--task-definition", path]), None).unwrap();
        assert_eq!(s.warnings, Vec::<String>::new());
        let mut two = serde_json::from_str::<serde_json::Value>(&container("healthCheck")).unwrap();
        two["netwrokMode"] = "awsvpc".into();
        two["containerDefinitions"][0]["portMappings"] = serde_json::json!([{"containerPrt": 80}]);
        std::fs::write(&td, two.to_string()).unwrap();
        let err = resolve(&with(&["--task-definition", path]), None).unwrap_err();
        assert!(
            err.message.contains("2 unknown task-definition fields:")
                && err.message.contains("`networkMode`")
                && err.message.contains("`containerPort`")
                && err.message.contains("without them"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wait_until_is_stable_or_a_lifecycle_stage() {
        assert_eq!(wait_until(None).unwrap(), None);
        assert_eq!(wait_until(Some("stable")).unwrap(), None);
        assert_eq!(
            wait_until(Some("bake_time")).unwrap().as_deref(),
            Some("BAKE_TIME")
        );
        let err = wait_until(Some("baking")).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message.contains("PRODUCTION_TRAFFIC_SHIFT"),
            "{}",
            err.message
        );
    }

    #[test]
    fn rollback_and_status_take_one_service() {
        fn parse(argv: &[&str]) -> crate::cli::Command {
            let mut full = vec!["deckhand"];
            full.extend_from_slice(argv);
            crate::cli::Cli::try_parse_from(&full).unwrap().command
        }
        let rollback = |argv: &[&str]| match parse(argv) {
            crate::cli::Command::Rollback(a) => RollbackSettings::resolve(&a),
            _ => unreachable!(),
        };
        let status = |argv: &[&str]| match parse(argv) {
            crate::cli::Command::Status(a) => StatusSettings::resolve(&a),
            _ => unreachable!(),
        };
        let s = rollback(&[
            "rollback",
            "--cluster",
            "c",
            "--service",
            "web",
            "--to",
            "7",
        ])
        .unwrap();
        assert_eq!((s.service.as_str(), s.to.as_deref()), ("web", Some("7")));
        assert_eq!(s.watch.timeout, DEFAULT_TIMEOUT);
        for (argv, says) in [
            (&["rollback", "--cluster", "c"][..], "name the service"),
            (&["rollback", "--service", "web"][..], "name the cluster"),
            (
                &[
                    "rollback",
                    "--cluster",
                    "c",
                    "--service",
                    "a",
                    "--service",
                    "b",
                ][..],
                "roll back one --service at a time",
            ),
            // (`--to v2` is refused too: tests/it/cli.rs runs that one through the binary.)
        ] {
            let err = rollback(argv).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{argv:?}");
            assert!(err.message.contains(says), "{argv:?}: {}", err.message);
        }
        let s = status(&["status", "--cluster", "c", "--service", "web"]).unwrap();
        assert_eq!(
            (s.cluster.as_str(), s.service.as_str(), s.events),
            ("c", "web", 5)
        );
        let err = status(&[
            "status",
            "--cluster",
            "c",
            "--service",
            "a",
            "--service",
            "b",
        ])
        .unwrap_err();
        assert!(
            err.message.contains("show one --service at a time"),
            "{}",
            err.message
        );
        let err = status(&["status", "--service", "web"]).unwrap_err();
        assert!(err.message.contains("name the cluster"), "{}", err.message);
    }

    #[test]
    fn the_file_is_typed_as_it_is_read() {
        let origin = Path::new("deckhand.toml");
        for (text, says) in [
            ("timeout = \"soon\"\n", "timeout"),
            ("poll = \"10ms\"\n", "poll"),
            ("wait-for-others = \"5d\"\n", "wait-for-others"),
            ("rollback = \"sometimes\"\n", "sometimes"),
            ("keep-revisions = 0\n", "keep-revisions: keep at least 1"),
        ] {
            let err = config::parse(text, origin).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{text}");
            assert!(err.message.contains(says), "{text}: {}", err.message);
            assert!(err.message.contains("line 1"), "{text}: {}", err.message);
        }
        let f = config::parse("rollback = \"never\"\npoll = \"250ms\"\n", origin).unwrap();
        assert_eq!(f.rollback, Some(RollbackMode::Never));
        assert_eq!(f.poll, Some(Duration::from_millis(250)));
        // --keep-revisions 0 is refused by clap (exit 2) before resolve.
        let mut argv = vec!["deckhand", "deploy"];
        argv.extend_from_slice(&with(&["--keep-revisions", "0"]));
        assert!(crate::cli::Cli::try_parse_from(argv).is_err());
    }

    fn build_args() -> BuildArgs {
        BuildArgs {
            context: None,
            file: None,
            build_args: vec![],
            target: None,
            tags: vec![],
            sha: None,
            registry: None,
            create_repository: false,
            force: false,
            allow_dirty: false,
            builder: None,
            secrets: vec![],
            platform: None,
            cache_from: vec![],
            no_cache: false,
            build_network: None,
        }
    }

    #[test]
    fn push_settings_validate_names_args_tags_and_registry() {
        let no_env = |_: &str| None;
        let s = PushSettings::resolve("team/web", &build_args(), no_env).unwrap();
        assert_eq!(s.context, PathBuf::from("."), "the default context");
        for bad in ["Team/web", "a", "web/", "/web", "we b", "-web"] {
            let err = PushSettings::resolve(bad, &build_args(), no_env).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{bad}");
        }
        let mut a = build_args();
        a.build_args = vec!["A=1=2".into(), "FROM_ENV".into()];
        let s = PushSettings::resolve("web", &a, |k| (k == "FROM_ENV").then(|| "v".to_string()))
            .unwrap();
        assert_eq!(s.build_args["A"], "1=2");
        assert_eq!(s.build_args["FROM_ENV"], "v");
        a.build_args = vec!["UNSET".into()];
        assert!(PushSettings::resolve("web", &a, no_env).is_err());

        let mut a = build_args();
        a.tags = vec!["latest".into(), "latest".into(), "v1.2".into()];
        assert_eq!(
            PushSettings::resolve("web", &a, no_env).unwrap().extra_tags,
            vec!["latest", "v1.2"]
        );
        a.tags = vec![".bad".into()];
        assert!(PushSettings::resolve("web", &a, no_env).is_err());

        let mut a = build_args();
        a.registry = Some("https://127.0.0.1:5000/".into());
        assert_eq!(
            PushSettings::resolve("web", &a, no_env)
                .unwrap()
                .registry
                .as_deref(),
            Some("127.0.0.1:5000")
        );
        a.registry = Some("host/path".into());
        assert!(PushSettings::resolve("web", &a, no_env).is_err());
    }

    #[test]
    fn build_flags_beat_the_files_build_section() {
        let file = config::parse(
            "[build]\ncontext = \"app\"\ntags = [\"latest\"]\ncreate-repository = true\n",
            Path::new("d.toml"),
        )
        .unwrap();
        let mut a = build_args();
        a.context = Some("other".into());
        let b = merge_build(&a, &file.build, false, false);
        assert_eq!(b.context, Some(PathBuf::from("other")));
        assert_eq!(b.tags, vec!["latest"]);
        assert!(b.create_repository);
        assert!(
            !merge_build(&a, &file.build, true, false).create_repository,
            "DECKHAND_CREATE_REPOSITORY=false beats the file"
        );
        a.tags = vec!["v1".into()];
        assert_eq!(merge_build(&a, &file.build, false, false).tags, vec!["v1"]);
    }

    /// The build half of `deckhand deploy --repository team/web FLAGS` over `toml`, with
    /// `vars` as the process environment.
    fn build_settings(
        flags: &[&str],
        toml: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<PushSettings> {
        let mut argv = vec![
            "--cluster",
            "c",
            "--service",
            "web",
            "--repository",
            "team/web",
        ];
        argv.extend_from_slice(flags);
        let (args, _) = deploy_args(&argv);
        let file = toml.map(|t| config::parse(t, Path::new("deckhand.toml")).unwrap());
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let s = DeploySettings::resolve(
            &args,
            None,
            file.as_ref().map(|f| (Path::new("deckhand.toml"), f)),
            env,
        )?;
        match s.source {
            ImageSource::Build(push) => Ok(*push),
            other => panic!("a build: {other:?}"),
        }
    }

    #[test]
    fn buildkit_options_come_from_the_flags_over_the_file() {
        use crate::image::options::SecretSource;
        let dir = tempfile::tempdir().unwrap();
        let npmrc = dir.path().join("npmrc");
        std::fs::write(&npmrc, "//registry/:_authToken=x\n").unwrap();
        let npmrc = npmrc.to_str().unwrap();
        let src = format!("id=npmrc,src={npmrc}");
        let token = [("NPM_TOKEN", "t")];

        let s = build_settings(&[], None, &[]).unwrap();
        assert_eq!(s.builder, BuilderChoice::Auto, "the default");
        assert!(s.secrets.is_empty() && s.platform.is_none() && s.cache_from.is_empty());
        assert!(!s.no_cache);

        let file = "[build]\nbuilder = \"legacy\"\nplatform = \"linux/arm64\"\n\
                    cache-from = [\"team/web:latest\"]\nno-cache = true\n";
        let s = build_settings(&[], Some(file), &[]).unwrap();
        assert_eq!(s.builder, BuilderChoice::Legacy);
        assert_eq!(s.platform.unwrap().to_string(), "linux/arm64");
        assert_eq!(s.cache_from, vec!["team/web:latest"]);
        assert!(s.no_cache);

        let s = build_settings(
            &[
                "--builder",
                "buildkit",
                "--platform",
                "linux/amd64",
                "--cache-from",
                "a/b:1",
                "--cache-from",
                "a/b:1",
                "--cache-from",
                "host:5000/c",
                "--secret",
                "id=npm,env=NPM_TOKEN",
                "--secret",
                &src,
            ],
            Some(file),
            &token,
        )
        .unwrap();
        assert_eq!(s.builder, BuilderChoice::BuildKit, "the flag wins");
        assert_eq!(s.platform.unwrap().to_string(), "linux/amd64");
        assert_eq!(s.cache_from, vec!["a/b:1", "host:5000/c"], "each once");
        let sources: Vec<(&str, &SecretSource)> = s
            .secrets
            .iter()
            .map(|x| (x.id.as_str(), &x.source))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("npm", &SecretSource::Env("NPM_TOKEN".into())),
                ("npmrc", &SecretSource::File(npmrc.into())),
            ]
        );

        // The file's secrets, when no --secret is given.
        let s = build_settings(
            &[],
            Some("[build]\nsecrets = [\"id=npm,env=NPM_TOKEN\"]\n"),
            &token,
        )
        .unwrap();
        assert_eq!(s.secrets.len(), 1);

        // --no-cache: the flag, else DECKHAND_NO_CACHE either way, else the file; an empty
        // variable (an action input not given) says nothing.
        for (flags, vars, on) in [
            (&["--no-cache"][..], &[][..], true),
            (&[][..], &[("DECKHAND_NO_CACHE", "false")][..], false),
            (&[][..], &[("DECKHAND_NO_CACHE", "")][..], true),
            (&[][..], &[][..], true),
        ] {
            let s = build_settings(flags, Some("[build]\nno-cache = true\n"), vars).unwrap();
            assert_eq!(s.no_cache, on, "{flags:?} {vars:?}");
        }
    }

    #[test]
    fn bad_buildkit_options_exit_2_and_name_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let missing = format!("id=npmrc,src={}", missing.display());
        let as_dir = format!("id=d,src={}", dir.path().display());
        let token = [("NPM_TOKEN", "t"), ("EMPTY", "")];
        let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (vec!["--secret", "src=x"], None, "has no id"),
            (
                vec![
                    "--secret",
                    "id=a,env=NPM_TOKEN",
                    "--secret",
                    "id=a,env=NPM_TOKEN",
                ],
                None,
                "--secret id=a is given twice",
            ),
            (
                vec!["--builder", "legacy", "--secret", "id=a,env=NPM_TOKEN"],
                None,
                "build secrets need BuildKit: drop --builder legacy",
            ),
            (
                vec!["--secret", "id=a,env=NPM_TOKEN"],
                Some("[build]\nbuilder = \"legacy\"\n"),
                "build secrets need BuildKit",
            ),
            (
                vec!["--secret", "id=npm,env=UNSET_TOKEN"],
                None,
                "build secret \"npm\": the environment variable UNSET_TOKEN is not set",
            ),
            (
                vec!["--secret", "id=EMPTY"],
                None,
                "EMPTY is not set (or is empty)",
            ),
            (
                vec!["--secret", &missing],
                None,
                "build secret \"npmrc\": cannot read",
            ),
            (vec!["--secret", &as_dir], None, "it is a directory"),
            (
                vec![],
                Some("[build]\nsecrets = [\"id=a,src=x,env=Y\"]\n"),
                "not both",
            ),
            (vec!["--platform", "arm64"], None, "--platform \"arm64\""),
            (
                vec!["--platform", "windows/amd64"],
                None,
                "not a Linux platform",
            ),
            (
                vec![],
                Some("[build]\nplatform = \"linux/sparc\"\n"),
                "not an architecture",
            ),
            (
                vec!["--cache-from", "Team/Web:latest"],
                None,
                "--cache-from \"Team/Web:latest\" is not an image reference",
            ),
            (
                vec![],
                Some("[build]\ncache-from = [\"a b\"]\n"),
                "--cache-from \"a b\"",
            ),
        ];
        for (flags, toml, says) in cases {
            let err = build_settings(&flags, toml, &token).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{flags:?} {toml:?}");
            assert!(err.message.contains(says), "{flags:?}: {}", err.message);
        }
        // The classic builder takes a platform, a cache and no cache.
        let s = build_settings(
            &[
                "--builder",
                "legacy",
                "--platform",
                "linux/arm64",
                "--no-cache",
            ],
            None,
            &[],
        )
        .unwrap();
        assert_eq!(s.builder, BuilderChoice::Legacy);
        // A bad builder name in the file is refused as the file is read, naming its line.
        let err =
            config::parse("[build]\nbuilder = \"kaniko\"\n", Path::new("d.toml")).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(err.message.contains("line 2"), "{}", err.message);
    }

    #[test]
    fn a_switch_is_on_by_its_flag_either_way_by_its_variable_else_by_the_file() {
        // (flag, variable set, file, on)
        for (flag, from_env, file, on) in [
            (true, false, None, true),
            (true, false, Some(false), true),
            (false, false, Some(true), true),
            (false, false, Some(false), false),
            (false, false, None, false),
            (false, true, Some(true), false), // DECKHAND_…=false beats the file
            (true, true, Some(false), true),
        ] {
            assert_eq!(
                switch(flag, from_env, file),
                on,
                "flag {flag}, variable {from_env}, file {file:?}"
            );
        }
        let file = config::parse("take-over = true\n", Path::new("d.toml")).unwrap();
        let take_over = |argv: &[&str], variable: Option<&str>| {
            let (args, _) = deploy_args(argv);
            DeploySettings::resolve(&args, None, Some((Path::new("d.toml"), &file)), |name| {
                (name == "DECKHAND_TAKE_OVER").then(|| variable.map(String::from))?
            })
            .unwrap()
            .take_over
        };
        assert!(take_over(MIN, None), "the file turns it on");
        assert!(
            !take_over(MIN, Some("false")),
            "DECKHAND_TAKE_OVER=false turns it off"
        );
        assert!(take_over(&with(&["--take-over"]), Some("false")));
    }

    #[test]
    fn secret_names_add_up_from_the_flags_the_variable_and_the_file() {
        let file = config::parse("secret-names = [\"HMAC\", \"A\"]", Path::new("f")).unwrap();
        let cases: [(&[&str], Option<&config::File>, &[&str]); 4] = [
            (&[], None, &[]),
            (&["X", "Y,Z"], None, &["X", "Y", "Z"]),
            (&["X", ""], Some(&file), &["X", "HMAC", "A"]),
            (&["A\nB", "HMAC"], Some(&file), &["A", "B", "HMAC"]),
        ];
        for (flags, file, want) in cases {
            let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
            assert_eq!(secret_names(&flags, file), want, "{flags:?}");
        }
        // DECKHAND_SECRET_NAMES is comma-separated, like the repeated flag.
        let cli = crate::cli::Cli::try_parse_from([
            "deckhand",
            "status",
            "--secret-name",
            "A,B",
            "--secret-name",
            "C",
        ])
        .unwrap();
        assert_eq!(cli.global.secret_names, vec!["A", "B", "C"]);
    }
}
