//! One module per subcommand; each turns validated settings into actions and a result.

pub mod deploy;
pub mod push;
pub mod rollback;
pub mod sandbox;
pub mod status;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Push(args) => {
            let settings = push::Settings::from_args(&args.repository, &args.build, |k| {
                std::env::var(k).ok()
            })?;
            let outcome = push::run(&cli.global, &settings).await?;
            crate::output::print_push(cli.global.output, &outcome);
            Ok(())
        }
        Command::Deploy(args) => deploy::run(&cli.global, &args).await,
        Command::Rollback(args) => rollback::run(&cli.global, &args).await,
        Command::Status(args) => status::run(&cli.global, &args).await,
        Command::Sandbox(args) => sandbox::run(&cli.global, &args).await,
    }
}
