//! One module per subcommand; each turns validated settings into actions and a result.

pub mod deploy;
pub mod push;
pub mod rollback;
pub mod sandbox;
pub mod status;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line; `matches` tells which values the command line or the
/// environment gave (the settings file fills in the rest).
pub async fn run(
    mut cli: Cli,
    matches: &clap::ArgMatches,
    r: &crate::report::Reporter,
) -> Result<()> {
    match cli.command {
        Command::Push(args) => {
            let settings = push::Settings::from_args(&args.repository, &args.build, |k| {
                std::env::var(k).ok()
            })?;
            let outcome = push::run(r, &cli.global, &settings).await?;
            r.result(&outcome, &format!("{}\n{}", outcome.image, outcome.pinned));
            Ok(())
        }
        Command::Deploy(mut args) => {
            let sub = matches.subcommand_matches("deploy").unwrap_or(matches);
            settle_deploy_args(r, &mut args, &mut cli.global.region, sub)?;
            deploy::run(r, &cli.global, &args).await
        }
        Command::Rollback(args) => {
            args.target.check()?;
            rollback::run(r, &cli.global, &args).await
        }
        Command::Status(args) => {
            args.target.check()?;
            status::run(r, &cli.global, &args).await
        }
        Command::Sandbox(args) => sandbox::run(r, &cli.global, &args).await,
    }
}

/// Applies the settings file under the command line, then checks what a deploy needs.
fn settle_deploy_args(
    r: &crate::report::Reporter,
    args: &mut crate::cli::DeployArgs,
    region: &mut Option<String>,
    matches: &clap::ArgMatches,
) -> Result<()> {
    use clap::parser::ValueSource;
    let given = |id: &str| {
        matches!(
            matches
                .try_get_raw(id)
                .ok()
                .flatten()
                .and(matches.value_source(id)),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Some((path, file)) = crate::config::load(args.config.as_deref(), &cwd)? {
        r.step(format!("settings from {}", path.display()));
        crate::config::apply(&file, args, region, given)?;
    }
    if args.pre_deploy_command.is_none()
        && (args.pre_deploy_family.is_some() || args.pre_deploy_container.is_some())
    {
        return Err(crate::error::Error::usage(
            "--pre-deploy-family and --pre-deploy-container go with --pre-deploy COMMAND",
        ));
    }
    if let Some(command) = &args.pre_deploy_command {
        // The flag replaces the file's pre-deploy tasks; an empty family means the first
        // service's.
        args.pre_deploy = vec![crate::config::PreDeploy {
            family: args.pre_deploy_family.clone().unwrap_or_default(),
            command: crate::config::Command::Line(command.clone()),
            container: args.pre_deploy_container.clone(),
        }];
    }
    args.target.check()?;
    if args.image.is_none() && args.repository.is_none() {
        return Err(crate::error::Error::usage(
            "name the image: --image IMAGE, or --repository REPO to build and push one \
             (or `image` / `repository` in deckhand.toml)",
        ));
    }
    Ok(())
}
