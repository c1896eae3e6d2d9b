//! Table bodies of tables.insert and tables.patch: the schema, checked, and the metadata.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::errors::RestError;
use crate::proto::{TableFieldSchema, TableSchema};
use crate::schema::parse_json_schema;
use crate::server::catalog::{TableMeta, TablePatch};
use crate::table_ref::TableRef;

/// Parses a request body as a JSON object.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, RestError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(RestError::invalid("the request body must be a JSON object")),
        Err(e) => Err(RestError::invalid(format!("invalid JSON in the request body: {e}"))),
    }
}

/// Checks an id of a table: letters, digits, `_` and `-`, 1 to 1024 characters.
pub(crate) fn check_table_id(id: &str) -> Result<(), RestError> {
    let valid =
        !id.is_empty() && id.chars().count() <= 1024 && id.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(RestError::invalid(format!(
            "Invalid table ID \"{id}\": use letters, digits, underscores and dashes (at most 1024)"
        )))
    }
}

/// The table a tables.insert body names, under the dataset of its path.
pub(crate) fn insert_target(project: &str, dataset: &str, body: &Map<String, Value>) -> Result<TableRef, RestError> {
    let reference = body
        .get("tableReference")
        .and_then(Value::as_object)
        .ok_or_else(|| RestError::invalid("tableReference is required"))?;
    let part = |key: &str| reference.get(key).and_then(Value::as_str);
    let table_id = part("tableId").ok_or_else(|| RestError::invalid("tableReference.tableId is required"))?;
    for (key, expected) in [("projectId", project), ("datasetId", dataset)] {
        if let Some(given) = part(key)
            && given != expected
        {
            return Err(RestError::invalid(format!(
                "tableReference.{key} {given:?} does not match {expected:?} of the request path"
            )));
        }
    }
    check_table_id(table_id)?;
    TableRef::new(project, dataset, table_id).map_err(|e| RestError::invalid(e.to_string()))
}

/// The schema of a body: required, valid, with fields, no two columns of one name.
pub(crate) fn schema(body: &Map<String, Value>) -> Result<TableSchema, RestError> {
    let value = match body.get("schema") {
        None | Some(Value::Null) => return Err(RestError::invalid("the table has no schema; give schema.fields")),
        Some(value) => value,
    };
    let schema = parse_json_schema(&value.to_string()).map_err(RestError::invalid)?;
    if schema.fields.is_empty() {
        return Err(RestError::invalid("the schema has no fields"));
    }
    check_names(&schema.fields, "")?;
    Ok(schema)
}

/// No two columns at one level share a name (names are case-insensitive).
fn check_names(fields: &[TableFieldSchema], parent: &str) -> Result<(), RestError> {
    let mut seen = HashSet::new();
    for field in fields {
        if field.name.is_empty() {
            return Err(RestError::invalid(format!("a column of {parent:?} has no name")));
        }
        if !seen.insert(field.name.to_ascii_lowercase()) {
            return Err(RestError::invalid(format!(
                "Field {}{} already exists in schema",
                parent, field.name
            )));
        }
        check_names(&field.fields, &format!("{parent}{}.", field.name))?;
    }
    Ok(())
}

/// The metadata of a tables.insert body (null fields are absent).
pub(crate) fn new_meta(body: &Map<String, Value>) -> Result<TableMeta, RestError> {
    let given = |key: &str| body.get(key).filter(|v| !v.is_null());
    Ok(TableMeta {
        description: given("description").map(|v| text("description", v)).transpose()?,
        labels: given("labels").map(labels).transpose()?.unwrap_or_default(),
        expiration_ms: given("expirationTime").map(millis).transpose()?,
        time_partitioning: given("timePartitioning")
            .map(|v| object("timePartitioning", v))
            .transpose()?,
        range_partitioning: given("rangePartitioning")
            .map(|v| object("rangePartitioning", v))
            .transpose()?,
        clustering: given("clustering").map(clustering).transpose()?.flatten(),
        ..TableMeta::new()
    })
}

