//! Names of BigQuery tables and write streams.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A fully qualified BigQuery table: project, dataset and table id.
///
/// Parses `project.dataset.table`, `bigquery://project/dataset/table` and the resource
/// path `projects/p/datasets/d/tables/t`.
///
/// ```
/// use datafusion_bigquery::TableRef;
/// let t: TableRef = "my-project.sales.orders".parse().unwrap();
/// assert_eq!(t.resource_path(), "projects/my-project/datasets/sales/tables/orders");
/// assert_eq!(t, "bigquery://my-project/sales/orders".parse().unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TableRef {
    /// Google Cloud project id.
    pub project: String,
    /// Dataset id.
    pub dataset: String,
    /// Table id.
    pub table: String,
}

impl TableRef {
    /// Builds a reference from its three parts, checking that none is empty.
    pub fn new(project: &str, dataset: &str, table: &str) -> Result<Self> {
        let parts = [project, dataset, table];
        if parts.iter().any(|p| p.is_empty() || p.contains('/')) {
            return Err(Error::InvalidTableName {
                name: parts.join("."),
                reason: "project, dataset and table must be non-empty and contain no '/'".into(),
            });
        }
        Ok(Self {
            project: project.into(),
            dataset: dataset.into(),
            table: table.into(),
        })
    }

    /// Parses `dataset.table` against a default project, or any full form.
    pub fn parse_with_default_project(name: &str, project: Option<&str>) -> Result<Self> {
        let trimmed = name.trim();
        if !trimmed.contains("://") && !trimmed.starts_with("projects/") {
            let parts: Vec<&str> = trimmed.split('.').collect();
            match (parts.as_slice(), project) {
                ([dataset, table], Some(project)) => return Self::new(project, dataset, table),
                ([_, _], None) => {
                    return Err(Error::InvalidTableName {
                        name: trimmed.into(),
                        reason: "dataset.table needs a default project: set GOOGLE_CLOUD_PROJECT or the \
                                 bigquery.project option, or write project.dataset.table"
                            .into(),
                    });
                }
                _ => {}
            }
        }
        trimmed.parse()
    }

    /// The resource path used by the API: `projects/{p}/datasets/{d}/tables/{t}`.
    pub fn resource_path(&self) -> String {
        format!(
            "projects/{}/datasets/{}/tables/{}",
            self.project, self.dataset, self.table
        )
    }

    /// The resource path of the table's `_default` stream.
    pub fn default_stream(&self) -> String {
        format!("{}/streams/_default", self.resource_path())
    }
}

impl FromStr for TableRef {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidTableName {
            name: name.into(),
            reason: reason.into(),
        };
        let name = name.trim();
        if let Some(rest) = name.strip_prefix("bigquery://") {
            return match rest.trim_end_matches('/').split('/').collect::<Vec<_>>().as_slice() {
                [p, d, t] => Self::new(p, d, t),
                _ => Err(invalid("expected bigquery://project/dataset/table")),
            };
        }
        if name.starts_with("projects/") {
            return match name.split('/').collect::<Vec<_>>().as_slice() {
                ["projects", p, "datasets", d, "tables", t] => Self::new(p, d, t),
                _ => Err(invalid("expected projects/{p}/datasets/{d}/tables/{t}")),
            };
        }
        // Project ids may contain ':' (domain-scoped) but never '.', so split from the right.
        let mut parts = name.rsplitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(d), Some(p)) => Self::new(p, d, t),
            _ => Err(invalid(
                "expected project.dataset.table or bigquery://project/dataset/table",
            )),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let expected = TableRef::new("p", "d", "t").unwrap();
        for form in ["p.d.t", "bigquery://p/d/t", "projects/p/datasets/d/tables/t", " p.d.t "] {
            assert_eq!(form.parse::<TableRef>().unwrap(), expected, "{form}");
        }
        assert_eq!(
            TableRef::parse_with_default_project("d.t", Some("p")).unwrap(),
            expected
        );
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in ["t", "d.t", "bigquery://p/d", "projects/p/datasets/d", "p..t", ""] {
            let err = bad.parse::<TableRef>().unwrap_err().to_string();
            assert!(err.contains("table name"), "{bad}: {err}");
        }
        assert!(TableRef::parse_with_default_project("d.t", None).is_err());
    }
}
