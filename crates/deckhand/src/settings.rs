//! The settings each command runs with, resolved once (command line and `DECKHAND_*` over
//! deckhand.toml over defaults) and checked before any AWS call, so the commands never re-parse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{
    BuildArgs, DeployArgs, RenderArgs, RollbackArgs, RollbackMode, ServiceArgs, StatusArgs,
    WatchArgs,
};
use crate::config;
use crate::deploy::render::{self, Changes};
use crate::deploy::shape;
use crate::deploy::taskdef::{self, TaskDef};
use crate::error::{Error, Result};
use crate::image::options::{BuildSecret, BuilderChoice, Platform};

mod codedeploy;
mod role;
pub use codedeploy::{unused as unused_codedeploy, CodeDeploySettings};
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
    /// `--wait-until STAGE`: where in [`crate::deploy::verdict::STAGES`] (upper-case) or, for a
    /// CODE_DEPLOY service, in [`crate::deploy::appspec::EVENTS`] (canonical spelling) a deploy
    /// may end, unfinished; `None`: at the deployment's final status.
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
    /// What its new revision changes besides the image: the file's `[render]`, then
    /// the service's own, then the flags.
    pub changes: Changes,
    /// How it is deployed if its controller is CODE_DEPLOY.
    pub codedeploy: CodeDeploySettings,
    /// The CodeDeploy settings it was given itself (flags, its own `[services.codedeploy]`),
    /// as written: refused for a deploy with no CODE_DEPLOY service.
    pub codedeploy_given: Vec<String>,
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
    /// The application and deployment group of a CODE_DEPLOY service (found when not given).
    pub codedeploy: CodeDeploySettings,
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
        let flag_changes = changes_from_flags(&args.render)?;
        let flag_codedeploy = codedeploy::FromFlags::deploy(&args.codedeploy)?;
        let services = services(args, f, &flag_changes, &flag_codedeploy, origin)?;
        // The file's `task-definition` is relative to the file; the flag wins over it.
        let task_definition_path = match (&args.task_definition, &f.task_definition) {
            (Some(flag), _) => Some(flag.clone()),
            (None, Some(path)) => Some(beside(origin, path)),
            (None, None) => None,
        };
        if services.len() > 1 && task_definition_path.is_some() {
            return Err(Error::usage(if args.task_definition.is_some() {
                "--task-definition is one service's task definition: use it with one --service"
                    .to_string()
            } else {
                format!(
                    "`task-definition` in {} is one service's task definition: use it with one \
                     service, or pass --task-definition with one --service",
                    origin.display()
                )
            }));
        }
        let (task_definition, warnings) = match task_definition_path.as_deref() {
            Some(path) => {
                let named = if args.task_definition.is_some() {
                    "--task-definition".to_string()
                } else {
                    format!("`task-definition` of {}:", origin.display())
                };
                let (td, warnings) = read_task_definition(path, &named, args.allow_unknown_fields)?;
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

    /// The settings of `service` (as ECS names it: a name given as an ARN matches its last
    /// segment).
    fn service(&self, service: &str) -> Option<&ServiceSettings> {
        self.services
            .iter()
            .find(|s| s.name == service || s.name.rsplit('/').next() == Some(service))
    }

    /// The containers chosen for `service` (matched as [`DeploySettings::service`] matches);
    /// empty: the default choice.
    pub fn containers_for(&self, service: &str) -> &[String] {
        self.service(service)
            .map_or(&[], |s| s.containers.as_slice())
    }

    /// What `service`'s new revision changes besides the image (matched as
    /// [`DeploySettings::service`] matches).
    pub fn changes_for(&self, service: &str) -> &Changes {
        static NONE: std::sync::OnceLock<Changes> = std::sync::OnceLock::new();
        self.service(service)
            .map_or_else(|| NONE.get_or_init(Changes::default), |s| &s.changes)
    }

    /// The CodeDeploy settings `service` was given itself (matched as
    /// [`DeploySettings::service`] matches).
    pub fn codedeploy_given_to(&self, service: &str) -> &[String] {
        self.service(service)
            .map_or(&[], |s| s.codedeploy_given.as_slice())
    }

    /// How `service` is deployed if it is a CODE_DEPLOY service (matched as
    /// [`DeploySettings::service`] matches).
    pub fn codedeploy_for(&self, service: &str) -> &CodeDeploySettings {
        static NONE: std::sync::OnceLock<CodeDeploySettings> = std::sync::OnceLock::new();
        self.service(service).map_or_else(
            || NONE.get_or_init(CodeDeploySettings::default),
            |s| &s.codedeploy,
        )
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
            codedeploy: group_only(&args.codedeploy)?,
        })
    }
}

/// How long a one-off task may run, and how often it is looked at, by default.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_RUN_POLL: Duration = Duration::from_secs(2);

/// `deckhand run`, validated.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub cluster: String,
    /// Where the task runs (network configuration, launch type) and, without
    /// `task_definition`, what it runs.
    pub service: Option<String>,
    /// `FAMILY`, `FAMILY:REVISION` or an ARN, syntax-checked.
    pub task_definition: Option<String>,
    /// `--image`, a valid reference.
    pub image: Option<String>,
    pub containers: Vec<String>,
    /// `--command`, split as a shell would.
    pub command: Option<Vec<String>>,
    pub env: Vec<crate::deploy::render::Assignment>,
    pub timeout: Duration,
    pub poll: Duration,
}

