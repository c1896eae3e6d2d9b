//! Command-line arguments.

use std::path::PathBuf;

use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};
use datafusion_bigquery::server::CloseMode;

/// Runs SQL with DataFusion, where `CREATE EXTERNAL TABLE ... STORED AS BIGQUERY` tables load
/// query results into BigQuery atomically through the Storage Write API.
///
/// SQL comes from -c and -f in the order given, or from stdin when neither is given (an
/// interactive prompt with history when stdin is a terminal; `\q` ends it). Results
/// are printed on stdout in the --format chosen. Table options come from defaults, then
/// GOOGLE_CLOUD_PROJECT and BIGQUERY_STORAGE_EMULATOR_HOST, then the flags below, then each
/// table's OPTIONS ('bigquery.<key>' '<value>'): the most specific wins.
///
/// During an INSERT into a BigQuery table, a progress line (rows, MB, rows/s, streams) is
/// drawn on stderr when stderr is a terminal. After it, a summary (rows committed, streams,
/// bytes, commit time, elapsed) follows the result on stdout in the table format, and goes
/// to stderr, only when it is a terminal, in the csv, json and ndjson formats.
///
/// Exits 0 on success, 1 on any error with the cause on the first line of stderr, 2 on a
/// usage error. RUST_LOG (e.g. datafusion_bigquery=debug) logs each RPC, with its duration, to
/// stderr.
#[derive(Debug, Parser)]
#[command(
    name = "datafusion-bigquery",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Example, with no cloud account:\n  datafusion-bigquery --emulator --emulator-table 'demo.shop.orders=id:INT64:REQUIRED,customer:STRING' \\\n    -c \"CREATE EXTERNAL TABLE orders STORED AS BIGQUERY LOCATION 'demo.shop.orders'\" \\\n    -c \"INSERT INTO orders SELECT value AS id, concat('c', value % 10) AS customer FROM range(1000)\""
)]
pub(crate) struct Cli {
    /// A subcommand; without one, runs SQL.
    #[command(subcommand)]
    pub(crate) subcommand: Option<Command>,

    /// Runs SQL statements in the order given; may be repeated and mixed with -f.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub(crate) commands: Vec<String>,

    /// Runs the `;`-separated SQL statements of a file; may be repeated and mixed with -c.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// Storage Write API endpoint for every BigQuery table; an `http://host:port` endpoint
    /// is plaintext without credentials (emulators).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint: Option<String>,

    /// The v2 REST endpoint (table creation, catalogs, INSERT OVERWRITE); an `http://host:port`
    /// endpoint is plaintext without credentials (emulators).
    #[arg(long = "rest-endpoint", value_name = "URL")]
    pub(crate) rest_endpoint: Option<String>,

    /// Exposes a BigQuery project as the catalog NAME: its datasets are schemas and its
    /// tables destinations, so `INSERT INTO NAME.dataset.table SELECT ...` needs no CREATE;
    /// may be repeated.
    #[arg(long = "catalog", value_name = "NAME=PROJECT")]
    pub(crate) catalogs: Vec<String>,

    /// Default project for LOCATIONs written `dataset.table`.
    #[arg(long, value_name = "ID")]
    pub(crate) project: Option<String>,

    /// Number of parallel write streams per load (default: the query's partitions, at most 16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) streams: Option<u64>,

    /// Sets any other table default, as `bigquery.<key>=<value>` or `<key>=<value>`
    /// (max_request_bytes, max_inflight_requests, wire_encoding); may be repeated.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    pub(crate) options: Vec<String>,

    /// How query results are printed on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
    pub(crate) format: Format,

    /// Prints neither the progress line nor the load summaries; errors still go to stderr.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,

    /// Starts an embedded Storage Write server in-process on a free port and uses it as the
    /// endpoint.
    #[arg(long)]
    pub(crate) emulator: bool,

    /// Creates a table in the embedded server (needs --emulator); SCHEMA is a `bq` JSON
    /// schema file or `name:TYPE[:MODE],...`; may be repeated.
    #[arg(long = "emulator-table", value_name = "PROJECT.DATASET.TABLE=SCHEMA")]
    pub(crate) emulator_tables: Vec<String>,

