//! Who is calling: the user agent, the AppendRows trace id, and the quota project that
//! Application Default Credentials name.

use std::path::PathBuf;

/// The user agent of every call: the crate's name and version.
pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// Variable naming the quota project, as Google's client libraries read it.
const QUOTA_PROJECT_VARIABLE: &str = "GOOGLE_CLOUD_QUOTA_PROJECT";

/// The trace id sent on the first AppendRows request of each connection:
/// `datafusion-bigquery:<version>`, then the caller's own id (`bigquery.trace_id`) after a
/// space, as Google's clients form theirs (`java-streamwriter:<version> <id>`).
///
/// ```
/// use datafusion_bigquery::client::trace_id;
/// assert!(trace_id(None).starts_with("datafusion-bigquery:"));
/// assert!(trace_id(Some("nightly:42")).ends_with(" nightly:42"));
/// ```
pub fn trace_id(suffix: Option<&str>) -> String {
    let base = concat!(env!("CARGO_PKG_NAME"), ":", env!("CARGO_PKG_VERSION"));
    match suffix.filter(|s| !s.is_empty()) {
        Some(suffix) => format!("{base} {suffix}"),
        None => base.to_string(),
    }
}

/// The quota project the environment names: `GOOGLE_CLOUD_QUOTA_PROJECT`, else the
/// `quota_project_id` of the Application Default Credentials file
/// (`GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's `application_default_credentials.json`).
pub(crate) fn quota_project_from_environment() -> Option<String> {
    if let Ok(project) = std::env::var(QUOTA_PROJECT_VARIABLE)
        && !project.is_empty()
    {
        return Some(project);
    }
    let file = credentials_file()?;
    quota_project_in(&std::fs::read(file).ok()?)
}

/// `quota_project_id` of a credentials file's JSON.
fn quota_project_in(json: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    value
        .get("quota_project_id")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// Where Application Default Credentials are read from.
fn credentials_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        return Some(PathBuf::from(path));
    }
    let config = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config").join("gcloud"),
    };
    Some(config.join("application_default_credentials.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_quota_project_of_a_credentials_file() {
        let user = br#"{"type":"authorized_user","client_id":"x","quota_project_id":"billing-project"}"#;
        assert_eq!(quota_project_in(user).as_deref(), Some("billing-project"));
        assert_eq!(quota_project_in(br#"{"type":"service_account"}"#), None);
        assert_eq!(quota_project_in(b"not json"), None);
    }

    #[test]
    fn the_user_agent_names_the_crate() {
        assert!(USER_AGENT.starts_with("datafusion-bigquery/"));
    }
}
