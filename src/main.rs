//! Entry point: parse, set up logging, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use deckhand::{cli::Cli, cmd, logging, redact};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", redact::redact(&e.message));
            ExitCode::from(e.exit.code())
        }
    }
}
