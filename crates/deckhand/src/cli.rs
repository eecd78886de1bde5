//! Command-line surface: every flag and its `DECKHAND_*` environment variable, as parsed. Flags
//! that deckhand.toml can also set have no clap default, so "not given" can be told; defaults and
//! validation are in `crate::settings`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deploy agent for Amazon ECS: build, push by git SHA, deploy, watch, roll back.
#[derive(Debug, Parser)]
#[command(name = "deckhand", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags that every subcommand understands.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// AWS region (default: the AWS configuration chain, e.g. AWS_REGION).
    #[arg(long, global = true, env = "DECKHAND_REGION", help_heading = "Global")]
    pub region: Option<String>,

    /// How results are printed on stdout; logs always go to stderr.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, env = "DECKHAND_OUTPUT", help_heading = "CI reporting")]
    pub output: OutputFormat,

    /// More log detail (-v debug, -vv trace). Secrets are masked at every level.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = "Global")]
    pub verbose: u8,

    /// Less log detail: warnings and errors only.
    #[arg(short, long, global = true, help_heading = "Global")]
    pub quiet: bool,

    /// CI log dressing: groups or sections per stage, annotations, step outputs and summary.
    #[arg(long, global = true, value_enum, default_value_t = crate::report::CiFlag::Auto, env = "DECKHAND_CI", help_heading = "CI reporting")]
    pub ci: crate::report::CiFlag,

    /// Also write the result object (as on stdout with --output json) to this file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "DECKHAND_REPORT",
        help_heading = "CI reporting"
    )]
    pub report: Option<PathBuf>,

    /// Also write the result as DECKHAND_*=value lines (GitLab's artifacts:reports:dotenv).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "DECKHAND_DOTENV",
        help_heading = "CI reporting"
    )]
    pub dotenv: Option<PathBuf>,

    /// Also mask the values of variables and build args with this name (repeatable, or
    /// comma-separated); one word (e.g. HMAC) also matches as part of a name (APP_HMAC).
    #[arg(
        long = "secret-name",
        value_name = "NAME",
        global = true,
        env = "DECKHAND_SECRET_NAMES",
        value_delimiter = ',',
        help_heading = "Global"
    )]
    pub secret_names: Vec<String>,

    #[command(flatten)]
    pub role: RoleArgs,
}

/// `--role-to-assume` and its companions: AWS credentials from the CI's OIDC token.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "AWS credentials")]
pub struct RoleArgs {
    /// IAM role to assume with the CI's OIDC token (GitHub Actions' ID token, or the variable
    /// --web-identity-token-env names) instead of the AWS configuration chain's credentials.
    #[arg(
        long,
        global = true,
        value_name = "ARN",
        env = "DECKHAND_ROLE_TO_ASSUME"
    )]
    pub role_to_assume: Option<String>,

    /// Session name of the assumed role, as CloudTrail shows it [default: deckhand-<CI run or
    /// job id>].
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "DECKHAND_ROLE_SESSION_NAME"
    )]
    pub role_session_name: Option<String>,

    /// How long the role's credentials last, 15m to 12h, within the role's maximum session
    /// duration (they are assumed again before they expire) [default: 1h].
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, env = "DECKHAND_ROLE_DURATION")]
    pub role_duration: Option<std::time::Duration>,

    /// Audience of the GitHub Actions OIDC token [default: sts.amazonaws.com].
    #[arg(long, global = true, env = "DECKHAND_AUDIENCE")]
    pub audience: Option<String>,

    /// Variable that holds the OIDC token, e.g. one of GitLab's `id_tokens:`.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "DECKHAND_WEB_IDENTITY_TOKEN_ENV"
    )]
    pub web_identity_token_env: Option<String>,
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Push(_) => "push",
            Command::Deploy(_) => "deploy",
            Command::Rollback(_) => "rollback",
            Command::Status(_) => "status",
            Command::Continue(_) => "continue",
            Command::Run(_) => "run",
            Command::Init(_) => "init",
            Command::Sandbox(_) => "sandbox",
        }
    }
}

pub use crate::report::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image, tag it with the git SHA and push it to ECR.
    Push(PushArgs),
    /// Register a task definition revision with the image, update the service, watch it, roll back on failure.
    Deploy(Box<DeployArgs>),
    /// Roll a service back to its last good revision (or --to one), watched like a deploy.
    Rollback(RollbackArgs),
    /// Show a service's deployments, task counts, recent events and the image it runs.
    Status(StatusArgs),
    /// Go on with a service deployment paused at a PAUSE lifecycle hook, or a CodeDeploy deployment waiting to re-route traffic (or roll it back).
    Continue(ContinueArgs),
    /// Run a one-off task (beside a service, or of a task definition) and follow it to its end.
    Run(RunArgs),
    /// Write deckhand.toml and the task definition file from a live service, to deploy it with deckhand.
    Init(InitArgs),
    /// Local ECS on the Docker engine, for rehearsing deploys and rollbacks with real containers.
    Sandbox(SandboxArgs),
}

