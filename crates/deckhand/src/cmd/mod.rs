//! One module per subcommand; each turns validated settings into a pipeline call and its
//! outcome into the result and exit code. Commands do not import each other.

pub mod deploy;
pub mod init;
pub mod push;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod sandbox;
pub mod status;

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::settings::{
    DeploySettings, PushSettings, RoleSettings, RollbackSettings, StatusSettings,
};

/// Runs the parsed command line: its settings are resolved (and checked) first, then the command.
pub async fn run(cli: Cli, r: &crate::report::Reporter) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let region = cli.global.region.as_deref();
    let secret_names = |file| crate::settings::secret_names(&cli.global.secret_names, file);
    crate::secrets::set_extra_names(secret_names(None));
    // Each command's settings are checked before the role is assumed: bad input costs no call.
    let role = &cli.global.role;
    let assume = |file, region| async move {
        let role = RoleSettings::resolve(role, file, env)?;
        crate::aws::role::take_on(r, role, region).await
    };
    match cli.command {
        Command::Push(args) => {
            let settings = PushSettings::resolve(&args.repository, &args.build, env)?;
            assume(None, region).await?;
            push::run(r, region, &settings).await
        }
        Command::Deploy(args) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let file = crate::config::load(args.config.as_deref(), &cwd)?;
            crate::secrets::set_extra_names(secret_names(file.as_ref().map(|(_, f)| f)));
            let settings = DeploySettings::resolve(
                &args,
                cli.global.region.as_deref(),
                file.as_ref().map(|(path, f)| (path.as_path(), f)),
                env,
            )?;
            if let Some(path) = &settings.config_path {
                r.step(format!("settings from {}", path.display()));
            }
            // deckhand.toml may name the role.
            assume(file.as_ref().map(|(_, f)| f), settings.region.as_deref()).await?;
            deploy::run(r, &settings).await
        }
        Command::Rollback(args) => {
            let settings = RollbackSettings::resolve(&args)?;
            assume(None, region).await?;
            rollback::run(r, region, &settings).await
        }
        Command::Status(args) => {
            let settings = StatusSettings::resolve(&args)?;
            assume(None, region).await?;
            status::run(r, region, &settings).await
        }
        Command::Continue(args) => {
            let settings = crate::settings::ContinueSettings::resolve(&args)?;
            assume(None, region).await?;
            resume::run(r, region, &settings).await
        }
        Command::Run(args) => {
            let settings = crate::settings::RunSettings::resolve(&args)?;
            assume(None, region).await?;
            run::run(r, region, &settings).await
        }
        Command::Init(args) => {
            let settings = crate::settings::InitSettings::resolve(&args)?;
            assume(None, region).await?;
            init::run(r, region, &settings).await
        }
        Command::Sandbox(args) => sandbox::run(r, &cli.global, &args).await,
    }
}