impl RunSettings {
    /// What to run (a service, a task definition, or a task definition beside a service), and
    /// every override checked.
    pub fn resolve(args: &crate::cli::RunArgs) -> Result<Self> {
        let cluster = args
            .cluster
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::usage("name the cluster: --cluster or DECKHAND_CLUSTER"))?;
        let service = args.service.clone().filter(|s| !s.trim().is_empty());
        let task_definition = args
            .task_definition
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(task_definition_ref)
            .transpose()?;
        if service.is_none() && task_definition.is_none() {
            return Err(Error::usage(
                "name what to run: --service SERVICE (its current task definition, with its \
                 network configuration) or --task-definition FAMILY[:REVISION] (or both: that \
                 task definition with the service's network configuration)",
            ));
        }
        let image = match args.image.as_deref().map(str::trim) {
            Some(i) if !i.is_empty() => {
                crate::image::reference::ImageRef::parse(i).map_err(|why| {
                    Error::usage(format!("--image {i:?} is not an image reference: {why}"))
                })?;
                Some(i.to_string())
            }
            _ => None,
        };
        let command = match args.command.as_deref() {
            Some(line) if !line.trim().is_empty() => {
                let split = shlex::split(line).ok_or_else(|| {
                    Error::usage(format!(
                        "--command {line:?}: a quote is not closed; quote it as a shell would"
                    ))
                })?;
                Some(split)
            }
            _ => None,
        };
        let env = args
            .env
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| {
                crate::deploy::render::parse_assignment(e)
                    .map_err(|why| Error::usage(format!("--env {why}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let timeout = args.timeout.unwrap_or(DEFAULT_RUN_TIMEOUT);
        if timeout < MIN_TIMEOUT {
            return Err(Error::usage(format!(
                "--timeout {}ms is too short for a task to start; use at least {}s (e.g. 10m)",
                timeout.as_millis(),
                MIN_TIMEOUT.as_secs()
            )));
        }
        Ok(RunSettings {
            cluster,
            service,
            task_definition,
            image,
            containers: args
                .containers
                .iter()
                .filter(|c| !c.is_empty())
                .cloned()
                .collect(),
            command,
            env,
            timeout,
            poll: args.poll.unwrap_or(DEFAULT_RUN_POLL),
        })
    }
}

/// A task definition reference `deckhand run` takes: an ARN, or `FAMILY[:REVISION]` (letters,
/// digits, `-` and `_`, as ECS allows family names); not a file, as deploy's flag is.
fn task_definition_ref(given: &str) -> Result<String> {
    if given.starts_with("arn:") && given.contains(":task-definition/") {
        return Ok(given.to_string());
    }
    let (family, revision) = match given.split_once(':') {
        Some((f, r)) => (f, Some(r)),
        None => (given, None),
    };
    let family_ok = (1..=255).contains(&family.len())
        && family
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let revision_ok = revision.is_none_or(|r| r.parse::<u32>().is_ok_and(|n| n > 0));
    if family_ok && revision_ok {
        Ok(given.to_string())
    } else {
        Err(Error::usage(format!(
            "--task-definition {given:?}: `deckhand run` takes FAMILY, FAMILY:REVISION or a task \
             definition ARN (register a file first, or deploy it with `deckhand deploy \
             --task-definition FILE`)"
        )))
    }
}

/// `path` as written in the settings file at `origin`: relative to the file's directory.
fn beside(origin: &Path, path: &Path) -> PathBuf {
    match origin.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// `deckhand init`, validated: one service, and a directory whose files may be written.
#[derive(Debug, Clone)]
pub struct InitSettings {
    pub cluster: String,
    pub service: String,
    /// Where deckhand.toml and the task definition file go; created if missing.
    pub dir: PathBuf,
    /// Overwrite the files when they are there.
    pub force: bool,
}

impl InitSettings {
    /// One service; without `--force`, neither file may exist yet (both are named).
    pub fn resolve(args: &crate::cli::InitArgs) -> Result<Self> {
        let cluster = cluster(&args.target, None)?;
        let service = one_service(&args.target, "init one --service at a time")?;
        let dir = args
            .dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        if dir.exists() && !dir.is_dir() {
            return Err(Error::usage(format!(
                "--dir {} is not a directory: name the directory to write deckhand.toml and {} in",
                dir.display(),
                crate::deploy::scaffold::TASK_DEFINITION_FILE
            )));
        }
        let s = InitSettings {
            cluster,
            service,
            dir,
            force: args.force,
        };
        let existing: Vec<String> = s
            .files()
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() && !s.force {
            return Err(Error::usage(format!(
                "{} already exist{}: nothing was written. Pass --force to overwrite, or --dir \
                 to write elsewhere",
                existing.join(" and "),
                if existing.len() == 1 { "s" } else { "" }
            )));
        }
        Ok(s)
    }

    /// deckhand.toml, then the task definition file.
    pub fn files(&self) -> [PathBuf; 2] {
        [
            self.dir.join(config::DEFAULT_FILE),
            self.dir.join(crate::deploy::scaffold::TASK_DEFINITION_FILE),
        ]
    }
}

/// `deckhand continue`, validated.
#[derive(Debug, Clone)]
pub struct ContinueSettings {
    pub cluster: String,
    pub service: String,
    /// ROLLBACK instead of CONTINUE.
    pub rollback: bool,
    /// The application and deployment group of a CODE_DEPLOY service (found when not given).
    pub codedeploy: CodeDeploySettings,
}

/// `--wait-until`: `stable` (or nothing) is the deployment's end; else a lifecycle stage ECS
/// names (kept upper-case) or a CodeDeploy lifecycle event (kept in its canonical spelling,
/// e.g. `AfterAllowTestTraffic`), either in any case.
fn wait_until(given: Option<&str>) -> Result<Option<String>> {
    use crate::deploy::appspec::{self, EVENTS};
    use crate::deploy::verdict::{stage_order, STAGES};
    let Some(given) = given.map(str::trim) else {
        return Ok(None);
    };
    let upper = given.to_ascii_uppercase();
    if upper == "STABLE" || upper.is_empty() {
        return Ok(None);
    }
    if stage_order(&upper).is_some() {
        return Ok(Some(upper));
    }
    if let Some(event) = appspec::event(given) {
        return Ok(Some(event.to_string()));
    }
    Err(Error::usage(format!(
        "--wait-until {given:?} is not a lifecycle stage or event; use stable, an ECS \
         lifecycle stage ({}), or for a CODE_DEPLOY service a CodeDeploy lifecycle event ({})",
        STAGES.join(", "),
        EVENTS.join(", ")
    )))
}

/// `--codedeploy-application` and `--codedeploy-deployment-group` (rollback, continue).
fn group_only(args: &crate::cli::CodeDeployGroupArgs) -> Result<CodeDeploySettings> {
    let flags = codedeploy::FromFlags::group(args)?;
    Ok(CodeDeploySettings {
        application: flags.application,
        deployment_group: flags.deployment_group,
        ..CodeDeploySettings::default()
    })
}

impl ContinueSettings {
    /// One service.
    pub fn resolve(args: &crate::cli::ContinueArgs) -> Result<Self> {
        Ok(ContinueSettings {
            cluster: cluster(&args.target, None)?,
            service: one_service(&args.target, "continue one --service at a time")?,
            rollback: args.rollback,
            codedeploy: group_only(&args.codedeploy)?,
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
/// file apply unless `--container` is given. Each gets the file's task-definition changes, its
/// own from its `[[services]]` table, then `flags`.
fn services(
    args: &DeployArgs,
    file: &config::File,
    flags: &Changes,
    flag_codedeploy: &codedeploy::FromFlags,
    origin: &Path,
) -> Result<Vec<ServiceSettings>> {
    let shared = changes_from_file(&file.render, &format!("{} [render]", origin.display()))?;
    let shared_codedeploy = codedeploy::FromFile::read(
        &file.codedeploy,
        &format!("{} [codedeploy]", origin.display()),
        origin,
    )?;
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
    // Services that would take `deployment-group` from [codedeploy].
    let mut take_shared_group = 0;
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
        let own = match file.services.iter().find(|s| s.name == name) {
            Some(s) => changes_from_file(
                &s.render,
                &format!("{} [services.render] of {name}", origin.display()),
            )?,
            None => Changes::default(),
        };
        let changes = shared.clone().then(own).then(flags.clone());
        let own_codedeploy = match file.services.iter().find(|s| s.name == name) {
            Some(s) => Some(codedeploy::FromFile::read(
                &s.codedeploy,
                &format!("{} [services.codedeploy] of {name}", origin.display()),
                origin,
            )?),
            None => None,
        };
        if own_codedeploy
            .as_ref()
            .is_none_or(|o| o.deployment_group.is_none())
        {
            take_shared_group += 1;
        }
        let codedeploy = codedeploy::resolve(
            flag_codedeploy,
            own_codedeploy.as_ref(),
            &shared_codedeploy,
            ("--codedeploy-hook", "--appspec"),
        )?;
        out.push(ServiceSettings {
            codedeploy_given: codedeploy::given_to_one(flag_codedeploy, own_codedeploy.as_ref()),
            name,
            containers,
            changes,
            codedeploy,
        });
    }
    if out.is_empty() {
        return Err(no_service());
    }
    if out.len() > 1 {
        // A deployment group deploys one ECS service.
        if let Some(flag) = flag_codedeploy.names_one_service() {
            return Err(Error::usage(format!(
                "{flag} names one service's, and {} services are deployed: name each \
                 service's in deckhand.toml [services.codedeploy] (or deploy one --service)",
                out.len()
            )));
        }
        if shared_codedeploy.deployment_group.is_some() && take_shared_group > 1 {
            return Err(Error::usage(format!(
                "`deployment-group` in {} [codedeploy] is one service's, and {take_shared_group} \
                 services would take it: name each service's in [services.codedeploy]",
                origin.display(),
            )));
        }
    }
    Ok(out)
}

/// The task-definition flags, each checked (exit 2 naming the flag; the values of `--env`,
/// `--secret-env` and `--label` are never shown).
fn changes_from_flags(args: &RenderArgs) -> Result<Changes> {
    let given = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect()
    };
    let pairs = |list: &[String], flag: &str| -> Result<Vec<render::Assignment>> {
        given(list)
            .iter()
            .map(|spec| {
                render::parse_assignment(spec).map_err(|e| Error::usage(format!("{flag} {e}")))
            })
            .collect()
    };
    let commands = |list: &[String], flag: &str| -> Result<Vec<render::Scoped<Vec<String>>>> {
        given(list)
            .iter()
            .map(|spec| {
                render::parse_command(spec).map_err(|e| Error::usage(format!("{flag} {e}")))
            })
            .collect()
    };
    let secrets = pairs(&args.secret_env, "--secret-env")?;
    check_secret_sources(&secrets, "--secret-env")?;
    Ok(Changes {
        env: pairs(&args.env, "--env")?,
        secrets,
        env_files: given(&args.env_files)
            .iter()
            .map(|spec| {
                render::parse_env_file(spec).map_err(|e| Error::usage(format!("--env-file {e}")))
            })
            .collect::<Result<_>>()?,
        labels: pairs(&args.labels, "--label")?,
        command: commands(&args.command, "--command")?,
        entry_point: commands(&args.entry_point, "--entry-point")?,
        task_role: role(one(&args.task_role), "--task-role")?,
        execution_role: role(one(&args.execution_role), "--execution-role")?,
        cpu: size(one(&args.cpu), "--cpu", render::parse_cpu)?,
        memory: size(one(&args.memory), "--memory", render::parse_memory)?,
        log_group: checked(one(&args.log_group), "--log-group", render::check_log_group)?,
        log_stream_prefix: checked(
            one(&args.log_stream_prefix),
            "--log-stream-prefix",
            render::check_stream_prefix,
        )?,
    })
}

/// A single-valued flag, trimmed; empty counts as not given.
fn one(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A `[render]` table of deckhand.toml (`at` names it in errors), checked as the
/// flags are.
fn changes_from_file(t: &config::Render, at: &str) -> Result<Changes> {
    let pairs = |map: &std::collections::BTreeMap<String, String>, key: &str| {
        map.iter()
            .map(|(k, v)| {
                render::parse_assignment(&format!("{k}={v}"))
                    .map_err(|e| Error::usage(format!("{at}: {key}: {e}")))
            })
            .collect::<Result<Vec<_>>>()
    };
    let command =
        |c: &Option<config::Command>, key: &str| -> Result<Vec<render::Scoped<Vec<String>>>> {
            match c {
                None => Ok(Vec::new()),
                Some(config::Command::Line(line)) => render::parse_command(line)
                    .map(|s| vec![s])
                    .map_err(|e| Error::usage(format!("{at}: {key}: {e}"))),
                Some(config::Command::Args(args)) if args.is_empty() => {
                    Err(Error::usage(format!("{at}: {key}: the command is empty")))
                }
                Some(config::Command::Args(args)) => Ok(vec![render::Scoped {
                    container: None,
                    value: args.clone(),
                }]),
            }
        };
    let at_key = |key: &str| format!("{at}: {key}");
    let secrets = pairs(&t.secret_env, "secret-env")?;
    check_secret_sources(&secrets, &at_key("secret-env"))?;
    let text = |s: &Option<config::Size>| s.as_ref().map(config::Size::text);
    Ok(Changes {
        env: pairs(&t.env, "env")?,
        secrets,
        env_files: t
            .env_files
            .iter()
            .map(|spec| {
                render::parse_env_file(spec)
                    .map_err(|e| Error::usage(format!("{at}: env-files: {e}")))
            })
            .collect::<Result<_>>()?,
        labels: pairs(&t.labels, "labels")?,
        command: command(&t.command, "command")?,
        entry_point: command(&t.entry_point, "entry-point")?,
        task_role: role(t.task_role.as_deref(), &at_key("task-role"))?,
        execution_role: role(t.execution_role.as_deref(), &at_key("execution-role"))?,
        cpu: size(text(&t.cpu).as_deref(), &at_key("cpu"), render::parse_cpu)?,
        memory: size(
            text(&t.memory).as_deref(),
            &at_key("memory"),
            render::parse_memory,
        )?,
        log_group: checked(
            t.log_group.as_deref(),
            &at_key("log-group"),
            render::check_log_group,
        )?,
        log_stream_prefix: checked(
            t.log_stream_prefix.as_deref(),
            &at_key("log-stream-prefix"),
            render::check_stream_prefix,
        )?,
    })
}

fn check_secret_sources(secrets: &[render::Assignment], what: &str) -> Result<()> {
    for s in secrets {
        render::check_secret_source(&s.value)
            .map_err(|e| Error::usage(format!("{what} {}: {e}", s.key)))?;
    }
    Ok(())
}

/// `value`, if given, checked by `check` (a usage error naming `what`).
fn checked(
    value: Option<&str>,
    what: &str,
    check: fn(&str) -> std::result::Result<(), String>,
) -> Result<Option<String>> {
    value
        .map(|v| {
            check(v)
                .map(|()| v.to_string())
                .map_err(|e| Error::usage(format!("{what} {e}")))
        })
        .transpose()
}

fn role(arn: Option<&str>, what: &str) -> Result<Option<String>> {
    arn.map(|a| {
        render::check_role(a)
            .map(|()| a.to_string())
            .map_err(|e| Error::usage(format!("{what} {e}")))
    })
    .transpose()
}

fn size(
    text: Option<&str>,
    what: &str,
    parse: fn(&str) -> std::result::Result<String, String>,
) -> Result<Option<String>> {
    text.map(|t| parse(t).map_err(|e| Error::usage(format!("{what} {e}"))))
        .transpose()
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
fn read_task_definition(
    path: &Path,
    named: &str,
    allow_unknown: bool,
) -> Result<(TaskDef, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {named} {}: {e}", path.display())))?;
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
        let web = &s.services[0].codedeploy;
        assert_eq!(
            (web.application.as_deref(), web.deployment_group.as_deref()),
            (Some("app"), None)
        );
        let worker = &s.services[1].codedeploy;
        assert_eq!(
            (
                worker.application.as_deref(),
                worker.deployment_group.as_deref()
            ),
            (Some("app"), Some("worker-bg"))
        );
        assert_eq!(
            worker.hooks,
            vec![(
                "AfterAllowTestTraffic".to_string(),
                "smoke-test".to_string()
            )]
        );
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
    fn the_files_task_definition_is_read_beside_it_and_the_flag_wins() {
        let dir = tempfile::tempdir().unwrap();
        let td = |family: &str| {
            format!(
                r#"{{"family": "{family}", "containerDefinitions": [{{"name": "web", "image": "web:1"}}]}}"#
            )
        };
        std::fs::create_dir(dir.path().join("deploy")).unwrap();
        std::fs::write(dir.path().join("deploy/web.json"), td("from-file")).unwrap();
        std::fs::write(dir.path().join("flag.json"), td("from-flag")).unwrap();
        let origin = dir.path().join("deckhand.toml");
        let settle = |argv: &[&str], toml: &str| {
            let (args, region) = deploy_args(argv);
            let file = config::parse(toml, &origin).unwrap();
            DeploySettings::resolve(&args, region.as_deref(), Some((&origin, &file)), |_| None)
        };
        let toml = "task-definition = \"deploy/web.json\"\n";
        let s = settle(MIN, toml).unwrap();
        assert_eq!(s.task_definition.unwrap().family(), "from-file");
        let flag = dir.path().join("flag.json");
        let s = settle(&with(&["--task-definition", flag.to_str().unwrap()]), toml).unwrap();
        assert_eq!(s.task_definition.unwrap().family(), "from-flag");
        // One service's: with two, a usage error naming the key.
        let two = format!("{toml}[[services]]\nname = \"web\"\n[[services]]\nname = \"worker\"\n");
        let err = settle(&["--cluster", "c", "--image", "x"], &two).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message.contains("`task-definition` in"),
            "{}",
            err.message
        );
        // A missing file is named as the path deckhand looked at.
        let err = settle(MIN, "task-definition = \"nope.json\"\n").unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message.contains(&format!(
                "cannot read `task-definition` of {}: {}",
                origin.display(),
                dir.path().join("nope.json").display()
            )),
            "{}",
            err.message
        );
    }

    #[test]
    fn init_takes_one_service_and_refuses_to_overwrite_without_force() {
        fn parse(argv: &[&str]) -> crate::cli::InitArgs {
            let mut full = vec!["deckhand", "init"];
            full.extend_from_slice(argv);
            match crate::cli::Cli::try_parse_from(&full).unwrap().command {
                crate::cli::Command::Init(args) => args,
                _ => panic!("init"),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let s = InitSettings::resolve(&parse(&["--cluster", "c", "--service", "web", "--dir", d]))
            .unwrap();
        assert_eq!((s.cluster.as_str(), s.service.as_str()), ("c", "web"));
        assert_eq!(s.files()[0], dir.path().join("deckhand.toml"));
        assert_eq!(s.files()[1], dir.path().join("taskdef.json"));
        let s = InitSettings::resolve(&parse(&["--cluster", "c", "--service", "web"])).unwrap();
        assert_eq!(s.dir, PathBuf::from("."));
        assert!(!s.force);

        std::fs::write(dir.path().join("taskdef.json"), "{}").unwrap();
        let err =
            InitSettings::resolve(&parse(&["--cluster", "c", "--service", "web", "--dir", d]))
                .unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message.contains("taskdef.json already exists"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("deckhand.toml"), "{}", err.message);
        assert!(err.message.contains("--force"), "{}", err.message);
        std::fs::write(dir.path().join("deckhand.toml"), "").unwrap();
        let err =
            InitSettings::resolve(&parse(&["--cluster", "c", "--service", "web", "--dir", d]))
                .unwrap_err();
        assert!(
            err.message.contains("deckhand.toml and") && err.message.contains("already exist:"),
            "{}",
            err.message
        );
        let s = InitSettings::resolve(&parse(&[
            "--cluster",
            "c",
            "--service",
            "web",
            "--dir",
            d,
            "--force",
        ]))
        .unwrap();
        assert!(s.force);

        let file = dir.path().join("deckhand.toml");
        for (argv, says) in [
            (vec!["--service", "web"], "name the cluster"),
            (vec!["--cluster", "c"], "name the service"),
            (
                vec!["--cluster", "c", "--service", "a", "--service", "b"],
                "init one --service at a time",
            ),
            (
                vec![
                    "--cluster",
                    "c",
                    "--service",
                    "a",
                    "--dir",
                    file.to_str().unwrap(),
                ],
                "is not a directory",
            ),
        ] {
            let err = InitSettings::resolve(&parse(&argv)).unwrap_err();
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
    fn wait_until_is_stable_a_lifecycle_stage_or_a_codedeploy_event() {
        for (given, want) in [
            (None, None),
            (Some("stable"), None),
            (Some(" STABLE "), None),
            (Some(""), None),
            (Some("bake_time"), Some("BAKE_TIME")),
            (
                Some("PRODUCTION_TRAFFIC_SHIFT"),
                Some("PRODUCTION_TRAFFIC_SHIFT"),
            ),
            (Some("afterallowtesttraffic"), Some("AfterAllowTestTraffic")),
            (Some("AfterAllowTraffic"), Some("AfterAllowTraffic")),
            (Some("INSTALL"), Some("Install")),
            (Some(" BeforeAllowTraffic"), Some("BeforeAllowTraffic")),
        ] {
            assert_eq!(wait_until(given).unwrap().as_deref(), want, "{given:?}");
        }
        let err = wait_until(Some("baking")).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        for says in [
            "\"baking\"",
            "PRODUCTION_TRAFFIC_SHIFT",
            "AfterAllowTestTraffic",
            "stable",
        ] {
            assert!(err.message.contains(says), "{says}: {}", err.message);
        }
        // From the flag and the file, the flag first.
        let s = resolve(&with(&["--wait-until", "allowtesttraffic"]), None).unwrap();
        assert_eq!(s.wait_until.as_deref(), Some("AllowTestTraffic"));
        let s = resolve(MIN, Some("wait-until = \"afterallowtraffic\"\n")).unwrap();
        assert_eq!(s.wait_until.as_deref(), Some("AfterAllowTraffic"));
    }

    /// An ECS AppSpec as deckhand takes one, in JSON.
    const APPSPEC_JSON: &str = r#"{"version": 0.0, "Resources": [{"TargetService": {
        "Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": "x",
        "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}]}"#;

    /// The same AppSpec in YAML.
    const APPSPEC_YAML: &str = "version: 0.0\nResources:\n  - TargetService:\n      \
        Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: x\n        \
        LoadBalancerInfo:\n          ContainerName: web\n          ContainerPort: 8080\n";

    /// `deckhand deploy ARGV` over the deckhand.toml `toml` written in `dir` (with the files it
    /// names beside it).
    fn resolve_in(dir: &Path, argv: &[&str], toml: &str) -> Result<DeploySettings> {
        let origin = dir.join("deckhand.toml");
        std::fs::write(&origin, toml).unwrap();
        let (args, region) = deploy_args(argv);
        let file = config::parse(toml, &origin)?;
        DeploySettings::resolve(&args, region.as_deref(), Some((&origin, &file)), |_| None)
    }

    fn codedeploy_of<'a>(s: &'a DeploySettings, service: &str) -> &'a CodeDeploySettings {
        &s.services
            .iter()
            .find(|x| x.name == service)
            .unwrap()
            .codedeploy
    }

    fn hooks(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(e, f)| (e.to_string(), f.to_string()))
            .collect()
    }

    #[test]
    fn codedeploy_settings_are_the_flags_over_the_services_table_over_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("deploy")).unwrap();
        std::fs::write(dir.path().join("deploy/appspec.yaml"), APPSPEC_YAML).unwrap();
        std::fs::write(dir.path().join("flag.json"), APPSPEC_JSON).unwrap();
        let flag_appspec = dir.path().join("flag.json");
        let flag_appspec = flag_appspec.to_str().unwrap();
        let two = "cluster = \"c\"\nimage = \"x\"\n\
                   [codedeploy]\napplication = \"shop\"\n\
                   hooks = { BeforeAllowTraffic = \"check\", beforeinstall = \"prepare\" }\n\
                   [[services]]\nname = \"web\"\n\
                   [services.codedeploy]\ndeployment-group = \"web-bg\"\n\
                   [[services]]\nname = \"api\"\n\
                   [services.codedeploy]\napplication = \"api-app\"\n\
                   deployment-group = \"api-bg\"\nhooks = { AfterAllowTestTraffic = \"smoke\" }\n";
        let s = resolve_in(dir.path(), &[], two).unwrap();
        assert_eq!(
            codedeploy_of(&s, "web"),
            &CodeDeploySettings {
                application: Some("shop".into()),
                deployment_group: Some("web-bg".into()),
                // In lifecycle order, each event spelled as CodeDeploy does.
                hooks: hooks(&[
                    ("BeforeInstall", "prepare"),
                    ("BeforeAllowTraffic", "check")
                ]),
                appspec: None,
            }
        );
        assert_eq!(
            codedeploy_of(&s, "api"),
            &CodeDeploySettings {
                application: Some("api-app".into()),
                deployment_group: Some("api-bg".into()),
                hooks: hooks(&[("AfterAllowTestTraffic", "smoke")]),
                appspec: None,
            },
            "the service's own table wins, its hooks replace the file's"
        );
        // What each was given itself: not the shared [codedeploy] table's application and hooks.
        let at = |service: &str| {
            format!(
                "{} [services.codedeploy] of {service}",
                dir.path().join("deckhand.toml").display()
            )
        };
        assert_eq!(
            s.codedeploy_given_to("web"),
            [format!("`deployment-group` in {}", at("web"))]
        );
        assert_eq!(s.codedeploy_given_to("api").len(), 3);
        let shared_only = "cluster = \"c\"\nimage = \"x\"\n\
                           [codedeploy]\nhooks = { BeforeAllowTraffic = \"check\" }\n\
                           [[services]]\nname = \"api\"\n";
        let s = resolve_in(dir.path(), &[], shared_only).unwrap();
        assert_eq!(codedeploy_of(&s, "api").hooks.len(), 1);
        assert!(s.codedeploy_given_to("api").is_empty());
        // Hooks from the flags replace every table's, for every service, in the order given.
        let s = resolve_in(
            dir.path(),
            &[
                "--codedeploy-hook",
                "afterallowtraffic=arn:aws:lambda:eu-west-1:123456789012:function:after:live",
                "--codedeploy-hook",
                " BeforeInstall = prepare ",
            ],
            two,
        )
        .unwrap();
        for service in ["web", "api"] {
            assert_eq!(
                codedeploy_of(&s, service).hooks,
                hooks(&[
                    (
                        "AfterAllowTraffic",
                        "arn:aws:lambda:eu-west-1:123456789012:function:after:live"
                    ),
                    ("BeforeInstall", "prepare"),
                ]),
                "{service}"
            );
        }
        assert_eq!(
            codedeploy_of(&s, "web").application.as_deref(),
            Some("shop")
        );

        // One service: the flags name its application and group, over the file's.
        let one = "cluster = \"c\"\nimage = \"x\"\n[codedeploy]\napplication = \"shop\"\n\
                   deployment-group = \"shop-bg\"\nappspec = \"deploy/appspec.yaml\"\n";
        let s = resolve_in(dir.path(), &["--service", "web"], one).unwrap();
        let from_file = codedeploy_of(&s, "web");
        assert_eq!(from_file.deployment_group.as_deref(), Some("shop-bg"));
        let want: serde_json::Value = serde_json::from_str(APPSPEC_JSON).unwrap();
        assert_eq!(
            from_file.appspec.as_ref(),
            Some(&want),
            "YAML read beside the file, as JSON"
        );
        let s = resolve_in(
            dir.path(),
            &with(&[
                "--codedeploy-application",
                "other",
                "--codedeploy-deployment-group",
                "other-bg",
                "--appspec",
                flag_appspec,
            ]),
            one,
        )
        .unwrap();
        let cd = codedeploy_of(&s, "web");
        assert_eq!(
            (cd.application.as_deref(), cd.deployment_group.as_deref()),
            (Some("other"), Some("other-bg"))
        );
        assert_eq!(cd.appspec.as_ref(), Some(&want));
        // Nothing given: found from the service; empty values (the action's unset inputs) too.
        let s = resolve(
            &with(&["--codedeploy-application", "", "--codedeploy-hook", ""]),
            None,
        )
        .unwrap();
        assert_eq!(codedeploy_of(&s, "web"), &CodeDeploySettings::default());
        // [codedeploy] `deployment-group` with two services, each with its own: fine.
        let s = resolve_in(
            dir.path(),
            &[],
            "cluster = \"c\"\nimage = \"x\"\n[codedeploy]\ndeployment-group = \"g\"\n\
             [[services]]\nname = \"a\"\n[[services]]\nname = \"b\"\n\
             [services.codedeploy]\ndeployment-group = \"b-bg\"\n",
        )
        .unwrap();
        assert_eq!(
            codedeploy_of(&s, "a").deployment_group.as_deref(),
            Some("g")
        );
        assert_eq!(
            codedeploy_of(&s, "b").deployment_group.as_deref(),
            Some("b-bg")
        );
    }

    #[test]
    fn codedeploy_flags_read_their_env_vars() {
        // Names unique to this test: the environment is shared by the test threads.
        std::env::set_var(
            "DECKHAND_CODEDEPLOY_HOOK",
            "BeforeInstall=a\nAfterInstall=b",
        );
        std::env::set_var("DECKHAND_CODEDEPLOY_DEPLOYMENT_GROUP", "web-bg");
        let (args, _) = deploy_args(MIN);
        std::env::remove_var("DECKHAND_CODEDEPLOY_HOOK");
        std::env::remove_var("DECKHAND_CODEDEPLOY_DEPLOYMENT_GROUP");
        assert_eq!(
            args.codedeploy.hooks,
            vec!["BeforeInstall=a", "AfterInstall=b"]
        );
        assert_eq!(
            args.codedeploy.group.codedeploy_deployment_group.as_deref(),
            Some("web-bg")
        );
    }

    #[test]
    fn bad_codedeploy_settings_exit_2_and_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        };
        let good = write("good.json", APPSPEC_JSON);
        let missing = dir
            .path()
            .join("missing.yaml")
            .to_str()
            .unwrap()
            .to_string();
        let garbage = write("garbage", "{ \"a\": [1,\n  - b: : :\n");
        let list = write("list.yaml", "- a\n- b\n");
        let no_version = write("nv.yaml", "Resources: []\n");
        let no_resources = write("nr.yaml", "version: 0.0\n");
        let not_a_list = write("nl.yaml", "version: 0.0\nResources: {}\n");
        let two = write(
            "two.yaml",
            "version: 0.0\nResources:\n  - TargetService: {Type: AWS::ECS::Service}\n  \
             - TargetService: {Type: AWS::ECS::Service}\n",
        );
        let lambda = write(
            "lambda.yaml",
            "version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n",
        );
        let wrong_type = write(
            "wt.yaml",
            "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::Lambda::Function\n",
        );
        let alias = write(
            "alias.yaml",
            "version: 0.0\nx: &a 1\ny: *a\nResources:\n  - TargetService: {Type: AWS::ECS::Service}\n",
        );
        let long = "a".repeat(101);
        let long_hook = format!("AfterInstall={}", "f".repeat(65));
        let hook = |spec: &'static str| vec!["--codedeploy-hook", spec];
        let svc2 = "[[services]]\nname = \"a\"\n[[services]]\nname = \"b\"\n";
        let base = "cluster = \"c\"\nimage = \"x\"\n";
        let appspec_toml = format!("{base}[codedeploy]\nappspec = \"good.json\"\n");
        let hooks_toml = format!("{base}[codedeploy]\nhooks = {{ BeforeInstall = \"f\" }}\n");
        let mixed_toml = format!(
            "{base}[codedeploy]\nhooks = {{ BeforeInstall = \"f\" }}\n\
             [[services]]\nname = \"web\"\n[services.codedeploy]\nappspec = \"good.json\"\n"
        );
        let cases: Vec<(Vec<&str>, String, &str)> =
            vec![
            // The application and group are one service's.
            (
                vec!["--codedeploy-application", "shop"],
                format!("{base}{svc2}"),
                "--codedeploy-application names one service's, and 2 services are deployed: \
                 name each service's in deckhand.toml [services.codedeploy]",
            ),
            (
                [MIN, &["--service", "api", "--codedeploy-deployment-group", "g"]].concat(),
                String::new(),
                "--codedeploy-deployment-group names one service's",
            ),
            (
                vec![],
                format!("{base}[codedeploy]\ndeployment-group = \"g\"\n{svc2}"),
                "`deployment-group` in",
            ),
            // Hooks.
            (
                with(&hook("Install=f")),
                String::new(),
                "--codedeploy-hook \"Install\" is not a lifecycle event a hook can run at; use \
                 one of BeforeInstall, AfterInstall, AfterAllowTestTraffic, BeforeAllowTraffic, \
                 AfterAllowTraffic",
            ),
            (
                with(&hook("Later=f")),
                String::new(),
                "is not a lifecycle event",
            ),
            (
                with(&hook("BeforeInstall")),
                String::new(),
                "expected EVENT=FUNCTION",
            ),
            (
                [with(&hook("BeforeInstall=a")), hook("beforeinstall=b")].concat(),
                String::new(),
                "--codedeploy-hook BeforeInstall is named twice",
            ),
            (
                with(&hook("BeforeInstall=arn:aws:lambda:eu-west-1:1234:function:f")),
                String::new(),
                "not a Lambda function",
            ),
            (
                with(&hook("BeforeInstall=arn:aws:s3:::bucket")),
                String::new(),
                "not a Lambda function",
            ),
            (
                with(&hook("BeforeInstall=my function")),
                String::new(),
                "not a Lambda function",
            ),
            (
                with(&hook("BeforeInstall=")),
                String::new(),
                "not a Lambda function",
            ),
            (
                with(&["--codedeploy-hook", &long_hook]),
                String::new(),
                "not a Lambda function",
            ),
            (
                vec![],
                format!("{base}[codedeploy]\nhooks = {{ AllowTraffic = \"f\" }}\n"),
                "[codedeploy]: hooks: \"AllowTraffic\" is not a lifecycle event",
            ),
            (
                vec![],
                format!(
                    "{base}[[services]]\nname = \"web\"\n[services.codedeploy]\n\
                     hooks = {{ BeforeInstall = \"a\", BEFOREINSTALL = \"b\" }}\n"
                ),
                "[services.codedeploy] of web: hooks: BeforeInstall is named twice",
            ),
            // An AppSpec names its own hooks.
            (
                [with(&hook("BeforeInstall=f")), vec!["--appspec", &good]].concat(),
                String::new(),
                "--appspec goes without --codedeploy-hook: the AppSpec file names its own hooks",
            ),
            (
                with(&["--appspec", &good]),
                hooks_toml.clone(),
                "--appspec goes without `hooks` in",
            ),
            (
                with(&hook("BeforeInstall=f")),
                appspec_toml.clone(),
                "`appspec` in",
            ),
            (vec![], mixed_toml.clone(), "goes without `hooks` in"),
            // The AppSpec file.
            (
                with(&["--appspec", &missing]),
                String::new(),
                "cannot read --appspec",
            ),
            (
                with(&["--appspec", &garbage]),
                String::new(),
                "not valid JSON: invalid number at line 2 column 4",
            ),
            (
                vec![],
                format!("{base}[codedeploy]\nappspec = \"nope.yaml\"\n"),
                "cannot read",
            ),
            (
                with(&["--appspec", &list]),
                String::new(),
                "not an AppSpec: expected a map",
            ),
            (
                with(&["--appspec", &no_version]),
                String::new(),
                "no `version`",
            ),
            (
                with(&["--appspec", &no_resources]),
                String::new(),
                "no `Resources`",
            ),
            (
                with(&["--appspec", &not_a_list]),
                String::new(),
                "`Resources` is not a list",
            ),
            (
                with(&["--appspec", &two]),
                String::new(),
                "`Resources` has 2 entries",
            ),
            (
                with(&["--appspec", &lambda]),
                String::new(),
                "no `TargetService.Type`",
            ),
            (
                with(&["--appspec", &wrong_type]),
                String::new(),
                "deckhand deploys an AWS::ECS::Service",
            ),
            (
                with(&["--appspec", &alias]),
                String::new(),
                "a YAML alias",
            ),
            // CodeDeploy's names.
            (
                with(&["--codedeploy-application", &long]),
                String::new(),
                "--codedeploy-application \"aaaa",
            ),
            (
                with(&["--codedeploy-deployment-group", &long]),
                String::new(),
                "use 1 to 100 characters",
            ),
            (
                vec![],
                format!("{base}[codedeploy]\napplication = \"{long}\"\n"),
                "[codedeploy]: application",
            ),
        ];
        for (mut argv, toml, says) in cases {
            let toml = if toml.is_empty() {
                base.to_string()
            } else {
                toml
            };
            // The services from the file when it names them, else web.
            if !argv.contains(&"--service") && !toml.contains("[[services]]") {
                argv.extend_from_slice(&["--service", "web"]);
            }
            let err = resolve_in(dir.path(), &argv, &toml).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{argv:?} {toml}");
            assert!(err.message.contains(says), "{argv:?}: {}", err.message);
        }
        // What the ARN and name rules let through.
        for function in [
            "smoke-test",
            "Smoke_Test_1",
            "arn:aws:lambda:eu-west-1:123456789012:function:smoke",
            "arn:aws:lambda:us-gov-west-1:123456789012:function:smoke:3",
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:smoke:$LATEST",
            "arn:aws:lambda:ap-southeast-2:123456789012:function:smoke:live-1",
        ] {
            let spec = format!("AfterAllowTestTraffic={function}");
            let s = resolve(&with(&["--codedeploy-hook", &spec]), None)
                .unwrap_or_else(|e| panic!("{function}: {}", e.message));
            assert_eq!(s.services[0].codedeploy.hooks[0].1, function);
        }
        let hundred = "a".repeat(100);
        let s = resolve(&with(&["--codedeploy-application", &hundred]), None).unwrap();
        assert_eq!(s.services[0].codedeploy.application, Some(hundred));
    }

    #[test]
    fn yaml_becomes_json() {
        use codedeploy::parse_appspec;
        let cases: [(&str, serde_json::Value); 5] = [
            (
                "s: text\ni: -3\nf: 1.5\nb: true\nn: ~\nq: \"0.0\"\n",
                serde_json::json!({"s": "text", "i": -3, "f": 1.5, "b": true, "n": null, "q": "0.0"}),
            ),
            (
                "list:\n  - 1\n  - {a: [x, y]}\n  - []\nempty: {}\n",
                serde_json::json!({"list": [1, {"a": ["x", "y"]}, []], "empty": {}}),
            ),
            ("version: 0.0\n", serde_json::json!({"version": 0.0})),
            (
                "# a comment\nkey: 'quoted: yes'\n",
                serde_json::json!({"key": "quoted: yes"}),
            ),
            ("{\"json\": [1, 2]}", serde_json::json!({"json": [1, 2]})),
        ];
        for (yaml, want) in cases {
            assert_eq!(parse_appspec(yaml).as_ref(), Ok(&want), "{yaml}");
        }
        for (yaml, says) in [
            ("a: &x 1\nb: *x\n", "a YAML alias"),
            ("1: one\n", "not a string"),
            ("? [a]\n: list key\n", "not a string"),
            ("f: .nan\n", "JSON can hold"),
            ("a: 1\n---\nb: 2\n", "2 YAML documents"),
            ("", "empty"),
            ("a: [1\n", "neither JSON nor YAML"),
            (
                "{\"version\": 0.0, \"Resources\": [\n",
                "not valid JSON: EOF while parsing",
            ),
        ] {
            let err = parse_appspec(yaml).unwrap_err();
            assert!(err.contains(says), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn rollback_and_continue_take_the_application_and_group() {
        fn parse(argv: &[&str]) -> crate::cli::Command {
            let mut full = vec!["deckhand"];
            full.extend_from_slice(argv);
            crate::cli::Cli::try_parse_from(&full).unwrap().command
        }
        let flags = [
            "--cluster",
            "c",
            "--service",
            "web",
            "--codedeploy-application",
            "shop",
            "--codedeploy-deployment-group",
            "web-bg",
        ];
        let want = CodeDeploySettings {
            application: Some("shop".into()),
            deployment_group: Some("web-bg".into()),
            ..CodeDeploySettings::default()
        };
        let crate::cli::Command::Rollback(a) = parse(&[&["rollback"][..], &flags].concat()) else {
            panic!("rollback")
        };
        assert_eq!(RollbackSettings::resolve(&a).unwrap().codedeploy, want);
        let crate::cli::Command::Continue(a) =
            parse(&[&["continue", "--rollback"][..], &flags].concat())
        else {
            panic!("continue")
        };
        let s = ContinueSettings::resolve(&a).unwrap();
        assert!(s.rollback);
        assert_eq!(s.codedeploy, want);
        let crate::cli::Command::Continue(a) =
            parse(&["continue", "--cluster", "c", "--service", "web"])
        else {
            panic!("continue")
        };
        assert_eq!(
            ContinueSettings::resolve(&a).unwrap().codedeploy,
            CodeDeploySettings::default()
        );
        let long = "g".repeat(101);
        let crate::cli::Command::Rollback(a) = parse(&[
            "rollback",
            "--cluster",
            "c",
            "--service",
            "web",
            "--codedeploy-deployment-group",
            &long,
        ]) else {
            panic!("rollback")
        };
        let err = RollbackSettings::resolve(&a).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(
            err.message.contains("--codedeploy-deployment-group"),
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
    fn task_definition_changes_layer_the_file_the_service_and_the_flags() {
        let toml = "cluster = \"c\"\nimage = \"x\"\n\
                    [render]\nenv = { MODE = \"file\", KEEP = \"k\" }\ncpu = 256\n\
                    [[services]]\nname = \"web\"\n\
                    [services.render]\nenv = { MODE = \"service\" }\nmemory = \"1 GB\"\n\
                    [[services]]\nname = \"worker\"\n";
        let s = resolve(&["--env", "MODE=flag", "--cpu", "1 vCPU"], Some(toml)).unwrap();
        let web = s.changes_for("web");
        let modes: Vec<&str> = web
            .env
            .iter()
            .filter(|a| a.key == "MODE")
            .map(|a| a.value.as_str())
            .collect();
        assert_eq!(
            modes,
            vec!["file", "service", "flag"],
            "applied in this order"
        );
        assert_eq!(
            web.cpu.as_deref(),
            Some("1024"),
            "the flag wins, normalised"
        );
        assert_eq!(web.memory.as_deref(), Some("1024"));
        let worker = s.changes_for("worker");
        assert_eq!(worker.memory, None, "web's own table is web's");
        assert_eq!(worker.env.len(), 3);
        // Every flag, read and normalised.
        let s = resolve(
            &with(&[
                "--env",
                "web:URL=http://x:1",
                "--secret-env",
                "DB=arn:aws:ssm:us-east-1:123456789012:parameter/db",
                "--env-file",
                "arn:aws:s3:::b/a.env",
                "--label",
                "team=core",
                "--command",
                "sh -c 'sleep 1'",
                "--entry-point",
                "web:/bin/sh",
                "--task-role",
                "arn:aws:iam::123456789012:role/t",
                "--execution-role",
                "arn:aws:iam::123456789012:role/e",
                "--memory",
                "2GB",
                "--log-group",
                "/ecs/web",
                "--log-stream-prefix",
                "web",
            ]),
            None,
        )
        .unwrap();
        let c = s.changes_for("web");
        assert_eq!(c.env[0].container.as_deref(), Some("web"));
        assert_eq!(c.command[0].value, vec!["sh", "-c", "sleep 1"]);
        assert_eq!(c.entry_point[0].container.as_deref(), Some("web"));
        assert_eq!(c.memory.as_deref(), Some("2048"));
        assert_eq!(c.log_group.as_deref(), Some("/ecs/web"));
        assert_eq!(c.named_containers(), vec!["web"]);
    }

    #[test]
    fn bad_task_definition_changes_exit_2_without_showing_values() {
        let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (
                with(&["--env", "NOEQUALS"]),
                None,
                "--env an item has no `=`: expected [CONTAINER:]NAME=VALUE",
            ),
            (with(&["--env", "=hunter2"]), None, "--env"),
            (
                with(&["--label", ":a=hunter2"]),
                None,
                "not a container name",
            ),
            (
                with(&["--secret-env", "DB=hunter2 hunter2"]),
                None,
                "--secret-env DB",
            ),
            (with(&["--env-file", "s3://b/a.env"]), None, "--env-file"),
            (with(&["--command", "sh -c 'x"]), None, "--command"),
            (with(&["--task-role", "web"]), None, "--task-role \"web\""),
            (with(&["--execution-role", "x"]), None, "--execution-role"),
            (with(&["--cpu", "lots"]), None, "--cpu \"lots\""),
            (with(&["--memory", "1.3 GB"]), None, "--memory"),
            (with(&["--log-group", "a b"]), None, "--log-group \"a b\""),
            (
                with(&["--log-stream-prefix", "a:b"]),
                None,
                "--log-stream-prefix",
            ),
            (
                MIN.to_vec(),
                Some("[render]\nenv = { \"a b:K\" = \"hunter2\" }\n"),
                "deckhand.toml [render]: env:",
            ),
            (
                MIN.to_vec(),
                Some("[render]\ncpu = 5\n"),
                "deckhand.toml [render]: cpu",
            ),
            (
                MIN.to_vec(),
                Some("[[services]]\nname = \"web\"\n[services.render]\ncommand = []\n"),
                "[services.render] of web: command: the command is empty",
            ),
        ];
        for (argv, toml, says) in cases {
            let err = resolve(&argv, toml).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{argv:?}");
            assert!(err.message.contains(says), "{argv:?}: {}", err.message);
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
        let err = config::parse("[render]\nenvs = {}\n", Path::new("d.toml")).unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
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

    fn run_settings(argv: &[&str]) -> Result<RunSettings> {
        let mut full = vec!["deckhand", "run", "--cluster", "c"];
        full.extend_from_slice(argv);
        let cli = crate::cli::Cli::try_parse_from(&full).unwrap();
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("run")
        };
        RunSettings::resolve(&args)
    }

    #[test]
    fn run_takes_a_service_a_task_definition_or_both() {
        let s = run_settings(&["--service", "web"]).unwrap();
        assert_eq!(
            (s.service.as_deref(), s.task_definition, s.timeout, s.poll),
            (Some("web"), None, DEFAULT_RUN_TIMEOUT, DEFAULT_RUN_POLL)
        );
        let s = run_settings(&[
            "--task-definition",
            "migrate:3",
            "--command",
            "sh -c 'echo hi; exit 7'",
            "--env",
            "A=1",
            "--env",
            "proxy:B=x=y",
            "--timeout",
            "30s",
        ])
        .unwrap();
        assert_eq!(s.task_definition.as_deref(), Some("migrate:3"));
        assert_eq!(
            s.command,
            Some(vec!["sh".into(), "-c".into(), "echo hi; exit 7".into()])
        );
        assert_eq!(s.env.len(), 2);
        assert_eq!(s.env[1].container.as_deref(), Some("proxy"));
        assert_eq!(s.env[1].value, "x=y");
        assert_eq!(s.timeout, Duration::from_secs(30));
        let both = run_settings(&["--service", "web", "--task-definition", "migrate"]).unwrap();
        assert_eq!(
            (both.service.as_deref(), both.task_definition.as_deref()),
            (Some("web"), Some("migrate"))
        );
        let arn = "arn:aws:ecs:us-east-1:1:task-definition/web:2";
        assert_eq!(
            run_settings(&["--task-definition", arn])
                .unwrap()
                .task_definition
                .as_deref(),
            Some(arn)
        );
    }

    #[test]
    fn run_usage_errors_say_what_to_do() {
        let cases: [(&[&str], &str); 8] = [
            (&[], "name what to run: --service SERVICE"),
            (
                &["--task-definition", "td.json"],
                "takes FAMILY, FAMILY:REVISION",
            ),
            (
                &["--task-definition", "web:0"],
                "takes FAMILY, FAMILY:REVISION",
            ),
            (
                &["--service", "web", "--image", "Bad Image"],
                "not an image reference",
            ),
            (
                &["--service", "web", "--command", "echo 'hi"],
                "a quote is not closed",
            ),
            (
                &["--service", "web", "--env", "NOVALUE"],
                "expected [CONTAINER:]NAME=VALUE",
            ),
            (
                &["--service", "web", "--env", ":K=V"],
                "before the `:` is not a container name",
            ),
            (&["--service", "web", "--timeout", "0"], "is too short"),
        ];
        for (argv, want) in cases {
            let e = run_settings(argv).unwrap_err();
            assert_eq!(e.exit, crate::error::Exit::Usage, "{argv:?}");
            assert!(e.message.contains(want), "{argv:?}: {}", e.message);
        }
        let cli = crate::cli::Cli::try_parse_from(["deckhand", "run", "--service", "web"]).unwrap();
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("run")
        };
        assert!(RunSettings::resolve(&args)
            .unwrap_err()
            .message
            .contains("name the cluster"));
    }
}