/// `deckhand deploy`: a new image to an ECS service, watched to a verdict.
#[derive(Debug, Args, Clone)]
#[command(group(clap::ArgGroup::new("source").args(["image", "repository"])))]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: ServiceArgs,

    /// Image to deploy, e.g. the `pinned` reference `deckhand push` printed. Without it,
    /// deckhand builds and pushes first (--repository and the other push flags).
    #[arg(long, env = "DECKHAND_IMAGE", help_heading = "Image and build")]
    pub image: Option<String>,

    /// ECR repository to build and push to before deploying (instead of --image).
    #[arg(long, env = "DECKHAND_REPOSITORY", help_heading = "Image and build")]
    pub repository: Option<String>,

    #[command(flatten)]
    pub build: BuildArgs,

    /// Container(s) to give the new image (default: those whose image is from the same repository).
    #[arg(
        long = "container",
        env = "DECKHAND_CONTAINER",
        value_delimiter = '\n',
        help_heading = "Target"
    )]
    pub containers: Vec<String>,

    /// Task definition JSON (RegisterTaskDefinition input or DescribeTaskDefinition output);
    /// default: the service's current one.
    #[arg(
        long,
        value_name = "FILE",
        env = "DECKHAND_TASK_DEFINITION",
        help_heading = "Task definition"
    )]
    pub task_definition: Option<PathBuf>,

    /// Take a --task-definition file with field names deckhand's ECS model does not know (an ECS
    /// feature newer than deckhand): warn and register them as written, instead of exit 2.
    #[arg(
        long,
        env = "DECKHAND_ALLOW_UNKNOWN_FIELDS",
        help_heading = "Task definition"
    )]
    pub allow_unknown_fields: bool,

    #[command(flatten)]
    pub render: RenderArgs,

    #[command(flatten)]
    pub watch: WatchArgs,

    /// Roll back to the last good revision when the deploy fails [default: auto].
    #[arg(
        long,
        value_enum,
        env = "DECKHAND_ROLLBACK",
        help_heading = "Watch and rollback"
    )]
    pub rollback: Option<RollbackMode>,

    /// Register and update, then exit without watching.
    #[arg(long, env = "DECKHAND_NO_WAIT", help_heading = "Watch and rollback")]
    pub no_wait: bool,

    /// Print the task-definition change (secrets masked) and change nothing. Without --image,
    /// nothing is built or pushed either: the image is named by the tag it would get.
    #[arg(long, env = "DECKHAND_DRY_RUN", help_heading = "Watch and rollback")]
    pub dry_run: bool,

    /// A one-off command to run with the new image before any service changes (e.g.
    /// `bin/rails db:migrate`); unless it exits 0 the deploy stops with nothing changed.
    #[arg(
        long = "pre-deploy",
        value_name = "COMMAND",
        env = "DECKHAND_PRE_DEPLOY",
        help_heading = "Pre-deploy"
    )]
    pub pre_deploy_command: Option<String>,

    /// Task definition family that runs --pre-deploy (default: the first service's).
    #[arg(
        long,
        value_name = "FAMILY",
        env = "DECKHAND_PRE_DEPLOY_FAMILY",
        help_heading = "Pre-deploy"
    )]
    pub pre_deploy_family: Option<String>,

    /// Container that runs --pre-deploy (default: the first that gets the new image).
    #[arg(
        long,
        value_name = "NAME",
        env = "DECKHAND_PRE_DEPLOY_CONTAINER",
        help_heading = "Pre-deploy"
    )]
    pub pre_deploy_container: Option<String>,

    /// Settings file (default: deckhand.toml in the working directory, if there is one); the
    /// command line and DECKHAND_* variables override it.
    #[arg(
        long,
        value_name = "PATH",
        env = "DECKHAND_CONFIG",
        help_heading = "Global"
    )]
    pub config: Option<PathBuf>,

    /// After a verified deploy, deregister older revisions of the family beyond the newest N
    /// (never the live revision or the rollback target).
    #[arg(long, value_name = "N", env = "DECKHAND_KEEP_REVISIONS", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Watch and rollback")]
    pub keep_revisions: Option<u32>,

    /// How long to wait for a deployment someone else started to finish before changing
    /// anything; after that, stop with exit 1 (0: do not wait) [default: 5m].
    #[arg(long, value_parser = parse_duration, env = "DECKHAND_WAIT_FOR_OTHERS", help_heading = "Watch and rollback")]
    pub wait_for_others: Option<std::time::Duration>,

    /// Deploy even while another deployment is in progress (e.g. a bad revision that never
    /// finishes), replacing it instead of waiting; the log says whose deployment is replaced.
    #[arg(long, env = "DECKHAND_TAKE_OVER", help_heading = "Watch and rollback")]
    pub take_over: bool,

    /// `stable` (the deployment's end), an ECS lifecycle stage (e.g. BAKE_TIME,
    /// PRODUCTION_TRAFFIC_SHIFT) or, for a CODE_DEPLOY service, a CodeDeploy lifecycle event
    /// (e.g. AfterAllowTestTraffic): exit 0 once the deployment reaches it (the event has
    /// succeeded), unfinished [default: stable].
    #[arg(
        long,
        value_name = "STAGE",
        env = "DECKHAND_WAIT_UNTIL",
        help_heading = "Watch and rollback"
    )]
    pub wait_until: Option<String>,

    #[command(flatten)]
    pub codedeploy: CodeDeployArgs,
}

