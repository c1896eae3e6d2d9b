//! Running SQL: the session, statement splitting, execution and printing.

use std::io::{Read, Write};

use arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use datafusion_bigquery::{BigQueryOptions, register_bigquery};

use crate::args::{Cli, SqlSource};
use crate::report::{Failure, one_line};

/// Longest SQL excerpt shown in error context.
const SQL_EXCERPT_CHARS: usize = 120;

/// The table defaults: the environment, then the flags, then the emulator's endpoint.
pub(crate) fn table_defaults(cli: &Cli, emulator_endpoint: Option<String>) -> Result<BigQueryOptions, Failure> {
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
    if let Some(project) = &cli.project {
        options = options.with_project(project);
    }
    if let Some(streams) = cli.streams {
        let streams = usize::try_from(streams).map_err(|_| Failure::new(format!("--streams {streams}: too large")))?;
        options = options.with_streams(streams);
    }
    if let Some(endpoint) = emulator_endpoint {
        options = options.with_endpoint(endpoint);
    }
    Ok(options)
}

/// A session with `STORED AS BIGQUERY` registered and the information schema enabled.
pub(crate) fn session(defaults: BigQueryOptions) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    register_bigquery(&ctx, defaults);
    ctx
}

/// Runs every source in order, stopping at the first failure.
pub(crate) async fn run_sources(ctx: &SessionContext, sources: &[SqlSource]) -> Result<(), Failure> {
    for source in sources {
        let (label, sql) = read_source(source)?;
        run_sql(ctx, &label, &sql).await?;
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
async fn run_sql(ctx: &SessionContext, label: &str, sql: &str) -> Result<(), Failure> {
    let statements =
        parse_statements(ctx, sql).map_err(|e| Failure::from_datafusion(&e).context(format!("in {label}")))?;
    for statement in statements {
        let text = statement.to_string();
        run_statement(ctx, statement).await.map_err(|e| {
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

/// Plans, executes and prints one statement.
async fn run_statement(ctx: &SessionContext, statement: Statement) -> Result<(), DataFusionError> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    let frame = ctx.execute_logical_plan(plan).await?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await?;
    if schema.fields().is_empty() {
        return Ok(());
    }
    let table = pretty_format_batches_with_schema(schema.into(), &batches)?;
    print_text(&table.to_string())
}

/// Writes a block of text and a newline to stdout; a closed stdout is not an error.
fn print_text(text: &str) -> Result<(), DataFusionError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(DataFusionError::IoError(e)),
        _ => Ok(()),
    }
}