    /// Runs every statement on a Ballista cluster: `df://HOST:PORT` (a scheduler started with
    /// `datafusion-bigquery ballista scheduler`), or `standalone` (an in-process scheduler
    /// and executor). Each INSERT then writes one stream per input partition, on the
    /// executors, and commits once.
    #[cfg(feature = "ballista")]
    #[arg(long, value_name = "df://HOST:PORT|standalone")]
    pub(crate) ballista: Option<datafusion_bigquery::ballista::Cluster>,
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Format {
    /// Boxed tables, for people.
    #[default]
    Table,
    /// CSV with a header line, one block per statement.
    Csv,
    /// One JSON array of objects per statement; NULLs written as null.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs the embedded Storage Write server and its v2 REST API until Ctrl-C or SIGTERM,
    /// printing on stdout, one a line: the Storage Write endpoint (e.g.
    /// `http://127.0.0.1:9060`), the REST endpoint, `BIGQUERY_STORAGE_EMULATOR_HOST=...` and
    /// `BIGQUERY_EMULATOR_HOST=...`.
    Emulator(EmulatorArgs),

    /// Lists or deletes the loads recorded in a checkpoint folder (`bigquery.checkpoint`).
    #[command(subcommand)]
    Checkpoints(CheckpointsCommand),

    /// Runs a Ballista scheduler or executor that knows BigQuery tables.
    #[cfg(feature = "ballista")]
    #[command(subcommand)]
    Ballista(BallistaCommand),
}

/// The processes of a Ballista cluster.
#[cfg(feature = "ballista")]
#[derive(Debug, Subcommand)]
pub(crate) enum BallistaCommand {
    /// Runs a scheduler until the process ends.
    Scheduler {
        /// Address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Seconds without a heartbeat after which an executor is taken as lost and its
        /// tasks are run again elsewhere.
        #[arg(long, value_name = "SECONDS", default_value_t = 180)]
        executor_timeout_secs: u64,
        /// Times a task may fail (its executor lost, its stream failed for good) before the
        /// job fails; each retry writes to a fresh stream.
        #[arg(long, value_name = "N", default_value_t = 4)]
        task_max_failures: usize,
    },
    /// Runs an executor until the process ends.
    Executor {
        /// The scheduler.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Address of its Arrow Flight service (shuffle data); port 0 picks a free one.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
        bind: std::net::SocketAddr,
        /// Port of its task service (gRPC).
        #[arg(long, value_name = "PORT", default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once (0: one per core).
        #[arg(long, value_name = "N", default_value_t = 0)]
        concurrent_tasks: usize,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        heartbeat_secs: u64,
    },
}

/// What to do with a checkpoint folder.
#[derive(Debug, Subcommand)]
pub(crate) enum CheckpointsCommand {
    /// Prints one line per load: its id, table, state and partitions.
    List {
        /// The folder: a local path, file://, s3://bucket/prefix or gs://bucket/prefix.
        folder: String,
    },
    /// Deletes loads' checkpoints (a committed load run again then loads again).
    Delete {
        /// The folder.
        folder: String,
        /// The loads to delete.
        #[arg(required = true, value_name = "LOAD_ID")]
        load_ids: Vec<String>,
    },
}

/// Arguments of `emulator`.
#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// Port of the Storage Write API on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 9060)]
    pub(crate) port: u16,

    /// Port of the v2 REST API (tables, datasets, copy jobs) on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub(crate) rest_port: u16,

    /// Creates a table; SCHEMA is a `bq` JSON schema file or `name:TYPE[:MODE],...`;
    /// may be repeated.
    #[arg(long = "table", value_name = "PROJECT.DATASET.TABLE=SCHEMA")]
    pub(crate) tables: Vec<String>,

    /// Validates every request (stream, offset, writer schema, row count) but keeps no rows,
    /// only counting and digesting them (proto rows are not decoded; Arrow rows are decoded
    /// and checked): a server that is not the bottleneck of a client benchmark. Prints what
    /// it received on stderr when it stops.
    #[arg(long)]
    pub(crate) discard: bool,

    /// Counts rows without digesting them (for benchmarks: digesting Arrow rows takes
    /// encoding them in their proto form).
    #[arg(long)]
    pub(crate) no_digests: bool,

    /// Plays the real service's awkward behaviours.
    #[command(flatten)]
    pub(crate) behaviour: BehaviourArgs,
}

/// The real service's behaviours the embedded server can play, all off by default.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Behaviours of the real service")]
pub(crate) struct BehaviourArgs {
    /// Ends an AppendRows connection idle for this long with ABORTED, as the service does
    /// after 600 s.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) idle_close_secs: Option<f64>,

    /// Ends every AppendRows connection after it carried this many requests.
    #[arg(long, value_name = "N")]
    pub(crate) close_after_requests: Option<u64>,

    /// Ends every AppendRows connection after it carried this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub(crate) close_after_bytes: Option<u64>,

    /// How those connections end: `graceful` (answer, then end cleanly) or `abrupt`
    /// (UNAVAILABLE, the last request unanswered).
    #[arg(long, value_name = "MODE", default_value = "graceful", value_parser = parse_close_mode)]
    pub(crate) close_mode: CloseMode,