/// The help heading of the CodeDeploy flags.
pub const CODEDEPLOY_HEADING: &str = "CodeDeploy (CODE_DEPLOY services)";

/// Which CodeDeploy application and deployment group deploy a service whose deployment
/// controller is CODE_DEPLOY (deploy, rollback, continue); ignored for other services.
#[derive(Debug, Args, Clone, Default)]
pub struct CodeDeployGroupArgs {
    /// CodeDeploy application of a CODE_DEPLOY service (default: found from the service, by
    /// the deployment group that names it). Only for services whose deployment controller is
    /// CODE_DEPLOY.
    #[arg(
        long,
        value_name = "NAME",
        env = "DECKHAND_CODEDEPLOY_APPLICATION",
        help_heading = CODEDEPLOY_HEADING
    )]
    pub codedeploy_application: Option<String>,

    /// CodeDeploy deployment group of a CODE_DEPLOY service (default: the one whose ECS
    /// service is this cluster's service). Only for services whose deployment controller is
    /// CODE_DEPLOY.
    #[arg(
        long,
        value_name = "NAME",
        env = "DECKHAND_CODEDEPLOY_DEPLOYMENT_GROUP",
        help_heading = CODEDEPLOY_HEADING
    )]
    pub codedeploy_deployment_group: Option<String>,
}

/// How `deckhand deploy` deploys a CODE_DEPLOY service: its application and group, and the
/// AppSpec's hooks or the AppSpec itself (repeatable flags read their variable as
/// newline-separated values).
#[derive(Debug, Args, Clone, Default)]
pub struct CodeDeployArgs {
    #[command(flatten)]
    pub group: CodeDeployGroupArgs,

    /// Lambda function CodeDeploy runs at a lifecycle event of a CODE_DEPLOY service's
    /// deployment (repeatable): EVENT is BeforeInstall, AfterInstall, AfterAllowTestTraffic,
    /// BeforeAllowTraffic or AfterAllowTraffic; FUNCTION a function name or ARN.
    #[arg(
        long = "codedeploy-hook",
        value_name = "EVENT=FUNCTION",
        env = "DECKHAND_CODEDEPLOY_HOOK",
        value_delimiter = '\n',
        help_heading = CODEDEPLOY_HEADING
    )]
    pub hooks: Vec<String>,

    /// AppSpec file (JSON or YAML) for a CODE_DEPLOY service's deployment instead of the one
    /// deckhand builds from the service; deckhand only sets its TaskDefinition (not with
    /// --codedeploy-hook: the file names its own hooks).
    #[arg(
        long,
        value_name = "FILE",
        env = "DECKHAND_APPSPEC",
        help_heading = CODEDEPLOY_HEADING
    )]
    pub appspec: Option<PathBuf>,
}

/// Which service(s).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Target")]
pub struct ServiceArgs {
    /// ECS cluster name or ARN.
    #[arg(long, env = "DECKHAND_CLUSTER")]
    pub cluster: Option<String>,

    /// ECS service name (deploy: repeatable, in the order their updates start).
    #[arg(long = "service", env = "DECKHAND_SERVICE", value_delimiter = '\n')]
    pub services: Vec<String>,
}

