//! Object stores from locations: a local path, `file://`, `s3://`, `gs://` and `http(s)://`,
//! with credentials and endpoints from the environment (the `AWS_*` and `GOOGLE_*`
//! variables the `object_store` crate reads), as datafusion-cli does.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use crate::error::{Error, Result};

/// A location in an object store: the store and the path in it.
#[derive(Debug, Clone)]
pub(crate) struct StoreLocation {
    /// The store (a bucket, a local file system, an HTTP server).
    pub store: Arc<dyn ObjectStore>,
    /// The path inside the store.
    pub path: Path,
    /// The location as given, for messages.
    pub display: String,
}

/// The URL of a location: a URL with a scheme, or a local path (made absolute).
pub(crate) fn location_url(location: &str) -> Result<Url> {
    let invalid = |reason: String| Error::Checkpoint {
        location: location.to_string(),
        message: reason,
        source: None,
    };
    if location.trim().is_empty() {
        return Err(invalid("empty location".into()));
    }
    if location.contains("://") {
        return Url::parse(location).map_err(|e| invalid(format!("not a URL: {e}")));
    }
    let path = std::path::absolute(location).map_err(|e| invalid(format!("not a path: {e}")))?;
    Url::from_directory_path(&path).map_err(|()| invalid("not an absolute path".into()))
}

/// The store serving `url`'s scheme and authority (bucket or host), built from the
/// environment.
pub(crate) fn store_for_url(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let failed = |e: object_store::Error| Error::Checkpoint {
        location: url.to_string(),
        message: e.to_string(),
        source: Some(Box::new(e)),
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "file" => Arc::new(LocalFileSystem::new()),
        "s3" | "s3a" => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(failed)?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(failed)?,
        ),
        "http" | "https" => {
            let base = format!("{}://{}", url.scheme(), url.authority());
            Arc::new(HttpBuilder::new().with_url(base).build().map_err(failed)?)
        }
        other => {
            return Err(Error::Checkpoint {
                location: url.to_string(),
                message: format!("unsupported scheme '{other}': use a local path, file://, s3://, gs:// or http(s)://"),
                source: None,
            });
        }
    };
    Ok(store)
}

/// Opens a location given as a local path or a URL.
pub(crate) fn open(location: &str) -> Result<StoreLocation> {
    let url = location_url(location)?;
    let store = store_for_url(&url)?;
    let path = match url.scheme() {
        "file" => {
            let local = url.to_file_path().map_err(|()| Error::Checkpoint {
                location: location.to_string(),
                message: "not a local path".into(),
                source: None,
            })?;
            Path::from_absolute_path(&local).map_err(|e| Error::Checkpoint {
                location: location.to_string(),
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?
        }
        _ => Path::from_url_path(url.path()).map_err(|e| Error::Checkpoint {
            location: location.to_string(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?,
    };
    Ok(StoreLocation {
        store,
        path,
        display: location.trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_path_opens_as_a_file_location() {
        let location = open("/tmp/checkpoints").unwrap();
        assert_eq!(location.path.as_ref(), "tmp/checkpoints");
    }

    #[test]
    fn paths_and_urls_name_their_store() {
        assert_eq!(location_url("/a/b").unwrap().as_str(), "file:///a/b/");
        assert_eq!(open("file:///a/b/").unwrap().path.as_ref(), "a/b");
        let s3 = location_url("s3://bucket/prefix/x").unwrap();
        assert_eq!((s3.scheme(), s3.authority(), s3.path()), ("s3", "bucket", "/prefix/x"));
        let err = open("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme 'ftp'"), "{err}");
        assert!(open("").is_err());
    }
}
