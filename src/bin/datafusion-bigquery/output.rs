//! Query results as text in the chosen format.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::util::pretty::pretty_format_batches_with_schema;

use crate::args::Format;

/// The text of one statement's results, ending with a newline; empty when the statement
/// has no output columns (CREATE, SET, ...).
pub(crate) fn format_results(format: Format, schema: SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    if schema.fields().is_empty() {
        return Ok(String::new());
    }
    let bytes = match format {
        Format::Table => {
            let mut text = pretty_format_batches_with_schema(schema, batches)?.to_string();
            text.push('\n');
            return Ok(text);
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(Vec::new());
            // The header is written with the first batch, so an empty result still gets one.
            writer.write(&RecordBatch::new_empty(schema))?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.into_inner()
        }
        Format::Json => {
            let mut writer = json_builder().build::<_, arrow::json::writer::JsonArray>(Vec::new());
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if rows == 0 {
                return Ok("[]\n".to_string());
            }
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
            let mut bytes = writer.into_inner();
            bytes.push(b'\n');
            bytes
        }
        Format::Ndjson => {
            let mut writer = json_builder().build::<_, arrow::json::writer::LineDelimited>(Vec::new());
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
            writer.into_inner()
        }
    };
    String::from_utf8(bytes).map_err(|e| ArrowError::ExternalError(Box::new(e)))
}

/// JSON that writes NULLs as `null` rather than leaving the key out.
fn json_builder() -> arrow::json::WriterBuilder {
    arrow::json::WriterBuilder::new().with_explicit_nulls(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
            ],
        )
        .expect("valid batch");
        (schema, vec![batch])
    }

    #[test]
    fn csv_has_a_header_and_quotes() {
        let (schema, batches) = sample();
        let text = format_results(Format::Csv, schema.clone(), &batches).expect("csv");
        assert_eq!(text, "id,name\n1,\"a,b\"\n2,\n");
        assert_eq!(format_results(Format::Csv, schema, &[]).expect("csv"), "id,name\n");
    }

    #[test]
    fn json_writes_arrays_and_nulls() {
        let (schema, batches) = sample();
        let text = format_results(Format::Json, schema.clone(), &batches).expect("json");
        assert_eq!(text, "[{\"id\":1,\"name\":\"a,b\"},{\"id\":2,\"name\":null}]\n");
        assert_eq!(format_results(Format::Json, schema.clone(), &[]).expect("json"), "[]\n");
        let lines = format_results(Format::Ndjson, schema, &batches).expect("ndjson");
        assert_eq!(lines, "{\"id\":1,\"name\":\"a,b\"}\n{\"id\":2,\"name\":null}\n");
    }

    #[test]
    fn statements_without_columns_print_nothing() {
        let schema = Arc::new(Schema::empty());
        for format in [Format::Table, Format::Csv, Format::Json, Format::Ndjson] {
            assert_eq!(format_results(format, schema.clone(), &[]).expect("empty"), "");
        }
    }
}