/// What a deploy changes in the new revision besides the image (repeatable flags read their
/// variable as newline-separated values). Without `CONTAINER:`, a setting goes to every
/// container that gets the new image.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Task definition")]
pub struct RenderArgs {
    /// Environment variable for the new revision, replacing one of the same name (repeatable).
    #[arg(
        long = "env",
        value_name = "[CONTAINER:]KEY=VALUE",
        env = "DECKHAND_ENV",
        value_delimiter = '\n'
    )]
    pub env: Vec<String>,

    /// Secret environment variable resolved by ECS at start: a Secrets Manager or SSM
    /// parameter ARN, or an SSM parameter name (repeatable).
    #[arg(
        long = "secret-env",
        value_name = "[CONTAINER:]KEY=ARN",
        env = "DECKHAND_SECRET_ENV",
        value_delimiter = '\n'
    )]
    pub secret_env: Vec<String>,

    /// Environment file in S3, e.g. arn:aws:s3:::bucket/app.env (repeatable; added once).
    #[arg(
        long = "env-file",
        value_name = "[CONTAINER:]S3_ARN",
        env = "DECKHAND_ENV_FILE",
        value_delimiter = '\n'
    )]
    pub env_files: Vec<String>,

    /// Docker label, replacing one of the same name (repeatable).
    #[arg(
        long = "label",
        value_name = "[CONTAINER:]KEY=VALUE",
        env = "DECKHAND_LABEL",
        value_delimiter = '\n'
    )]
    pub labels: Vec<String>,

    /// Container command, split as a shell would; `CONTAINER:` is needed when several
    /// containers get the new image (repeatable, one per container).
    #[arg(
        long = "command",
        value_name = "[CONTAINER:]COMMAND",
        env = "DECKHAND_COMMAND",
        value_delimiter = '\n'
    )]
    pub command: Vec<String>,

    /// Container entry point, as --command (repeatable, one per container).
    #[arg(
        long = "entry-point",
        value_name = "[CONTAINER:]COMMAND",
        env = "DECKHAND_ENTRY_POINT",
        value_delimiter = '\n'
    )]
    pub entry_point: Vec<String>,

    /// IAM role the task's containers run as (taskRoleArn), e.g. arn:aws:iam::123456789012:role/web.
    #[arg(long, value_name = "ROLE_ARN", env = "DECKHAND_TASK_ROLE")]
    pub task_role: Option<String>,

    /// IAM role ECS pulls images, reads secrets and writes logs with (executionRoleArn).
    #[arg(long, value_name = "ROLE_ARN", env = "DECKHAND_EXECUTION_ROLE")]
    pub execution_role: Option<String>,

    /// Task CPU: units (1024) or vCPUs ("1 vCPU").
    #[arg(long, value_name = "CPU", env = "DECKHAND_TASK_CPU")]
    pub cpu: Option<String>,

    /// Task memory: MiB (2048) or GB ("2 GB").
    #[arg(long, value_name = "MEMORY", env = "DECKHAND_TASK_MEMORY")]
    pub memory: Option<String>,

    /// awslogs-group of the containers that get the new image (one without a log
    /// configuration gets the awslogs driver in the deploy's region).
    #[arg(long, value_name = "GROUP", env = "DECKHAND_LOG_GROUP")]
    pub log_group: Option<String>,

    /// awslogs-stream-prefix of the containers that get the new image.
    #[arg(long, value_name = "PREFIX", env = "DECKHAND_LOG_STREAM_PREFIX")]
    pub log_stream_prefix: Option<String>,
}

/// How a deployment (or a rollback) is watched.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Watch and rollback")]
pub struct WatchArgs {
    /// How long to wait for the deployment (and again for a rollback), at least 1s, e.g. 15m
    /// [default: 10m].
    #[arg(long, value_parser = parse_duration, env = "DECKHAND_TIMEOUT")]
    pub timeout: Option<std::time::Duration>,

    /// How often to look at the service while watching [default: 3s].
    #[arg(long, value_parser = parse_poll, env = "DECKHAND_POLL")]
    pub poll: Option<std::time::Duration>,

    /// Failed tasks of the new revision that fail the deploy (before ECS's circuit breaker, which
    /// needs 3), at least 1 [default: 2].
    #[arg(long, env = "DECKHAND_MAX_FAILED_TASKS")]
    pub max_failed_tasks: Option<usize>,

    /// Last log lines shown of each essential container of a failed task (CloudWatch Logs,
    /// awslogs driver); 0 turns it off [default: 20].
    #[arg(long, env = "DECKHAND_LOG_LINES")]
    pub log_lines: Option<usize>,
}

