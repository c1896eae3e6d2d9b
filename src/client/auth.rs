//! Bearer tokens for the real service from Application Default Credentials (gcp_auth).
//! Tokens are never logged and only travel over TLS.

use std::sync::Arc;

use tonic::metadata::{MetadataMap, MetadataValue};

use crate::error::{Error, Result};

/// OAuth scope of BigQuery.
const SCOPES: &[&str] = &["https://www.googleapis.com/auth/bigquery"];

/// How requests are authorized.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// Plaintext emulator: no token is sent.
    None,
    /// Application Default Credentials.
    Google(Arc<dyn gcp_auth::TokenProvider>),
}

impl Credentials {
    /// Finds Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user
    /// credentials, then the metadata server.
    pub(crate) async fn application_default() -> Result<Self> {
        let provider = gcp_auth::provider()
            .await
            .map_err(|source| Error::Credentials { source })?;
        Ok(Credentials::Google(provider))
    }

    /// Adds `authorization: Bearer ...` (marked sensitive) when credentials are in use.
    pub(crate) async fn authorize(&self, metadata: &mut MetadataMap) -> Result<()> {
        let Credentials::Google(provider) = self else {
            return Ok(());
        };
        let token = provider
            .token(SCOPES)
            .await
            .map_err(|source| Error::Credentials { source })?;
        let mut value = MetadataValue::try_from(format!("Bearer {}", token.as_str()))
            .map_err(|_| Error::Internal("access token is not a valid header value".into()))?;
        value.set_sensitive(true);
        metadata.insert("authorization", value);
        Ok(())
    }
}
