//! Command-line surface: every flag, its `DECKHAND_*` environment variable, and validation of
//! the parsed values into the settings the rest of the program sees.

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
    #[arg(long, global = true, env = "DECKHAND_REGION")]
    pub region: Option<String>,

    /// How results are printed on stdout; logs always go to stderr.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, env = "DECKHAND_OUTPUT")]
    pub output: OutputFormat,

    /// More log detail (-v debug, -vv trace). Secrets are masked at every level.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log detail: warnings and errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image, tag it with the git SHA and push it to ECR.
    Push(PushArgs),
    /// Register a task definition revision with the image, update the service, watch it (not yet implemented).
    Deploy(Unimplemented),
    /// Roll a service back to its last good revision (not yet implemented).
    Rollback(Unimplemented),
    /// Show what a service is running (not yet implemented).
    Status(Unimplemented),
    /// Local ECS + ECR for rehearsal and tests (not yet implemented).
    Sandbox(Unimplemented),
}

/// Placeholder for subcommands whose issue has not landed; accepts any arguments.
#[derive(Debug, Args)]
pub struct Unimplemented {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

/// `deckhand push`: from a source tree to an image in ECR tagged with the commit SHA.
///
/// Repeatable flags read their environment variable as newline-separated values.
#[derive(Debug, Args, Clone)]
pub struct PushArgs {
    /// ECR repository name, e.g. `team/web`.
    #[arg(long, env = "DECKHAND_REPOSITORY")]
    pub repository: String,

    /// Build context directory.
    #[arg(long, default_value = ".", env = "DECKHAND_CONTEXT")]
    pub context: PathBuf,

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(args.allow_dirty);
        assert!(!args.force);
        assert_eq!(args.build_args, vec!["A=1", "B=2"]);
    }
}
