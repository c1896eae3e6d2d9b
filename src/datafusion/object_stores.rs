//! Sources on object storage: a registry that builds a store for `s3://`, `gs://` and
//! `http(s)://` locations the first time a query names one, with credentials and endpoints
//! from the environment (as datafusion-cli does).

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use url::Url;

use crate::object_storage::store_for_url;

/// An object store registry that creates stores on first use from the environment.
///
/// ```
/// use std::sync::Arc;
/// use datafusion::execution::runtime_env::RuntimeEnvBuilder;
/// use datafusion_bigquery::datafusion::EnvObjectStoreRegistry;
/// let runtime = RuntimeEnvBuilder::new()
///     .with_object_store_registry(Arc::new(EnvObjectStoreRegistry::default()))
///     .build_arc()
///     .unwrap();
/// # let _ = runtime;
/// ```
#[derive(Debug, Default)]
pub struct EnvObjectStoreRegistry {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvObjectStoreRegistry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        if !matches!(url.scheme(), "s3" | "s3a" | "gs" | "http" | "https") {
            return self.known.get_store(url);
        }
        let store = store_for_url(url).map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}