/// `deckhand rollback`: back to the last good revision, or to the one asked for.
#[derive(Debug, Args, Clone)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: ServiceArgs,

    /// Revision to go back to: a number in the service's family, `family:N`, or a task
    /// definition ARN (default: the last revision that completed a deployment before the current one).
    #[arg(
        long,
        value_name = "REVISION_OR_ARN",
        env = "DECKHAND_TO",
        help_heading = "Target"
    )]
    pub to: Option<String>,

    #[command(flatten)]
    pub watch: WatchArgs,

    /// Start the rollback and exit without watching.
    #[arg(long, env = "DECKHAND_NO_WAIT", help_heading = "Watch and rollback")]
    pub no_wait: bool,

    #[command(flatten)]
    pub codedeploy: CodeDeployGroupArgs,
}

/// `deckhand status`: what a service runs and how its deployments stand.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: ServiceArgs,

    /// How many recent service events to show.
    #[arg(long, default_value_t = 5, env = "DECKHAND_EVENTS", help_heading = None)]
    pub events: usize,
}

/// `deckhand continue`: a paused service deployment goes on, or back.
#[derive(Debug, Args, Clone)]
pub struct ContinueArgs {
    #[command(flatten)]
    pub target: ServiceArgs,

    /// Roll the paused deployment back to the previous service revision instead (CodeDeploy:
    /// stop the deployment with rollback).
    #[arg(long, help_heading = None)]
    pub rollback: bool,

    #[command(flatten)]
    pub codedeploy: CodeDeployGroupArgs,
}

/// `deckhand run`: a one-off task beside a service, followed to its end.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// ECS cluster name or ARN.
    #[arg(long, env = "DECKHAND_CLUSTER", help_heading = "Target")]
    pub cluster: Option<String>,

    /// ECS service whose network configuration and launch type the task gets, and (without
    /// --task-definition) whose current task definition it runs.
    #[arg(long, env = "DECKHAND_SERVICE", help_heading = "Target")]
    pub service: Option<String>,

    /// Task definition to run: FAMILY (its newest revision), FAMILY:REVISION or an ARN; with
    /// --service, run beside that service.
    #[arg(
        long,
        value_name = "FAMILY[:REVISION]",
        env = "DECKHAND_RUN_TASK_DEFINITION",
        help_heading = "Target"
    )]
    pub task_definition: Option<String>,

    /// Container(s) that get --image (default: those whose image is from the same repository,
    /// else the only one); the first also gets --command and --env (default: the first
    /// essential container).
    #[arg(
        long = "container",
        value_name = "NAME",
        env = "DECKHAND_CONTAINER",
        value_delimiter = '\n',
        help_heading = "Target"
    )]
    pub containers: Vec<String>,

    /// Image to run instead of the task definition's: a revision tagged `deckhand:one-off`
    /// is registered for this task (never a rollback target) and deregistered after it.
    #[arg(long, env = "DECKHAND_IMAGE", help_heading = "Task")]
    pub image: Option<String>,

    /// Command for the container, split as a shell would (e.g. "bin/rails db:migrate");
    /// default: the image's or task definition's own.
    #[arg(
        long,
        value_name = "COMMAND",
        env = "DECKHAND_RUN_COMMAND",
        help_heading = "Task"
    )]
    pub command: Option<String>,

    /// Environment variable for the task, KEY=VALUE for the container that runs the command,
    /// CONTAINER:KEY=VALUE for another (repeatable); values of secret-looking names are masked.
    #[arg(
        long = "env",
        value_name = "[CONTAINER:]KEY=VALUE",
        env = "DECKHAND_RUN_ENV",
        value_delimiter = '\n',
        help_heading = "Task"
    )]
    pub env: Vec<String>,

    /// How long the task may run before deckhand stops it (exit 1), at least 1s [default: 10m].
    #[arg(long, value_parser = parse_duration, env = "DECKHAND_RUN_TIMEOUT", help_heading = "Watch")]
    pub timeout: Option<std::time::Duration>,

    /// How often to look at the task and read its log [default: 2s].
    #[arg(long, value_parser = parse_poll, env = "DECKHAND_POLL", help_heading = "Watch")]
    pub poll: Option<std::time::Duration>,
}

/// `deckhand init`: a project's deckhand.toml and task definition file, from a live service.
#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    #[command(flatten)]
    pub target: ServiceArgs,

    /// Directory to write deckhand.toml and taskdef.json in (created if missing) [default: .].
    #[arg(
        long,
        value_name = "DIR",
        env = "DECKHAND_INIT_DIR",
        help_heading = "Files"
    )]
    pub dir: Option<PathBuf>,

    // Not DECKHAND_FORCE: that one rebuilds images in CI, and must not also overwrite files.
    /// Overwrite deckhand.toml and taskdef.json when they are there.
    #[arg(long, env = "DECKHAND_INIT_FORCE", help_heading = "Files")]
    pub force: bool,
}

