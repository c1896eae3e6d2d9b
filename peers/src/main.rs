//! `peers`: loads TPC-H lineitem rows from a Parquet file into BigQuery through third-party
//! Rust Storage Write API clients, so datafusion-bigquery can be benchmarked against them.
//!
//! `peers load` prints one line, `rows=… seconds=… cpu_seconds=… peak_rss_mib=…`; any failure
//! is a message on stderr and exit code 1.

mod columns;
mod convert;
mod gcloud;
mod generate;
mod google_cloud;
mod pipeline;
mod report;
mod source;

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use source::Source;
use std::path::PathBuf;
use std::process::ExitCode;

/// Loads TPC-H lineitem from Parquet through third-party Rust BigQuery Storage Write clients.
#[derive(Parser)]
#[command(name = "peers", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Loads every row of a Parquet file into a table over PENDING streams, then commits.
    Load(LoadArgs),
    /// Writes TPC-H lineitem at a scale factor to a Parquet file.
    GenLineitem(GenArgs),
}

/// Arguments of `peers load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Which client loads the rows.
    #[arg(long, value_enum)]
    client: ClientKind,
    /// The Storage Write API endpoint: plaintext, on loopback (http://127.0.0.1:PORT).
    #[arg(long)]
    endpoint: String,
    /// The table, PROJECT.DATASET.TABLE.
    #[arg(long)]
    table: String,
    /// The Parquet file with the lineitem columns.
    #[arg(long)]
    parquet: PathBuf,
    /// PENDING streams written in parallel, each with its share of the rows.
    #[arg(long, default_value_t = 2)]
    streams: usize,
    /// Append requests in flight per stream.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Target size of one append request in bytes.
    #[arg(long, default_value_t = 5 * 1024 * 1024)]
    request_bytes: usize,
}

/// The third-party clients.
#[derive(Clone, Copy, ValueEnum)]
enum ClientKind {
    /// google-cloud-bigquery 0.19 (googleapis/google-cloud-rust): Arrow rows.
    #[value(name = "google-cloud-bigquery")]
    GoogleCloudBigquery,
    /// gcloud-bigquery 1.8 (yoshidan/google-cloud-rust): proto rows.
    #[value(name = "gcloud-bigquery")]
    GcloudBigquery,
}

/// Arguments of `peers gen-lineitem`.
#[derive(clap::Args)]
struct GenArgs {
    /// TPC-H scale factor (0.01 is 60,175 rows).
    #[arg(long)]
    sf: f64,
    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,
    /// Most rows in one row group.
    #[arg(long, default_value_t = 1024 * 1024)]
    row_group_rows: usize,
}

/// A table named PROJECT.DATASET.TABLE.
pub struct TablePath {
    project: String,
    dataset: String,
    table: String,
}

impl TablePath {
    /// Parses PROJECT.DATASET.TABLE.
    pub fn parse(name: &str) -> Result<Self> {
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [project, dataset, table] if parts.iter().all(|p| !p.is_empty()) => Ok(Self {
                project: project.to_string(),
                dataset: dataset.to_string(),
                table: table.to_string(),
            }),
            _ => bail!("the table must be PROJECT.DATASET.TABLE, not {name:?}"),
        }
    }

    /// `projects/P/datasets/D/tables/T`.
    pub fn resource(&self) -> String {
        format!(
            "projects/{}/datasets/{}/tables/{}",
            self.project, self.dataset, self.table
        )
    }
}

/// Fails unless `endpoint` is `http://` to a loopback address: the clients must reach
/// nothing else.
fn check_endpoint(endpoint: &str) -> Result<()> {
    let rest = endpoint
        .strip_prefix("http://")
        .with_context(|| format!("the endpoint must be http://127.0.0.1:PORT, not {endpoint:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => bail!("the endpoint {endpoint:?} has no port"),
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    ensure!(loopback, "the endpoint {endpoint:?} is not a loopback address");
    Ok(())
}

/// Runs `peers load`: connects, then measures from stream creation to commit.
async fn load(args: LoadArgs) -> Result<String> {
    check_endpoint(&args.endpoint)?;
    ensure!(args.streams >= 1, "--streams must be at least 1");
    ensure!(args.in_flight >= 1, "--in-flight must be at least 1");
    ensure!(args.request_bytes >= 1024, "--request-bytes must be at least 1024");
    TablePath::parse(&args.table)?;
    let source = Source::open(&args.parquet)?;
    let (started, rows) = match args.client {
        ClientKind::GoogleCloudBigquery => {
            let client = google_cloud::connect(&args.endpoint).await?;
            let started = report::start();
            (started, google_cloud::load(&client, &args, &source).await?)
        }
        ClientKind::GcloudBigquery => {
            let client = gcloud::connect(&args.endpoint).await?;
            let started = report::start();
            (started, gcloud::load(&client, &args, &source).await?)
        }
    };
    started.line(rows)
}

/// Parses the command line; `--help` and `--version` exit 0, a usage error exits 1.
fn parse() -> Cli {
    Cli::try_parse().unwrap_or_else(|error| {
        if error.use_stderr() {
            let _ = error.print();
            std::process::exit(1);
        }
        error.exit()
    })
}

/// Makes a panic (in this program or a client library) a message on stderr and exit code 1.
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("peers: error: panic: {info}");
        std::process::exit(1);
    }));
}

/// Installs the process's TLS crypto provider: the clients' HTTP stacks want one to exist,
/// though every connection made here is plaintext.
#[allow(deprecated)] // ring lacks post-quantum key exchange; no TLS is ever negotiated here.
fn install_crypto_provider() {
    // An error means a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::main]
async fn main() -> ExitCode {
    exit_on_panic();
    install_crypto_provider();
    let outcome = match parse().command {
        Command::Load(args) => load(args).await,
        Command::GenLineitem(args) => {
            generate::lineitem(args.sf, &args.out, args.row_group_rows).map(|rows| format!("rows={rows}"))
        }
    };
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("peers: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
