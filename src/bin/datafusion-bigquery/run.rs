//! Running SQL: the session, statement splitting, execution and printing.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use datafusion_bigquery::datafusion::EnvObjectStoreRegistry;
use datafusion_bigquery::load::CheckpointReport;
use datafusion_bigquery::{
    BigQueryOptions, BigQueryTable, BigQueryTableFactory, LoadProgress, ProgressSnapshot, register_bigquery_catalog,
    register_bigquery_factory,
};

use crate::args::{Cli, Format, SqlSource};
use crate::output::format_results;
use crate::progress::{ProgressLine, checkpoint_text, summary_text};
use crate::report::{Failure, one_line};

/// Longest SQL excerpt shown in error context.
const SQL_EXCERPT_CHARS: usize = 120;

/// The table defaults: the environment, then the flags, then the emulator's endpoints
/// (Storage Write, REST).
pub(crate) fn table_defaults(
    cli: &Cli,
    emulator_endpoints: Option<(String, String)>,
) -> Result<BigQueryOptions, Failure> {
    let mut options = BigQueryOptions::from_env();
    for pair in &cli.options {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::new(format!("--option '{pair}': expected KEY=VALUE")))?;
        options
            .set(key.trim(), value.trim())
            .map_err(|e| Failure::new(e.to_string()))?;
    }
    if let Some(endpoint) = &cli.endpoint {
        options = options.with_endpoint(endpoint);
    }
    if let Some(endpoint) = &cli.rest_endpoint {
        options = options.with_rest_endpoint(endpoint);
    }
    if let Some(project) = &cli.project {
        options = options.with_project(project);
    }
    if let Some(streams) = cli.streams {
        let streams = usize::try_from(streams).map_err(|_| Failure::new(format!("--streams {streams}: too large")))?;
        options = options.with_streams(streams);
    }
    if let Some((endpoint, rest)) = emulator_endpoints {
        options = options.with_endpoint(endpoint).with_rest_endpoint(rest);
    }
    Ok(options)
}

/// A session with `STORED AS BIGQUERY` registered, its loads counted by `progress`, and the
/// information schema enabled.
pub(crate) async fn session(
    cli: &Cli,
    defaults: BigQueryOptions,
    progress: LoadProgress,
) -> Result<SessionContext, Failure> {
    let ctx = base_session(cli, BigQueryTableFactory::new(defaults.clone()).with_progress(progress)).await?;
    for spec in &cli.catalogs {
        let (name, project) = spec
            .split_once('=')
            .filter(|(n, p)| !n.trim().is_empty() && !p.trim().is_empty())
            .ok_or_else(|| Failure::new(format!("--catalog '{spec}': expected NAME=PROJECT")))?;
        register_bigquery_catalog(&ctx, name.trim(), project.trim(), defaults.clone())
            .await
            .map_err(|e| Failure::new(format!("--catalog {spec}: {e}")))?;
    }
    Ok(ctx)
}

/// The session before catalogs: on a Ballista cluster, or local with object stores from
/// the environment.
async fn base_session(cli: &Cli, factory: BigQueryTableFactory) -> Result<SessionContext, Failure> {
    #[cfg(feature = "ballista")]
    if let Some(cluster) = &cli.ballista {
        return datafusion_bigquery::ballista::ballista_context_with(cluster, factory)
            .await
            .map_err(|e| Failure::new(format!("cannot start the Ballista session: {e}")));
    }
    let _ = cli;
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(EnvObjectStoreRegistry::default()))
        .build_arc()
        .map_err(|e| Failure::from_datafusion(&e))?;
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new().with_information_schema(true), runtime);
    register_bigquery_factory(&ctx, factory);
    Ok(ctx)
}

/// How results, progress and summaries are shown.
pub(crate) struct Reporting {
    /// Format of query results on stdout.
    pub(crate) format: Format,
    /// The session's load counters.
    pub(crate) progress: LoadProgress,
    /// No progress line and no summaries.
    pub(crate) quiet: bool,
    /// Whether stderr is a terminal (the progress line is drawn only then).
    pub(crate) stderr_is_terminal: bool,
}