/// What a failed deploy does (`--rollback`, `rollback` in deckhand.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RollbackMode {
    Auto,
    Never,
}

/// `deckhand sandbox`: serve a local ECS API on loopback and run tasks as containers.
#[derive(Debug, Args, Clone)]
pub struct SandboxArgs {
    /// Loopback address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:4566", env = "DECKHAND_LISTEN")]
    pub listen: std::net::SocketAddr,

    /// How often tasks are observed and services moved along, e.g. 250ms.
    #[arg(long, default_value = "250ms", value_parser = parse_duration, env = "DECKHAND_TICK")]
    pub tick: std::time::Duration,

    /// Factor for health-check timings (0.1 runs them ten times faster than declared).
    #[arg(long, default_value_t = 0.1, env = "DECKHAND_TIME_SCALE")]
    pub time_scale: f64,

    /// How long a task without a health check must stay running to count as healthy.
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "DECKHAND_STABLE_AFTER")]
    pub stable_after: std::time::Duration,

    /// Report a deployment's tasks as running only once its rollout is over: until then
    /// DescribeServices counts them as pending (ECS's counts are eventually consistent).
    #[arg(long, env = "DECKHAND_LATE_RUNNING_COUNT")]
    pub late_running_count: bool,

    /// Answer as an ECS without the ServiceDeployments API (an older region or emulator):
    /// those operations are UnknownOperationException.
    #[arg(long, env = "DECKHAND_WITHOUT_SERVICE_DEPLOYMENTS")]
    pub without_service_deployments: bool,

    /// Memory (MiB) the sandbox's one container instance offers; larger tasks cannot be placed.
    #[arg(long, default_value_t = 8192, env = "DECKHAND_MEMORY")]
    pub memory: u64,

    /// CPU units the sandbox's container instance offers.
    #[arg(long, default_value_t = 8192, env = "DECKHAND_CPU")]
    pub cpu: u64,

    /// Delay added to every API answer (fault injection), e.g. 200ms.
    #[arg(long, default_value = "0ms", value_parser = parse_duration, env = "DECKHAND_LATENCY")]
    pub latency: std::time::Duration,

    /// Share of API calls answered with ThrottlingException (0 to 1).
    #[arg(long, default_value_t = 0.0, env = "DECKHAND_THROTTLE_RATE")]
    pub throttle_rate: f64,

    /// Share of API calls answered with HTTP 500 (0 to 1).
    #[arg(long, default_value_t = 0.0, env = "DECKHAND_ERROR_RATE")]
    pub error_rate: f64,

    /// Share of API calls whose connection is dropped with no answer (0 to 1).
    #[arg(long, default_value_t = 0.0, env = "DECKHAND_DROP_RATE")]
    pub drop_rate: f64,

    /// Share of API calls applied whose answer is then lost: the connection is closed with no
    /// answer after the change is made (0 to 1).
    #[arg(long, default_value_t = 0.0, env = "DECKHAND_LOST_ANSWER_RATE")]
    pub lost_answer_rate: f64,

    /// Operation the faults apply to, e.g. UpdateService (repeatable; default: every API call).
    #[arg(
        long = "fault-operation",
        value_name = "OPERATION",
        env = "DECKHAND_FAULT_OPERATION",
        value_delimiter = '\n'
    )]
    pub fault_operations: Vec<String>,

    /// Directory for the registry's blobs (default: a temporary one, removed on exit).
    #[arg(long, value_name = "DIR", env = "DECKHAND_DATA")]
    pub data: Option<PathBuf>,

    /// Account id the sandbox reports.
    #[arg(long, default_value = "123456789012", env = "DECKHAND_ACCOUNT")]
    pub account: String,
}

/// Parses `250ms`, `5s`, `10m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; use e.g. 250ms, 30s, 10m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?} has an unknown unit; use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{text:?} is longer than the most deckhand waits (7 days)"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// The longest wait any flag accepts.
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A polling interval: a duration of at least 100ms, so a typo cannot hammer the ECS API.
pub fn parse_poll(text: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    if d < std::time::Duration::from_millis(100) {
        return Err(format!("{text:?} polls too often; use 100ms or more"));
    }
    Ok(d)
}

/// `deckhand push`: from a source tree to an image in ECR tagged with the commit SHA.
///
/// Repeatable flags read their environment variable as newline-separated values.
#[derive(Debug, Args, Clone)]
pub struct PushArgs {
    /// ECR repository name, e.g. `team/web`.
    #[arg(long, env = "DECKHAND_REPOSITORY", help_heading = "Image and build")]
    pub repository: String,

