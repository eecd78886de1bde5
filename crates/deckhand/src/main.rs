//! Entry point: parse, set up logging, run, map the result to an exit code.

use std::process::ExitCode;

use deckhand::{cli::Cli, cmd, logging, redact, report};

fn main() -> ExitCode {
    // An empty DECKHAND_* variable counts as unset: CI systems (a GitHub Action's unset
    // inputs, for one) pass empty strings. Done first, while the process has one thread.
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_string_lossy().starts_with("DECKHAND_") {
            std::env::remove_var(name);
        }
    }
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let env = |k: &str| std::env::var(k).ok();
    report::init(
        report::detect(cli.global.ci, env),
        report::Sinks {
            report: cli.global.report.clone(),
            dotenv: cli.global.dotenv.clone(),
            github_output: env("GITHUB_OUTPUT")
                .filter(|p| !p.is_empty())
                .map(Into::into),
            github_summary: env("GITHUB_STEP_SUMMARY")
                .filter(|p| !p.is_empty())
                .map(Into::into),
            command: cli.command.name().to_string(),
        },
    );
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
    let outcome = runtime.block_on(cmd::run(cli));
    logging::finish();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = redact::redact(&e.message);
            eprintln!("{}", logging::line(tracing::Level::ERROR, &message));
            ExitCode::from(e.exit.code())
        }
    }
}
