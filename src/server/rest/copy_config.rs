//! `configuration.copy` of a jobs.insert body, read into a [`CopySpec`]; every other kind
//! of job is refused.

use serde_json::{Map, Value};

use super::errors::RestError;
use super::table_body::check_table_id;
use crate::server::copy::{CopySpec, CreateDisposition, WriteDisposition};
use crate::table_ref::TableRef;

/// The kinds of job the service has and this server does not serve.
const OTHER_JOBS: [&str; 3] = ["query", "load", "extract"];

/// Reads the copy a job configuration asks for; `project` is the job's, the default of
/// table references without one.
pub(crate) fn copy_spec(project: &str, configuration: &Map<String, Value>) -> Result<CopySpec, RestError> {
    let Some(copy) = configuration.get("copy") else {
        let kind = OTHER_JOBS
            .iter()
            .find(|k| configuration.contains_key(**k))
            .map_or("no configuration.copy".to_string(), |k| format!("configuration.{k}"));
        return Err(RestError::invalid(format!(
            "the embedded server serves only copy jobs (configuration.copy); this job has {kind}"
        )));
    };
    let copy = copy
        .as_object()
        .ok_or_else(|| RestError::invalid("configuration.copy must be an object"))?;
    match copy.get("operationType").and_then(Value::as_str) {
        None | Some("COPY") | Some("OPERATION_TYPE_UNSPECIFIED") => {}
        Some(other) => {
            return Err(RestError::invalid(format!(
                "operationType {other} is not served; the embedded server serves COPY only"
            )));
        }
    }
    let source = source(project, copy)?;
    let destination = copy
        .get("destinationTable")
        .ok_or_else(|| RestError::invalid("configuration.copy.destinationTable is required"))
        .and_then(|t| table_reference(project, "destinationTable", t))?;
    check_table_id(&destination.table)?;
    Ok(CopySpec {
        source,
        destination,
        write: write_disposition(copy)?,
        create: create_disposition(copy)?,
    })
}

/// `sourceTable`, or `sourceTables` holding exactly one table.
fn source(project: &str, copy: &Map<String, Value>) -> Result<TableRef, RestError> {
    match (copy.get("sourceTable"), copy.get("sourceTables")) {
        (Some(table), None) => table_reference(project, "sourceTable", table),
        (None, Some(Value::Array(tables))) => match tables.as_slice() {
            [table] => table_reference(project, "sourceTables[0]", table),
            [] => Err(RestError::invalid("configuration.copy.sourceTables is empty")),
            more => Err(RestError::invalid(format!(
                "the embedded server copies one source table, not {}",
                more.len()
            ))),
        },
        (None, Some(_)) => Err(RestError::invalid("configuration.copy.sourceTables must be a list")),
        (Some(_), Some(_)) => Err(RestError::invalid(
            "give configuration.copy.sourceTable or sourceTables, not both",
        )),
        (None, None) => Err(RestError::invalid("configuration.copy.sourceTable is required")),
    }
}

/// A TableReference `{projectId, datasetId, tableId}`; `projectId` defaults to `project`.
fn table_reference(project: &str, key: &str, value: &Value) -> Result<TableRef, RestError> {
    let object = value
        .as_object()
        .ok_or_else(|| RestError::invalid(format!("configuration.copy.{key} must be a TableReference")))?;
    let part = |name: &str| object.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let required = |name: &str| {
        part(name).ok_or_else(|| RestError::invalid(format!("configuration.copy.{key}.{name} is required")))
    };
    let project = part("projectId").unwrap_or(project);
    TableRef::new(project, required("datasetId")?, required("tableId")?)
        .map_err(|e| RestError::invalid(format!("configuration.copy.{key}: {e}")))
}

fn write_disposition(copy: &Map<String, Value>) -> Result<WriteDisposition, RestError> {
    match copy.get("writeDisposition").and_then(Value::as_str) {
        None | Some("WRITE_EMPTY") => Ok(WriteDisposition::Empty),
        Some("WRITE_APPEND") => Ok(WriteDisposition::Append),
        Some("WRITE_TRUNCATE") => Ok(WriteDisposition::Truncate),
        Some(other) => Err(RestError::invalid(format!(
            "writeDisposition {other} is not one of WRITE_APPEND, WRITE_TRUNCATE, WRITE_EMPTY"
        ))),
    }
}

fn create_disposition(copy: &Map<String, Value>) -> Result<CreateDisposition, RestError> {
    match copy.get("createDisposition").and_then(Value::as_str) {
        None | Some("CREATE_IF_NEEDED") => Ok(CreateDisposition::IfNeeded),
        Some("CREATE_NEVER") => Ok(CreateDisposition::Never),
        Some(other) => Err(RestError::invalid(format!(
            "createDisposition {other} is not one of CREATE_IF_NEEDED, CREATE_NEVER"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(configuration: Value) -> Result<CopySpec, RestError> {
        copy_spec("p", configuration.as_object().expect("an object"))
    }

    #[test]
    fn reads_a_copy_with_defaults() {
        let copy = spec(json!({"copy": {
            "sourceTables": [{"datasetId": "d", "tableId": "a"}],
            "destinationTable": {"projectId": "q", "datasetId": "e", "tableId": "b"},
        }}))
        .expect("valid");
        assert_eq!(copy.source.to_string(), "p.d.a");
        assert_eq!(copy.destination.to_string(), "q.e.b");
        assert_eq!(copy.write, WriteDisposition::Empty);
        assert_eq!(copy.create, CreateDisposition::IfNeeded);
    }

    #[test]
    fn refuses_other_jobs_and_many_sources() {
        let query = spec(json!({"query": {"query": "SELECT 1"}})).expect_err("a query");
        assert!(query.message.contains("only copy jobs"), "{}", query.message);
        let t = json!({"datasetId": "d", "tableId": "a"});
        let two = spec(json!({"copy": {"sourceTables": [t, t], "destinationTable": t}})).expect_err("two");
        assert_eq!(two.status.as_u16(), 400);
        let bad = spec(json!({"copy": {"sourceTable": t, "destinationTable": t, "writeDisposition": "X"}}));
        assert!(bad.is_err());
    }
}