    #[command(flatten)]
    pub build: BuildArgs,
}

/// How the image is built, tagged and pushed (`push`, and `deploy` without --image).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Image and build")]
pub struct BuildArgs {
    /// Build context directory [default: .].
    #[arg(long, env = "DECKHAND_CONTEXT")]
    pub context: Option<PathBuf>,

    /// Dockerfile, relative to the current directory (default: Dockerfile in the context).
    #[arg(long, short = 'f', env = "DECKHAND_FILE")]
    pub file: Option<PathBuf>,

    /// Build argument KEY=VALUE (repeatable).
    #[arg(
        long = "build-arg",
        value_name = "KEY=VALUE",
        env = "DECKHAND_BUILD_ARG",
        value_delimiter = '\n'
    )]
    pub build_args: Vec<String>,

    /// Build stage to stop at.
    #[arg(long, env = "DECKHAND_TARGET")]
    pub target: Option<String>,

    /// Extra tag pushed besides the SHA (repeatable), e.g. `latest`.
    #[arg(
        long = "tag",
        value_name = "TAG",
        env = "DECKHAND_TAG",
        value_delimiter = '\n'
    )]
    pub tags: Vec<String>,

    /// Commit SHA to tag with (default: GITHUB_SHA, CI_COMMIT_SHA, GIT_COMMIT, then `git rev-parse HEAD`).
    #[arg(long, env = "DECKHAND_SHA")]
    pub sha: Option<String>,

    /// Registry host[:port] to push to instead of ECR's endpoint (proxies, local registries).
    #[arg(long, value_name = "HOST[:PORT]", env = "DECKHAND_REGISTRY")]
    pub registry: Option<String>,

    /// Create the ECR repository if it does not exist.
    #[arg(long, env = "DECKHAND_CREATE_REPOSITORY")]
    pub create_repository: bool,

    /// Build and push even if the SHA tag already exists.
    #[arg(long, env = "DECKHAND_FORCE")]
    pub force: bool,

    /// Allow uncommitted changes; the image is tagged `<sha>-dirty`.
    #[arg(long, env = "DECKHAND_ALLOW_DIRTY")]
    pub allow_dirty: bool,

    /// Image builder: auto (BuildKit when the engine has it), buildkit, or legacy (the engine's
    /// classic builder) [default: auto].
    #[arg(long, value_enum, env = "DECKHAND_BUILDER")]
    pub builder: Option<crate::image::options::BuilderChoice>,

    /// Build secret for `RUN --mount=type=secret,id=NAME` (repeatable): from a file or an
    /// environment variable, never in the image or its history.
    #[arg(
        long = "secret",
        value_name = "id=NAME,src=FILE|env=VAR",
        env = "DECKHAND_SECRET",
        value_delimiter = '\n'
    )]
    pub secrets: Vec<String>,

    /// Platform to build for, e.g. linux/arm64 (default: the engine's).
    #[arg(long, value_name = "OS/ARCH", env = "DECKHAND_PLATFORM")]
    pub platform: Option<String>,

    /// Image whose layers may serve as build cache, e.g. the repository's `latest` (repeatable).
    #[arg(
        long = "cache-from",
        value_name = "REF",
        env = "DECKHAND_CACHE_FROM",
        value_delimiter = '\n'
    )]
    pub cache_from: Vec<String>,

    /// Build without any cache: no local layers, no registry cache import.
    #[arg(long, env = "DECKHAND_NO_CACHE")]
    pub no_cache: bool,

    /// Network for RUN steps: default (the engine's bridge), host, or none (default: none on an
    /// engine without a bridge network).
    #[arg(long, value_enum, env = "DECKHAND_BUILD_NETWORK")]
    pub build_network: Option<crate::image::options::BuildNetwork>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        use std::time::Duration;
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
        assert!(parse_duration("8000h").is_err());
        assert!(parse_poll("0").is_err());
        assert_eq!(parse_poll("100ms"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn deploy_help_groups_every_flag_under_a_heading() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        cli.build();
        let deploy = cli.find_subcommand("deploy").unwrap();
        let heading = |id: &str| {
            deploy
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("{id}"))
                .get_help_heading()
        };
        for (ids, want) in [
            (&["cluster", "services", "containers"][..], "Target"),
            (
                &[
                    "image",
                    "repository",
                    "context",
                    "file",
                    "build_args",
                    "target",
                    "tags",
                ][..],
                "Image and build",
            ),
            (
                &[
                    "sha",
                    "registry",
                    "create_repository",
                    "force",
                    "allow_dirty",
                ][..],
                "Image and build",
            ),
            (
                &[
                    "builder",
                    "secrets",
                    "platform",
                    "cache_from",
                    "no_cache",
                    "build_network",
                ][..],
                "Image and build",
            ),
            (
                &["task_definition", "allow_unknown_fields"][..],
                "Task definition",
            ),
            (
                &[
                    "env",
                    "secret_env",
                    "env_files",
                    "labels",
                    "command",
                    "entry_point",
                ][..],
                "Task definition",
            ),
            (
                &[
                    "task_role",
                    "execution_role",
                    "cpu",
                    "memory",
                    "log_group",
                    "log_stream_prefix",
                ][..],
                "Task definition",
            ),
            (
                &[
                    "timeout",
                    "poll",
                    "max_failed_tasks",
                    "rollback",
                    "no_wait",
                    "dry_run",
                ][..],
                "Watch and rollback",
            ),
            (
                &[
                    "keep_revisions",
                    "wait_for_others",
                    "take_over",
                    "wait_until",
                ][..],
                "Watch and rollback",
            ),
            (
                &[
                    "pre_deploy_command",
                    "pre_deploy_family",
                    "pre_deploy_container",
                ][..],
                "Pre-deploy",
            ),
            (
                &[
                    "codedeploy_application",
                    "codedeploy_deployment_group",
                    "hooks",
                    "appspec",
                ][..],
                CODEDEPLOY_HEADING,
            ),
            (&["ci", "report", "dotenv", "output"][..], "CI reporting"),
            (
                &[
                    "role_to_assume",
                    "role_session_name",
                    "role_duration",
                    "audience",
                    "web_identity_token_env",
                ][..],
                "AWS credentials",
            ),
            (
                &["region", "verbose", "quiet", "config", "secret_names"][..],
                "Global",
            ),
        ] {
            for id in ids {
                assert_eq!(heading(id), Some(want), "--{id}");
            }
        }
    }

    #[test]
    fn run_help_groups_every_flag_under_a_heading() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        cli.build();
        let run = cli.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) {
                continue;
            }
            let want = match id {
                "cluster" | "service" | "task_definition" | "containers" => "Target",
                "image" | "command" | "env" => "Task",
                "timeout" | "poll" => "Watch",
                _ => continue,
            };
            assert_eq!(arg.get_help_heading(), Some(want), "--{id}");
        }
        let parsed = Cli::try_parse_from([
            "deckhand",
            "run",
            "--cluster",
            "c",
            "--service",
            "web",
            "--env",
            "A=1",
            "--env",
            "app:B=2",
        ])
        .unwrap();
        let Command::Run(args) = parsed.command else {
            panic!("run expected")
        };
        assert_eq!(args.env, vec!["A=1", "app:B=2"]);
    }

    #[test]
    fn switches_and_lists_read_their_env_vars() {
        // Names unique to this test: the environment is shared by the test threads.
        std::env::set_var("DECKHAND_ALLOW_DIRTY", "true");
        std::env::set_var("DECKHAND_BUILD_ARG", "A=1\nB=2");
        let cli = Cli::try_parse_from(["deckhand", "push", "--repository", "web"]).unwrap();
        std::env::remove_var("DECKHAND_ALLOW_DIRTY");
        std::env::remove_var("DECKHAND_BUILD_ARG");
        let Command::Push(args) = cli.command else {
            panic!("push expected")
        };
        assert!(args.build.allow_dirty);
        assert!(!args.build.force);
        assert_eq!(args.build.build_args, vec!["A=1", "B=2"]);

        std::env::set_var("DECKHAND_SECRET", "id=a,env=A\nid=b,src=b.txt");
        std::env::set_var("DECKHAND_CACHE_FROM", "web:latest\nweb:main");
        std::env::set_var("DECKHAND_NO_CACHE", "true");
        std::env::set_var("DECKHAND_BUILDER", "buildkit");
        let cli = Cli::try_parse_from(["deckhand", "push", "--repository", "web"]).unwrap();
        for name in [
            "DECKHAND_SECRET",
            "DECKHAND_CACHE_FROM",
            "DECKHAND_NO_CACHE",
            "DECKHAND_BUILDER",
        ] {
            std::env::remove_var(name);
        }
        let Command::Push(args) = cli.command else {
            panic!("push expected")
        };
        assert_eq!(args.build.secrets, vec!["id=a,env=A", "id=b,src=b.txt"]);
        assert_eq!(args.build.cache_from, vec!["web:latest", "web:main"]);
        assert!(args.build.no_cache);
        assert_eq!(
            args.build.builder,
            Some(crate::image::options::BuilderChoice::BuildKit)
        );
    }
}
