//! `datafusion-bigquery`: a DataFusion SQL command line whose `STORED AS BIGQUERY` tables load
//! query results into BigQuery atomically, with an embedded Storage Write server for local use.

#![warn(missing_docs)]

mod args;
mod checkpoints;
mod emulator;
mod output;
mod progress;
mod repl;
mod report;
mod run;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use datafusion_bigquery::server::Retention;
use datafusion_bigquery::{EmbeddedServer, LoadProgress};

use args::{Cli, Command};
use report::Failure;

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage_error(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_logging();
    let sources = args::sql_sources(&cli, &matches);
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(dispatch(cli, sources)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}

/// Logs `tracing` events and RPC spans to stderr when `RUST_LOG` is set (e.g.
/// `RUST_LOG=datafusion_bigquery=debug`); logs nothing otherwise.
fn init_logging() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
}

/// Prints a clap error (or help/version) and returns its exit code: 0 for help and version,
/// 2 for usage errors.
fn usage_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs the subcommand, or the SQL sources.
async fn dispatch(mut cli: Cli, sources: Vec<args::SqlSource>) -> Result<(), Failure> {
    match cli.subcommand.take() {
        Some(Command::Emulator(emulator_args)) => emulator::serve(emulator_args).await,
        Some(Command::Checkpoints(command)) => checkpoints::run(command).await,
        #[cfg(feature = "ballista")]
        Some(Command::Ballista(command)) => run_ballista(command).await,
        None => run_sql(&cli, &sources).await,
    }
}

/// Runs a Ballista process until it ends.
#[cfg(feature = "ballista")]
async fn run_ballista(command: args::BallistaCommand) -> Result<(), Failure> {
    use datafusion_bigquery::ballista::{ExecutorSettings, SchedulerSettings, run_executor, run_scheduler};
    let outcome = match command {
        args::BallistaCommand::Scheduler {
            bind,
            executor_timeout_secs,
            task_max_failures,
        } => {
            run_scheduler(SchedulerSettings {
                bind,
                executor_timeout_seconds: executor_timeout_secs,
                task_max_failures,
            })
            .await
        }
        args::BallistaCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            concurrent_tasks,
            heartbeat_secs,
        } => {
            run_executor(ExecutorSettings {
                scheduler,
                bind_host: bind.ip().to_string(),
                port: bind.port(),
                grpc_port,
                concurrent_tasks,
                heartbeat_seconds: heartbeat_secs,
            })
            .await
        }
    };
    outcome.map_err(|e| Failure::new(e.to_string()))
}

/// Starts the emulator if asked, builds the session and runs the SQL.
async fn run_sql(cli: &Cli, sources: &[args::SqlSource]) -> Result<(), Failure> {
    if !cli.emulator_tables.is_empty() && !cli.emulator {
        return Err(Failure::new("--emulator-table needs --emulator"));
    }
    let server = if cli.emulator {
        let tables = emulator::parse_table_specs("--emulator-table", &cli.emulator_tables)?;
        let builder = EmbeddedServer::builder().retention(Retention::Keep);
        Some(emulator::start(builder, &Default::default(), tables).await?)
    } else {
        None
    };
    let defaults = run::table_defaults(cli, server.as_ref().map(|s| (s.endpoint(), s.rest_endpoint())))?;
    let progress = LoadProgress::new();
    let reporting = run::Reporting::new(cli, progress.clone());
    let ctx = run::session(cli, defaults, progress).await?;
    // A terminal on stdin and nothing else to run: the interactive prompt.
    let interactive =
        matches!(sources, [args::SqlSource::Stdin]) && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let outcome = if interactive {
        repl::run(&ctx, &reporting).await
    } else {
        run::run_sources(&ctx, &reporting, sources).await
    };
    if let Some(server) = server {
        server.shutdown().await;
    }
    outcome
}