    /// Caps the concurrent streams of each HTTP/2 connection (about 100 at Google).
    #[arg(long, value_name = "N")]
    pub(crate) max_streams_per_connection: Option<u32>,

    /// Refuses AppendRows requests of this size or more (default: the service's 20 MB).
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_request_bytes: Option<usize>,

    /// Refuses every N-th AppendRows request with the AppendRows throughput quota.
    #[arg(long, value_name = "N")]
    pub(crate) throttle_every: Option<u64>,

    /// Refuses every N-th CreateWriteStream call with the stream-creation quota.
    #[arg(long, value_name = "N")]
    pub(crate) stream_quota_every: Option<u64>,

    /// Answers CreateWriteStream with NOT_FOUND for a table until this long after it was
    /// created, as the Storage Write API sees new tables late.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) table_visibility_delay_secs: Option<f64>,

    /// Refuses Arrow rows with INVALID_ARGUMENT, as a service without the format would.
    #[arg(long)]
    pub(crate) refuse_arrow_rows: bool,

    /// Serves AppendRows calls without the `x-goog-request-params` routing header, routing
    /// them by their first request (the real service mostly does, with intermittent
    /// failures); by default they are refused.
    #[arg(long)]
    pub(crate) accept_unrouted_appends: bool,
}

fn parse_close_mode(text: &str) -> Result<CloseMode, String> {
    text.parse()
}

/// Where one piece of SQL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlSource {
    /// The text of a -c flag.
    Command(String),
    /// A file named by -f.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

/// The SQL sources in command-line order: -c and -f interleaved as given, else stdin.
pub(crate) fn sql_sources(cli: &Cli, matches: &ArgMatches) -> Vec<SqlSource> {
    let commands = indexed(matches, "commands", &cli.commands, |c| SqlSource::Command(c.clone()));
    let files = indexed(matches, "files", &cli.files, |f| SqlSource::File(f.clone()));
    let mut sources: Vec<(usize, SqlSource)> = commands.chain(files).collect();
    if sources.is_empty() {
        return vec![SqlSource::Stdin];
    }
    sources.sort_by_key(|(index, _)| *index);
    sources.into_iter().map(|(_, source)| source).collect()
}

/// Pairs each value of a repeated argument with its position on the command line.
fn indexed<'a, T>(
    matches: &ArgMatches,
    id: &str,
    values: &'a [T],
    to_source: impl Fn(&T) -> SqlSource + 'a,
) -> impl Iterator<Item = (usize, SqlSource)> + 'a {
    let indices: Vec<usize> = matches.indices_of(id).map(Iterator::collect).unwrap_or_default();
    values
        .iter()
        .enumerate()
        .map(move |(i, v)| (indices.get(i).copied().unwrap_or(usize::MAX), to_source(v)))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn behaviour_flags_parse() {
        let (cli, _) = parse(&[
            "x",
            "emulator",
            "--idle-close-secs",
            "2.5",
            "--close-after-requests",
            "100",
            "--close-mode",
            "abrupt",
            "--throttle-every",
            "50",
        ]);
        let Some(Command::Emulator(args)) = cli.subcommand else {
            panic!("emulator subcommand");
        };
        assert_eq!(args.behaviour.idle_close_secs, Some(2.5));
        assert_eq!(args.behaviour.close_after_requests, Some(100));
        assert_eq!(args.behaviour.close_mode, CloseMode::Abrupt);
        assert_eq!(args.behaviour.throttle_every, Some(50));
        let bad = Cli::command().try_get_matches_from(["x", "emulator", "--close-mode", "sudden"]);
        assert!(bad.is_err());
    }

    use super::*;

    fn parse(args: &[&str]) -> (Cli, ArgMatches) {
        let matches = Cli::command().try_get_matches_from(args).expect("valid arguments");
        (Cli::from_arg_matches(&matches).expect("valid arguments"), matches)
    }

    #[test]
    fn keeps_command_line_order() {
        let (cli, matches) = parse(&["x", "-f", "a.sql", "-c", "SELECT 1", "-f", "b.sql"]);
        assert_eq!(
            sql_sources(&cli, &matches),
            vec![
                SqlSource::File("a.sql".into()),
                SqlSource::Command("SELECT 1".into()),
                SqlSource::File("b.sql".into()),
            ]
        );
    }

    #[test]
    fn defaults_to_stdin() {
        let (cli, matches) = parse(&["x"]);
        assert_eq!(sql_sources(&cli, &matches), vec![SqlSource::Stdin]);
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
