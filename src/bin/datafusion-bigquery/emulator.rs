//! The embedded Storage Write server (and its v2 REST API): `--emulator` and the `emulator`
//! subcommand.

use std::io::Write;

use datafusion_bigquery::schema::TableSchema;
use std::time::Duration;

use datafusion_bigquery::server::{ConnectionLimit, Retention, ServerBuilder};
use datafusion_bigquery::{EmbeddedServer, TableRef, schema};

use crate::args::{BehaviourArgs, EmulatorArgs};
use crate::report::Failure;

/// A table to create in the embedded server.
#[derive(Debug)]
pub(crate) struct TableSpec {
    /// The table.
    table: TableRef,
    /// Its schema.
    schema: TableSchema,
}

/// Parses `project.dataset.table=SCHEMA`, SCHEMA being a JSON file or inline columns.
pub(crate) fn parse_table_spec(flag: &str, spec: &str) -> Result<TableSpec, Failure> {
    let invalid = |reason: String| Failure::new(format!("{flag} '{spec}': {reason}"));
    let (name, schema_arg) = spec
        .split_once('=')
        .ok_or_else(|| invalid("expected PROJECT.DATASET.TABLE=SCHEMA".into()))?;
    let table: TableRef = name.parse().map_err(|e| invalid(format!("{e}")))?;
    let schema = schema::parse_schema_arg(schema_arg.trim()).map_err(invalid)?;
    Ok(TableSpec { table, schema })
}

/// Parses every table spec of a repeated flag.
pub(crate) fn parse_table_specs(flag: &str, specs: &[String]) -> Result<Vec<TableSpec>, Failure> {
    specs.iter().map(|spec| parse_table_spec(flag, spec)).collect()
}

/// Starts the embedded server set up by `builder` (ports, retention) with the behaviours
/// asked for, and creates the tables.
pub(crate) async fn start(
    builder: ServerBuilder,
    behaviour: &BehaviourArgs,
    tables: Vec<TableSpec>,
) -> Result<EmbeddedServer, Failure> {
    let server = with_behaviour(builder, behaviour)?
        .start()
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    for spec in tables {
        server.create_table(&spec.table, spec.schema);
    }
    Ok(server)
}

/// Applies the behaviour flags to a server builder.
fn with_behaviour(mut builder: ServerBuilder, flags: &BehaviourArgs) -> Result<ServerBuilder, Failure> {
    let seconds = |flag: &str, value: f64| {
        Duration::try_from_secs_f64(value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Failure::new(format!("{flag} {value}: expected a positive number of seconds")))
    };
    if let Some(idle) = flags.idle_close_secs {
        builder = builder.idle_close(seconds("--idle-close-secs", idle)?);
    }
    if flags.close_after_requests.is_some() || flags.close_after_bytes.is_some() {
        builder = builder.connection_limit(ConnectionLimit {
            requests: flags.close_after_requests,
            bytes: flags.close_after_bytes,
            close: flags.close_mode,
        });
    }
    if let Some(n) = flags.max_streams_per_connection {
        builder = builder.max_concurrent_streams(n);
    }
    if let Some(bytes) = flags.max_request_bytes {
        builder = builder.max_request_bytes(bytes);
    }
    if let Some(n) = flags.throttle_every {
        builder = builder.throttle_every(n);
    }
    if let Some(n) = flags.stream_quota_every {
        builder = builder.stream_quota_every(n);
    }
    if let Some(delay) = flags.table_visibility_delay_secs {
        builder = builder.table_visibility_delay(seconds("--table-visibility-delay-secs", delay)?);
    }
    if flags.refuse_arrow_rows {
        builder = builder.refuse_arrow_rows();
    }
    if flags.accept_unrouted_appends {
        builder = builder.accept_unrouted_appends();
    }
    Ok(builder)
}

/// `datafusion-bigquery emulator`: serves until Ctrl-C or SIGTERM.
pub(crate) async fn serve(args: EmulatorArgs) -> Result<(), Failure> {
    let tables = parse_table_specs("--table", &args.tables)?;
    let retention = if args.discard {
        Retention::Discard
    } else {
        Retention::Keep
    };
    let mut builder = EmbeddedServer::builder()
        .port(args.port)
        .rest_port(args.rest_port)
        .retention(retention);
    if args.no_digests {
        builder = builder.without_digests();
    }
    let server = start(builder, &args.behaviour, tables).await?;
    announce(&server)?;
    wait_for_shutdown().await?;
    let stats = server.stats();
    if retention == Retention::Discard {
        eprintln!(
            "received {} AppendRows requests, {} rows ({} bytes of rows); {} commits",
            stats.append_requests, stats.rows_appended, stats.row_bytes_appended, stats.commits
        );
    }
    if stats.connections_closed > 0 || stats.throttled > 0 {
        eprintln!(
            "closed {} AppendRows connections; refused {} calls for a quota",
            stats.connections_closed, stats.throttled
        );
    }
    server.shutdown().await;
    Ok(())
}

/// Prints on stdout, one a line, and flushes: the Storage Write endpoint, the REST endpoint,
/// and the environment variables that point clients at them.
fn announce(server: &EmbeddedServer) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let lines = [
        server.endpoint(),
        server.rest_endpoint(),
        format!("BIGQUERY_STORAGE_EMULATOR_HOST={}", server.local_addr()),
        format!(
            "BIGQUERY_EMULATOR_HOST={}",
            server.rest_endpoint().trim_start_matches("http://")
        ),
    ];
    lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(format!("cannot write to stdout: {e}")))
}

/// Waits for Ctrl-C, or SIGTERM on Unix.
async fn wait_for_shutdown() -> Result<(), Failure> {
    let signal_error = |e: std::io::Error| Failure::new(format!("cannot listen for signals: {e}"));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(signal_error),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(signal_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inline_specs() {
        let spec = parse_table_spec("--table", "p.d.t=id:INT64:REQUIRED,name:STRING").expect("valid");
        assert_eq!(spec.table.to_string(), "p.d.t");
        assert_eq!(spec.schema.fields.len(), 2);
    }

    #[test]
    fn rejects_bad_specs_with_the_flag_and_value() {
        for bad in ["p.d.t", "t=id:INT64", "p.d.t=id:NOPE"] {
            let err = parse_table_spec("--table", bad).expect_err(bad).to_string();
            assert!(err.starts_with(&format!("Error: --table '{bad}': ")), "{err}");
        }
    }
}