/// The changes of a tables.patch body: a field given replaces, a null one clears.
pub(crate) fn patch(body: &Map<String, Value>) -> Result<TablePatch, RestError> {
    fn change<T>(
        body: &Map<String, Value>,
        key: &str,
        parse: impl Fn(&Value) -> Result<T, RestError>,
    ) -> Result<Option<Option<T>>, RestError> {
        match body.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(value) => parse(value).map(|v| Some(Some(v))),
        }
    }
    Ok(TablePatch {
        schema: match body.get("schema") {
            None | Some(Value::Null) => None,
            Some(_) => Some(schema(body)?),
        },
        description: change(body, "description", |v| text("description", v))?,
        labels: change(body, "labels", labels)?.map(Option::unwrap_or_default),
        expiration_ms: change(body, "expirationTime", millis)?,
        time_partitioning: change(body, "timePartitioning", |v| object("timePartitioning", v))?,
        range_partitioning: change(body, "rangePartitioning", |v| object("rangePartitioning", v))?,
        clustering: change(body, "clustering", clustering)?.map(Option::flatten),
    })
}

fn text(key: &str, value: &Value) -> Result<String, RestError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| RestError::invalid(format!("{key} must be a string")))
}

fn object(key: &str, value: &Value) -> Result<Value, RestError> {
    if value.is_object() {
        Ok(value.clone())
    } else {
        Err(RestError::invalid(format!("{key} must be an object")))
    }
}

/// Labels: string values; a null value removes the label.
fn labels(value: &Value) -> Result<BTreeMap<String, String>, RestError> {
    let object = value
        .as_object()
        .ok_or_else(|| RestError::invalid("labels must be an object of strings"))?;
    let mut out = BTreeMap::new();
    for (key, value) in object {
        match value {
            Value::Null => {}
            Value::String(text) => {
                out.insert(key.clone(), text.clone());
            }
            _ => {
                return Err(RestError::invalid(format!(
                    "the value of label {key:?} must be a string"
                )));
            }
        }
    }
    Ok(out)
}

/// Milliseconds since the epoch, as a string (as the API writes them) or a number.
fn millis(value: &Value) -> Result<i64, RestError> {
    let parsed = match value {
        Value::String(text) => text.trim().parse::<i64>().ok(),
        Value::Number(number) => number.as_i64(),
        _ => None,
    };
    parsed.ok_or_else(|| RestError::invalid(format!("expirationTime {value} is not milliseconds since the epoch")))
}

/// `clustering: {fields: [...]}`; no fields is no clustering.
fn clustering(value: &Value) -> Result<Option<Vec<String>>, RestError> {
    let invalid = || RestError::invalid("clustering must be {\"fields\": [column names]}");
    let fields = match value.as_object().ok_or_else(invalid)?.get("fields") {
        None | Some(Value::Null) => return Ok(None),
        Some(fields) => fields.as_array().ok_or_else(invalid)?,
    };
    let names = fields
        .iter()
        .map(|f| f.as_str().map(str::to_string).ok_or_else(invalid))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!names.is_empty()).then_some(names))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn refuses_missing_empty_and_duplicate_schemas() {
        for bad in [
            json!({}),
            json!({"schema": null}),
            json!({"schema": {"fields": []}}),
            json!({"schema": {"fields": [{"name": "a", "type": "INT64"}, {"name": "A", "type": "STRING"}]}}),
            json!({"schema": {"fields": [{"name": "a", "type": "NOPE"}]}}),
        ] {
            let error = schema(&body(bad.clone())).expect_err(&bad.to_string());
            assert_eq!(error.status.as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let changes = patch(&body(json!({
            "description": null,
            "labels": {"a": "1", "b": null},
            "expirationTime": "123",
        })))
        .expect("valid");
        assert_eq!(changes.description, Some(None));
        assert_eq!(
            changes.labels,
            Some(BTreeMap::from([("a".to_string(), "1".to_string())]))
        );
        assert_eq!(changes.expiration_ms, Some(Some(123)));
        assert_eq!(changes.clustering, None);
        assert!(changes.schema.is_none());
    }

    #[test]
    fn insert_target_checks_the_reference() {
        let ok = insert_target("p", "d", &body(json!({"tableReference": {"tableId": "t_1"}}))).expect("valid");
        assert_eq!(ok.to_string(), "p.d.t_1");
        for bad in [
            json!({}),
            json!({"tableReference": {"projectId": "q", "tableId": "t"}}),
            json!({"tableReference": {"tableId": "a.b"}}),
        ] {
            assert!(insert_target("p", "d", &body(bad.clone())).is_err(), "{bad}");
        }
    }
}
