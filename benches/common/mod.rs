//! What the benchmarks share: TPC-H lineitem from tpchgen-arrow and its BigQuery table.

#![allow(dead_code)]

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion_bigquery::schema;
use datafusion_bigquery::schema::TableSchema;
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::LineItemArrow;

/// The BigQuery table lineitem loads into: the TPC-H types, decimals as NUMERIC.
pub const LINEITEM_COLUMNS: &str = "l_orderkey:INT64:REQUIRED,l_partkey:INT64:REQUIRED,l_suppkey:INT64:REQUIRED,\
    l_linenumber:INT64:REQUIRED,l_quantity:NUMERIC:REQUIRED,l_extendedprice:NUMERIC:REQUIRED,\
    l_discount:NUMERIC:REQUIRED,l_tax:NUMERIC:REQUIRED,l_returnflag:STRING:REQUIRED,\
    l_linestatus:STRING:REQUIRED,l_shipdate:DATE:REQUIRED,l_commitdate:DATE:REQUIRED,\
    l_receiptdate:DATE:REQUIRED,l_shipinstruct:STRING:REQUIRED,l_shipmode:STRING:REQUIRED,\
    l_comment:STRING:REQUIRED";

/// The lineitem table schema.
pub fn lineitem_table() -> TableSchema {
    schema::parse_inline_schema(LINEITEM_COLUMNS).expect("lineitem schema is valid")
}

/// The Arrow schema tpchgen-arrow produces for lineitem.
pub fn lineitem_arrow_schema() -> SchemaRef {
    LineItemArrow::schema_ref()
}

/// Part `part` (1-based) of `parts` of lineitem at scale factor `sf`, as batches of
/// `batch_size` rows, generated lazily.
pub fn lineitem_part(sf: f64, part: i32, parts: i32, batch_size: usize) -> impl Iterator<Item = RecordBatch> + Send {
    LineItemArrow::new(LineItemGenerator::new(sf, part, parts))
        .with_batch_size(batch_size)
        .map(|batch| batch.expect("tpchgen-arrow batch"))
}

/// Builds tpchgen's shared text pool (about 300 MB, once per process), so that neither the
/// first load timed nor its memory figure pays for it.
pub fn init_generator() {
    let _ = tpchgen::text::TextPool::get_or_init_default();
}

/// All of lineitem at scale factor `sf`, in memory.
pub fn lineitem(sf: f64, batch_size: usize) -> Vec<RecordBatch> {
    lineitem_part(sf, 1, 1, batch_size).collect()
}

/// The scale factor from `DFBQ_BENCH_SF`, or `default`.
pub fn scale_factor(default: f64) -> f64 {
    std::env::var("DFBQ_BENCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
