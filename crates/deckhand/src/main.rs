//! Entry point: parse, set up reporting, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use deckhand::cli::Cli;
use deckhand::report::{self, CiFlag, OutputFormat, Reporter};
use deckhand::{cmd, logging};

fn main() -> ExitCode {
    // An empty DECKHAND_* variable counts as unset: CI systems (a GitHub Action's unset
    // inputs, for one) pass empty strings. Done first, while the process has one thread.
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_string_lossy().starts_with("DECKHAND_") {
            std::env::remove_var(name);
        }
    }
    let matches = match <Cli as clap::CommandFactory>::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let g = &cli.global;
    let reporter = reporter(
        g.ci,
        g.output,
        g.quiet,
        g.report.clone(),
        g.dotenv.clone(),
        cli.command.name(),
    );
    logging::init(g.verbose, g.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            reporter.fail(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(cmd::run(cli, &reporter));
    match outcome {
        Ok(()) => {
            reporter.finish();
            ExitCode::SUCCESS
        }
        Err(e) => {
            reporter.fail(&e.message);
            ExitCode::from(e.exit.code())
        }
    }
}

fn reporter(
    ci: CiFlag,
    output: OutputFormat,
    quiet: bool,
    report: Option<std::path::PathBuf>,
    dotenv: Option<std::path::PathBuf>,
    command: &str,
) -> Reporter {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Reporter::new(report::Options {
        mode: report::detect(ci, env),
        output,
        quiet,
        ansi: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        sinks: report::Sinks {
            report,
            dotenv,
            github_output: env("GITHUB_OUTPUT").map(Into::into),
            github_summary: env("GITHUB_STEP_SUMMARY").map(Into::into),
            command: command.to_string(),
        },
    })
}

/// A command line clap refused (exit 2): clap says why, and the result files still say
/// `failed`, for the CI step that reads them. `--help` and `--version` are not failures.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // What could be read of the command line, despite the error: where results go.
        let lenient = <Cli as clap::CommandFactory>::command()
            .ignore_errors(true)
            .try_get_matches()
            .ok();
        let get = |id: &str| {
            lenient.as_ref().and_then(|m| {
                m.try_get_one::<std::path::PathBuf>(id)
                    .ok()
                    .flatten()
                    .cloned()
            })
        };
        let ci = lenient
            .as_ref()
            .and_then(|m| m.try_get_one::<CiFlag>("ci").ok().flatten().copied())
            .unwrap_or(CiFlag::Auto);
        let command = lenient
            .as_ref()
            .and_then(|m| m.subcommand_name().map(str::to_string))
            .unwrap_or_default();
        let reason = e
            .kind()
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "the command line is not valid".into());
        let first = e
            .to_string()
            .lines()
            .next()
            .map(|l| l.trim_start_matches("error: ").to_string())
            .filter(|l| !l.is_empty())
            .unwrap_or(reason);
        let reporter = reporter(
            ci,
            OutputFormat::Json,
            true,
            get("report"),
            get("dotenv"),
            &command,
        );
        reporter.record_failure(&first);
    }
    e.exit()
}