impl Reporting {
    /// Reporting for the command line's flags, counting with `progress`.
    pub(crate) fn new(cli: &Cli, progress: LoadProgress) -> Self {
        Self {
            format: cli.format,
            progress,
            quiet: cli.quiet,
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Prints the summary of a statement's loads: after the table on stdout, or on a
    /// terminal's stderr when stdout carries csv or json.
    fn summary(
        &self,
        table: &str,
        done: &ProgressSnapshot,
        elapsed: std::time::Duration,
    ) -> Result<(), DataFusionError> {
        let reports = self.progress.take_checkpoint_reports();
        if self.quiet || done.loads == 0 && reports.is_empty() {
            return Ok(());
        }
        let already = reports
            .iter()
            .find(|r| matches!(r, CheckpointReport::AlreadyCommitted { .. }));
        let mut line = match already {
            Some(report) => checkpoint_text(table, report, done),
            None => summary_text(table, done, elapsed),
        };
        if already.is_none()
            && let Some(report) = reports.first()
        {
            line = format!("{line}\n{}", checkpoint_text(table, report, done));
        }
        match self.format {
            Format::Table => print_text(&format!("{line}\n")),
            _ if self.stderr_is_terminal => {
                eprintln!("{line}");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Runs every source in order, stopping at the first failure.
pub(crate) async fn run_sources(
    ctx: &SessionContext,
    reporting: &Reporting,
    sources: &[SqlSource],
) -> Result<(), Failure> {
    for source in sources {
        let (label, sql) = read_source(source)?;
        run_sql(ctx, reporting, &label, &sql).await?;
    }
    Ok(())
}

/// A label for error messages and the SQL text of a source.
fn read_source(source: &SqlSource) -> Result<(String, String), Failure> {
    match source {
        SqlSource::Command(sql) => Ok(("-c".to_string(), sql.clone())),
        SqlSource::File(path) => std::fs::read_to_string(path)
            .map(|sql| (path.display().to_string(), sql))
            .map_err(|e| Failure::new(format!("cannot read SQL file {}: {e}", path.display()))),
        SqlSource::Stdin => {
            let mut sql = String::new();
            std::io::stdin()
                .read_to_string(&mut sql)
                .map_err(|e| Failure::new(format!("cannot read SQL from stdin: {e}")))?;
            Ok(("stdin".to_string(), sql))
        }
    }
}

/// Splits `sql` into statements and runs them one by one.
pub(crate) async fn run_sql(
    ctx: &SessionContext,
    reporting: &Reporting,
    label: &str,
    sql: &str,
) -> Result<(), Failure> {
    let statements =
        parse_statements(ctx, sql).map_err(|e| Failure::from_datafusion(&e).context(format!("in {label}")))?;
    for statement in statements {
        let text = statement.to_string();
        run_statement(ctx, reporting, statement).await.map_err(|e| {
            Failure::from_datafusion(&e).context(format!("in {label}: {}", one_line(&text, SQL_EXCERPT_CHARS)))
        })?;
    }
    Ok(())
}

/// Parses `sql` with the session's SQL dialect.
fn parse_statements(ctx: &SessionContext, sql: &str) -> Result<Vec<Statement>, DataFusionError> {
    let dialect_name = ctx.state().config().options().sql_parser.dialect;
    let dialect = dialect_from_str(dialect_name)
        .ok_or_else(|| DataFusionError::Plan(format!("unsupported SQL dialect {dialect_name}")))?;
    Ok(DFParser::parse_sql_with_dialect(sql, dialect.as_ref())?.into())
}

/// Plans, executes and prints one statement; an INSERT into a BigQuery table draws its
/// progress and is summarized.
async fn run_statement(
    ctx: &SessionContext,
    reporting: &Reporting,
    statement: Statement,
) -> Result<(), DataFusionError> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    let target = bigquery_insert_target(&plan);
    let before = reporting.progress.snapshot();
    let started = Instant::now();
    let line = (target.is_some() && !reporting.quiet && reporting.stderr_is_terminal)
        .then(|| ProgressLine::start(reporting.progress.clone(), before));
    let result = async {
        let frame = ctx.execute_logical_plan(plan).await?;
        let schema = frame.schema().as_arrow().clone();
        let batches = frame.collect().await?;
        Ok::<_, DataFusionError>((schema, batches))
    }
    .await;
    if let Some(line) = line {
        line.finish().await;
    }
    let elapsed = started.elapsed();
    let (schema, batches) = result?;
    print_text(&format_results(reporting.format, schema.into(), &batches)?)?;
    if let Some(table) = target {
        let done = reporting.progress.snapshot().since(&before);
        reporting.summary(&table, &done, elapsed)?;
    }
    Ok(())
}

/// The BigQuery table an `INSERT` (or `EXPLAIN ANALYZE INSERT`) loads, if it loads one.
fn bigquery_insert_target(plan: &LogicalPlan) -> Option<String> {
    match plan {
        LogicalPlan::Analyze(analyze) => bigquery_insert_target(&analyze.input),
        LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
            let provider = source_as_provider(&dml.target).ok()?;
            let table = provider.downcast_ref::<BigQueryTable>()?;
            Some(table.loader().table().to_string())
        }
        _ => None,
    }
}

/// Writes text to stdout; a closed stdout is not an error.
fn print_text(text: &str) -> Result<(), DataFusionError> {
    if text.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match write!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(DataFusionError::IoError(e)),
        _ => Ok(()),
    }
}
