//! Turning failures into a message whose first line is the cause.

use std::error::Error as StdError;
use std::fmt;

use datafusion::error::DataFusionError;

/// A failure of the CLI: the cause (first line of stderr) and optional context lines.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What went wrong, starting with the useful part.
    cause: String,
    /// Where it went wrong, e.g. the statement being run.
    context: Vec<String>,
}

impl Failure {
    /// A failure with only a cause.
    pub(crate) fn new(cause: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            context: Vec::new(),
        }
    }

    /// A DataFusion error, unwrapped down to the crate's or the root error.
    pub(crate) fn from_datafusion(err: &DataFusionError) -> Self {
        Self::new(cause_of(err))
    }

    /// Adds a line of context.
    pub(crate) fn context(mut self, line: impl Into<String>) -> Self {
        self.context.push(line.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error: {}", self.cause.trim())?;
        for line in &self.context {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// The most useful message of an error chain: a `datafusion_bigquery::Error` anywhere in
/// it, else the deepest DataFusion error without wrapper prefixes.
fn cause_of(err: &DataFusionError) -> String {
    if let Some(bigquery) = find_bigquery_error(err) {
        return bigquery.to_string();
    }
    match err.find_root() {
        DataFusionError::External(inner) => strip_prefixes(&inner.to_string()).to_string(),
        DataFusionError::SQL(parser, _) => parser.to_string(),
        root => without_backtrace(&root.message()).to_string(),
    }
}

/// The first `datafusion_bigquery::Error` in the `source()` chain of `err`.
fn find_bigquery_error(err: &DataFusionError) -> Option<&datafusion_bigquery::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<datafusion_bigquery::Error>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Removes DataFusion's wrapper prefixes that say nothing about the cause.
fn strip_prefixes(message: &str) -> &str {
    const WRAPPERS: [&str; 2] = ["External error: ", "Arrow error: External error: "];
    let mut rest = message.trim_start();
    while let Some(stripped) = WRAPPERS.iter().find_map(|p| rest.strip_prefix(p)) {
        rest = stripped;
    }
    rest
}

/// A message without the backtrace DataFusion appends when built with backtraces.
fn without_backtrace(message: &str) -> &str {
    message.split(DataFusionError::BACK_TRACE_SEP).next().unwrap_or(message)
}

/// One line of SQL for context, shortened to `max` characters.
pub(crate) fn one_line(sql: &str, max: usize) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut short: String = flat.chars().take(max).collect();
    short.push_str("...");
    short
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::error::ArrowError;

    use super::*;

    fn not_found() -> datafusion_bigquery::Error {
        // Parse errors are the only public way to build a crate error here.
        "nope".parse::<datafusion_bigquery::TableRef>().unwrap_err()
    }

    #[test]
    fn finds_the_crate_error_under_wrappers() {
        let wrapped = DataFusionError::Shared(Arc::new(DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(DataFusionError::from(not_found())))),
            None,
        )))
        .context("while inserting");
        assert!(
            cause_of(&wrapped).starts_with("invalid table name 'nope'"),
            "{}",
            cause_of(&wrapped)
        );
    }

    #[test]
    fn strips_external_prefixes() {
        let io = std::io::Error::other("disk full");
        let err = DataFusionError::External(Box::new(io)).context("writing");
        assert_eq!(cause_of(&err), "disk full");
    }

    #[test]
    fn drops_variant_prefixes() {
        let err = DataFusionError::Plan("table 'x' not found".into());
        assert_eq!(cause_of(&err), "table 'x' not found");
    }

    #[test]
    fn shortens_sql() {
        assert_eq!(one_line("SELECT\n  1", 80), "SELECT 1");
        assert_eq!(one_line("SELECT 12345", 6), "SELECT...");
    }

    #[test]
    fn displays_cause_first() {
        let text = Failure::new("boom").context("in statement 1").to_string();
        assert_eq!(text, "Error: boom\n  in statement 1");
    }
}
