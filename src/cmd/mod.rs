//! One module per subcommand; each turns validated settings into actions and a result.

pub mod deploy;
pub mod push;
pub mod sandbox;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Push(args) => {
            let settings = push::Settings::from_args(&args, |k| std::env::var(k).ok())?;
            let outcome = push::run(&cli.global, &settings).await?;
            crate::output::print_push(cli.global.output, &outcome);
            Ok(())
        }
        Command::Deploy(args) => deploy::run(&cli.global, &args).await,
        Command::Rollback(_) => Err(not_yet("rollback")),
        Command::Status(_) => Err(not_yet("status")),
        Command::Sandbox(args) => sandbox::run(&cli.global, &args).await,
    }
}

fn not_yet(name: &str) -> Error {
    Error::usage(format!(
        "`deckhand {name}` is not implemented yet in this version; `deckhand push` is."
    ))
}
