//! The `kindling` command line: parses arguments and prints; the work is
//! in the `kindling` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, in one place: 0 success, 1 a command failed, 2 bad usage
/// (clap's own code for argument errors).
const EXIT_FAILED: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "kindling",
    version,
    about = "End-to-end tests of services on Kubernetes"
)]
struct Cli {
    /// The Cargo target directory whose suite state to use.
    #[arg(
        long,
        global = true,
        env = "CARGO_TARGET_DIR",
        default_value = "target"
    )]
    target_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show each suite's recorded setup: run, status, phases and times.
    Status,
    /// Forget a suite's recorded setup so its next run sets up again.
    Reset {
        /// The suite (its test target's name).
        suite: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("failed to read the suite state")]
    State(#[from] kindling::StateError),
    #[error("suite `{suite}` has no recorded setup in `{dir}`: known suites are {known}")]
    UnknownSuite {
        suite: String,
        dir: PathBuf,
        known: String,
    },
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::State(_) | CliError::UnknownSuite { .. } => ExitCode::from(EXIT_FAILED),
        }
    }
}

fn state_dir(cli: &Cli) -> PathBuf {
    std::env::var_os("KINDLING_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cli.target_dir.join("kindling/state"))
}

fn status(cli: &Cli) -> Result<(), CliError> {
    let dir = state_dir(cli);
    let setups = kindling::recorded_setups(&dir)?;
    if setups.is_empty() {
        println!("no suite has run yet (state directory `{}`)", dir.display());
    }
    for setup in setups {
        println!(
            "{}: {} (run {}, pid {}, started {})",
            setup.suite, setup.status, setup.run_id, setup.pid, setup.started_at
        );
        if let Some(from) = &setup.reused_from {
            println!("  reuses the environment of run {from}");
        }
        for (name, seconds, error) in &setup.phases {
            let state = if error.is_some() { "failed" } else { "ok" };
            println!("  {name:<24} {seconds:>8.2}s  {state}");
        }
        if let Some(error) = &setup.error {
            for line in error.lines() {
                println!("  | {line}");
            }
        }
    }
    Ok(())
}

fn reset(cli: &Cli, suite: &str) -> Result<(), CliError> {
    let dir = state_dir(cli);
    if kindling::forget_setup(&dir, suite)? {
        println!("forgot the setup of suite `{suite}`: its next run sets up again");
        return Ok(());
    }
    let known: Vec<String> = kindling::recorded_setups(&dir)?
        .into_iter()
        .map(|s| format!("`{}`", s.suite))
        .collect();
    Err(CliError::UnknownSuite {
        suite: suite.to_owned(),
        dir,
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Status => status(&cli),
        Command::Reset { suite } => reset(&cli, suite),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            if source.is_some() {
                eprintln!("\nCaused by:");
            }
            let mut index = 0;
            while let Some(cause) = source {
                eprintln!("  {index}: {cause}");
                index += 1;
                source = cause.source();
            }
            error.exit_code()
        }
    }
}
