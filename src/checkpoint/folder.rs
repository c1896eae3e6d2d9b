//! A checkpoint folder in an object store, and the folder of one load in it.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{COMMIT_FILE, CommitRecord, LOAD_FILE, LoadRecord, PARTITION_PREFIX, PartitionCheckpoint};
use crate::error::{Error, Result};
use crate::object_storage::{self, StoreLocation};

/// A folder of checkpointed loads (`bigquery.checkpoint`): a local path or an object store URL.
///
/// ```no_run
/// # async fn example() -> datafusion_bigquery::Result<()> {
/// use datafusion_bigquery::checkpoint::CheckpointStore;
/// let store = CheckpointStore::open("s3://my-bucket/bigquery-loads")?;
/// for load in store.list().await? {
///     println!("{} committed: {}", load.load_id, load.commit.is_some());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    location: StoreLocation,
}

/// What a checkpoint folder says about one load.
#[derive(Debug, Clone)]
pub struct LoadInfo {
    /// The load's id.
    pub load_id: String,
    /// Its identity, if recorded.
    pub record: Option<LoadRecord>,
    /// Its commit, if it committed.
    pub commit: Option<CommitRecord>,
    /// Its workers' checkpoints.
    pub partitions: Vec<PartitionCheckpoint>,
}

impl CheckpointStore {
    /// Opens a checkpoint folder (it need not exist yet).
    pub fn open(location: &str) -> Result<Self> {
        Ok(Self {
            location: object_storage::open(location)?,
        })
    }

    /// The folder as given.
    pub fn display(&self) -> &str {
        &self.location.display
    }

    /// The folder of one load.
    pub fn load(&self, load_id: &str) -> Result<LoadFolder> {
        if load_id.is_empty() || !load_id.chars().all(is_id_char) {
            return Err(Error::InvalidOption {
                key: "bigquery.load_id".into(),
                value: load_id.into(),
                reason: "a load id is made of letters, digits, '.', '-' and '_'".into(),
            });
        }
        Ok(LoadFolder {
            store: self.location.store.clone(),
            root: self.location.path.clone().join(load_id),
            display: format!("{}/{load_id}", self.location.display),
            load_id: load_id.to_string(),
        })
    }

    /// Every load in the folder, by id.
    pub async fn list(&self) -> Result<Vec<LoadInfo>> {
        let listing = self
            .location
            .store
            .list_with_delimiter(Some(&self.location.path))
            .await
            .map_err(|e| failed(&self.location.display, e))?;
        let mut ids: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|id| id.chars().all(is_id_char))
            .collect();
        ids.sort();
        let mut loads = Vec::with_capacity(ids.len());
        for id in ids {
            let folder = self.load(&id)?;
            loads.push(LoadInfo {
                record: folder.read(LOAD_FILE).await?,
                commit: folder.read(COMMIT_FILE).await?,
                partitions: folder.partitions().await?,
                load_id: id,
            });
        }
        Ok(loads)
    }

    /// Deletes a load's folder; returns the number of files deleted.
    pub async fn delete(&self, load_id: &str) -> Result<usize> {
        self.load(load_id)?.delete_all().await
    }
}

/// True for the characters a load id is made of: safe in every object store and file system.
pub(crate) fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// The folder of one load.
#[derive(Debug, Clone)]
pub struct LoadFolder {
    store: Arc<dyn ObjectStore>,
    root: Path,
    display: String,
    load_id: String,
}

impl LoadFolder {
    /// The load's id.
    pub fn load_id(&self) -> &str {
        &self.load_id
    }

    /// The folder, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    fn location(&self, file: &str) -> String {
        format!("{}/{file}", self.display)
    }

    /// Reads a JSON file; `None` if it does not exist.
    pub(crate) async fn read<T: DeserializeOwned>(&self, file: &str) -> Result<Option<T>> {
        let path = self.root.clone().join(file);
        let bytes = match self.store.get(&path).await {
            Ok(found) => found.bytes().await.map_err(|e| failed(&self.location(file), e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(failed(&self.location(file), e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Checkpoint {
            location: self.location(file),
            message: format!("not a checkpoint file: {e}"),
            source: Some(Box::new(e)),
        })
    }

    /// Writes a JSON file, replacing it.
    pub(crate) async fn write<T: Serialize>(&self, file: &str, value: &T) -> Result<()> {
        self.put(file, value, PutMode::Overwrite).await.map(|_| ())
    }

    /// Writes a JSON file only if it does not exist; false if it did.
    pub(crate) async fn create<T: Serialize>(&self, file: &str, value: &T) -> Result<bool> {
        self.put(file, value, PutMode::Create).await
    }

    async fn put<T: Serialize>(&self, file: &str, value: &T, mode: PutMode) -> Result<bool> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        let payload = PutPayload::from(Bytes::from(body));
        match self
            .store
            .put_opts(&self.root.clone().join(file), payload, options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(failed(&self.location(file), e)),
        }
    }

    /// Deletes a file; a missing one is not an error.
    pub(crate) async fn remove(&self, file: &str) -> Result<()> {
        match self.store.delete(&self.root.clone().join(file)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed(&self.location(file), e)),
        }
    }

    /// The names of the folder's files.
    pub(crate) async fn files(&self) -> Result<Vec<String>> {
        let listed: Vec<_> = self
            .store
            .list(Some(&self.root))
            .try_collect()
            .await
            .map_err(|e| failed(&self.display, e))?;
        let mut names: Vec<String> = listed
            .iter()
            .filter_map(|meta| meta.location.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every partition checkpoint, by partition.
    pub async fn partitions(&self) -> Result<Vec<PartitionCheckpoint>> {
        let mut found = Vec::new();
        for file in self.files().await? {
            if file.starts_with(PARTITION_PREFIX)
                && let Some(checkpoint) = self.read::<PartitionCheckpoint>(&file).await?
            {
                found.push(checkpoint);
            }
        }
        found.sort_by_key(|c| c.partition);
        Ok(found)
    }

    /// Deletes every file of the load.
    pub async fn delete_all(&self) -> Result<usize> {
        let files = self.files().await?;
        for file in &files {
            self.remove(file).await?;
        }
        Ok(files.len())
    }
}

fn failed(location: &str, error: object_store::Error) -> Error {
    Error::Checkpoint {
        location: location.to_string(),
        message: error.to_string(),
        source: Some(Box::new(error)),
    }
}
