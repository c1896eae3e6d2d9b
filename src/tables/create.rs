//! Creating a destination from its declared columns, or checking them against the table.

use arrow::datatypes::Schema;

use super::TableSettings;
use crate::error::{Error, Result};
use crate::proto::TableSchema;
use crate::rest::{RestClient, Table};
use crate::schema::{check_declared, from_arrow_schema};
use crate::table_ref::TableRef;

/// What [`ensure_table`] found or did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ensured {
    /// The table existed and its columns match the declared ones.
    Existed(TableSchema),
    /// The table was created with the declared columns.
    Created(TableSchema),
}

impl Ensured {
    /// The table's schema.
    pub fn schema(&self) -> &TableSchema {
        match self {
            Ensured::Existed(schema) | Ensured::Created(schema) => schema,
        }
    }
}

/// The BigQuery columns of an Arrow schema; the error names the table and the column.
pub(crate) fn columns_of(table: &TableRef, schema: &Schema) -> Result<TableSchema> {
    from_arrow_schema(schema).map_err(|message| Error::Schema {
        table: table.to_string(),
        message,
    })
}

/// Creates `table` with `declared` and the settings' description, labels, expiration,
/// partitioning and clustering, unless it exists; if it exists (or another process created
/// it meanwhile), checks `declared` against it ([`Error::ColumnMismatch`] names the column).
pub async fn ensure_table(
    rest: &RestClient,
    table: &TableRef,
    declared: &TableSchema,
    settings: &TableSettings,
) -> Result<Ensured> {
    if let Some(existing) = rest.get_table(table).await? {
        return check_existing(table, declared, existing).map(Ensured::Existed);
    }
    let resource = settings.table_resource(table, declared.clone());
    match rest.insert_table(&resource).await? {
        Some(created) => {
            tracing::info!(%table, columns = declared.fields.len(), "created table");
            Ok(Ensured::Created(created.schema.unwrap_or_else(|| declared.clone())))
        }
        None => {
            let existing = rest.get_table(table).await?.ok_or_else(|| Error::Rest {
                call: crate::rpc::RestCall::TablesGet,
                entity: table.to_string(),
                status: crate::rest::RestStatus::transport("the table exists, then does not"),
            })?;
            check_existing(table, declared, existing).map(Ensured::Existed)
        }
    }
}

/// Creates `table` from an Arrow schema and the settings (the Rust form of `CREATE EXTERNAL
/// TABLE ... OPTIONS ('bigquery.create' 'if_needed')`).
///
/// ```no_run
/// # async fn example() -> datafusion_bigquery::Result<()> {
/// use arrow::datatypes::{DataType, Field, Schema};
/// use datafusion_bigquery::BigQueryOptions;
/// use datafusion_bigquery::tables::ensure_arrow_table;
/// let mut options = BigQueryOptions::default()
///     .with_endpoint("http://127.0.0.1:9060")
///     .with_rest_endpoint("http://127.0.0.1:9050");
/// options.set("bigquery.description", "ids")?;
/// let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
/// let table = "p.d.ids".parse()?;
/// ensure_arrow_table(&options.rest_client()?, &table, &schema, options.tables()).await?;
/// # Ok(()) }
/// ```
pub async fn ensure_arrow_table(
    rest: &RestClient,
    table: &TableRef,
    schema: &Schema,
    settings: &TableSettings,
) -> Result<Ensured> {
    ensure_table(rest, table, &columns_of(table, schema)?, settings).await
}

fn check_existing(table: &TableRef, declared: &TableSchema, existing: Table) -> Result<TableSchema> {
    let schema = existing.schema.unwrap_or_default();
    check_columns(table, declared, &schema)?;
    Ok(schema)
}

/// Checks columns declared for `table` against its schema; [`Error::ColumnMismatch`] names
/// the first column that differs.
pub(crate) fn check_columns(table: &TableRef, declared: &TableSchema, schema: &TableSchema) -> Result<()> {
    check_declared(declared, schema).map_err(|difference| Error::ColumnMismatch {
        table: table.to_string(),
        column: difference.column,
        message: difference.message,
    })
}
