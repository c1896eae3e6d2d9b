//! Bearer tokens for the real service from Application Default Credentials (gcp_auth).
//! Tokens are never logged and only travel over TLS.

use std::sync::Arc;

use tonic::metadata::{MetadataMap, MetadataValue};

use crate::error::{Error, Result};

/// OAuth scope of BigQuery.
const SCOPES: &[&str] = &["https://www.googleapis.com/auth/bigquery"];

/// The variable naming a service-account key file.
const KEY_FILE_VARIABLE: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// How requests are authorized.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// Plaintext emulator: no token is sent.
    None,
    /// Application Default Credentials, for one endpoint, found on first use.
    Google {
        /// Gives and refreshes tokens, once found.
        provider: Arc<tokio::sync::OnceCell<Arc<dyn gcp_auth::TokenProvider>>>,
        /// The endpoint the tokens are for, for error messages.
        endpoint: String,
    },
}

impl Credentials {
    /// Finds Application Default Credentials for `endpoint`: a service-account key named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application-default credentials file, the
    /// metadata server, then the `gcloud` CLI. The error says what each source answered.
    pub(crate) async fn application_default(endpoint: &str) -> Result<Self> {
        let credentials = Self::application_default_on_first_use(endpoint);
        if let Credentials::Google { provider, endpoint } = &credentials {
            provider.get_or_try_init(|| find(endpoint)).await?;
        }
        Ok(credentials)
    }

    /// [`Credentials::application_default`], looked for at the first request instead of now
    /// (a plan decoded on a cluster's executor finds its own).
    pub(crate) fn application_default_on_first_use(endpoint: &str) -> Self {
        Credentials::Google {
            provider: Arc::new(tokio::sync::OnceCell::new()),
            endpoint: endpoint.to_string(),
        }
    }

    /// True when requests carry Google credentials (TLS endpoints).
    pub(crate) fn is_google(&self) -> bool {
        matches!(self, Credentials::Google { .. })
    }

    /// Adds `authorization: Bearer ...` (marked sensitive) when credentials are in use.
    pub(crate) async fn authorize(&self, metadata: &mut MetadataMap) -> Result<()> {
        let Some(header) = self.authorization().await? else {
            return Ok(());
        };
        let mut value = MetadataValue::try_from(header)
            .map_err(|_| Error::Internal("access token is not a valid header value".into()))?;
        value.set_sensitive(true);
        metadata.insert("authorization", value);
        Ok(())
    }

    /// The `authorization` header's value (`Bearer ...`), or `None` without credentials.
    /// Never log it.
    pub(crate) async fn authorization(&self) -> Result<Option<String>> {
        let Credentials::Google { provider, endpoint } = self else {
            return Ok(None);
        };
        let provider = provider.get_or_try_init(|| find(endpoint)).await?;
        let token = provider.token(SCOPES).await.map_err(|source| Error::Credentials {
            endpoint: endpoint.clone(),
            tried: format!("the credentials found gave no access token: {}", describe(&source)),
            source,
        })?;
        Ok(Some(format!("Bearer {}", token.as_str())))
    }
}

/// Finds Application Default Credentials; the error says what each source answered.
async fn find(endpoint: &str) -> Result<Arc<dyn gcp_auth::TokenProvider>> {
    gcp_auth::provider().await.map_err(|source| Error::Credentials {
        endpoint: endpoint.to_string(),
        tried: sources_tried(&source, std::env::var_os(KEY_FILE_VARIABLE).is_some()),
        source,
    })
}

/// Which sources of Application Default Credentials were tried and what each answered.
fn sources_tried(error: &gcp_auth::Error, key_file_set: bool) -> String {
    match error {
        gcp_auth::Error::NoAuthMethod(gcloud, metadata, adc_file) => {
            let key_file = if key_file_set { "set but not used" } else { "not set" };
            format!(
                "tried {KEY_FILE_VARIABLE} ({key_file}); gcloud's application-default credentials file ({}); \
                 the metadata server ({}); the gcloud CLI ({}). Run `gcloud auth application-default login`, \
                 or set {KEY_FILE_VARIABLE} to a service-account key file",
                describe(adc_file),
                describe(metadata),
                describe(gcloud)
            )
        }
        // The key file named by the variable is read first; its failure ends the search.
        other if key_file_set => format!(
            "the service-account key file named by {KEY_FILE_VARIABLE} could not be used: {}",
            describe(other)
        ),
        other => describe(other),
    }
}

/// An error and its causes on one line, each cause once (gcp_auth's messages often
/// include their source already).
fn describe(error: &gcp_auth::Error) -> String {
    crate::error::error_chain(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_source_tried() {
        let error = gcp_auth::Error::NoAuthMethod(
            Box::new(gcp_auth::Error::Str("running `gcloud` command failed")),
            Box::new(gcp_auth::Error::Str("metadata server not found")),
            Box::new(gcp_auth::Error::Str("no application default credentials file")),
        );
        let text = sources_tried(&error, false);
        assert!(
            text.starts_with("tried GOOGLE_APPLICATION_CREDENTIALS (not set); "),
            "{text}"
        );
        for part in [
            "application-default credentials file (no application default credentials file)",
            "metadata server (metadata server not found)",
            "gcloud CLI (running `gcloud` command failed)",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        let bad_key = gcp_auth::Error::Str("invalid key");
        assert_eq!(
            sources_tried(&bad_key, true),
            "the service-account key file named by GOOGLE_APPLICATION_CREDENTIALS could not be used: invalid key"
        );
    }
}
