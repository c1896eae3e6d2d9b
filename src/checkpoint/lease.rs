//! One runner at a time: a lease in the load's folder, taken with a conditional create.
//!
//! Leases are numbered files (`lease-<generation>.json`); the highest generation is the
//! lease in force. A run takes a free load by creating generation 1, and an expired lease by
//! creating the next generation: the store lets only one creator win. Every process of the
//! run renews the file of its generation while it works, and a process that sees a higher
//! generation has lost the lease and must not commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::folder::LoadFolder;
use super::records::{LEASE_PREFIX, LeaseRecord, lease_file, lease_generation, millis_since_epoch};
use crate::error::{Error, Result};

/// Attempts at taking a lease while other runners race for it.
const ACQUIRE_ATTEMPTS: usize = 5;

/// A lease held by this process, renewed in the background until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    folder: LoadFolder,
    generation: u64,
    run_id: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Who this process is, for lease records and messages.
fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    format!("{host} pid {}", std::process::id())
}

impl Lease {
    /// Takes (or joins, for another process of the same run) the lease of `folder` for `ttl`.
    /// Fails with [`Error::LoadLeased`] while another run holds a live lease.
    pub(crate) async fn acquire(folder: &LoadFolder, run_id: &str, ttl: Duration) -> Result<Self> {
        for _ in 0..ACQUIRE_ATTEMPTS {
            let current = current_lease(folder).await?;
            let generation = match &current {
                None => 1,
                Some((generation, record)) if record.run_id == run_id => *generation,
                Some((generation, record)) if !record.is_live(SystemTime::now()) => generation + 1,
                Some((_, record)) => {
                    return Err(Error::LoadLeased {
                        load_id: folder.load_id().to_string(),
                        owner: format!("{}, run {}", record.holder, record.run_id),
                        expires_at: record.expires_at(),
                    });
                }
            };
            let record = lease_record(run_id, ttl);
            let joined = matches!(&current, Some((g, r)) if *g == generation && r.run_id == run_id);
            let taken = if joined {
                folder.write(&lease_file(generation), &record).await?;
                true
            } else {
                folder.create(&lease_file(generation), &record).await?
            };
            if !taken {
                continue;
            }
            // Older generations are history now.
            for file in folder.files().await? {
                if lease_generation(&file).is_some_and(|g| g < generation) {
                    folder.remove(&file).await?;
                }
            }
            let lost = Arc::new(AtomicBool::new(false));
            let renewer = tokio::spawn(renew(folder.clone(), generation, run_id.to_string(), ttl, lost.clone()));
            return Ok(Self {
                folder: folder.clone(),
                generation,
                run_id: run_id.to_string(),
                lost,
                renewer,
            });
        }
        Err(Error::Checkpoint {
            location: folder.display().to_string(),
            message: "could not take the load's lease: other runners kept taking it".into(),
            source: None,
        })
    }

    /// Fails if another run has taken the lease over (this one expired unrenewed).
    pub(crate) async fn check(&self) -> Result<()> {
        let current = current_lease(&self.folder).await?;
        match current {
            Some((generation, record)) if generation == self.generation && record.run_id == self.run_id => {
                if self.lost.load(Ordering::SeqCst) {
                    return Err(self.lost_error(&record));
                }
                Ok(())
            }
            Some((_, record)) => Err(self.lost_error(&record)),
            None => Err(Error::Checkpoint {
                location: self.folder.display().to_string(),
                message: "the load's lease vanished; not committing".into(),
                source: None,
            }),
        }
    }

    fn lost_error(&self, record: &LeaseRecord) -> Error {
        Error::LoadLeased {
            load_id: self.folder.load_id().to_string(),
            owner: format!("{}, run {}", record.holder, record.run_id),
            expires_at: record.expires_at(),
        }
    }

    /// Gives the lease up, so that a next run need not wait for it to expire.
    pub(crate) async fn release(self) -> Result<()> {
        self.renewer.abort();
        if let Some((generation, record)) = current_lease(&self.folder).await?
            && generation == self.generation
            && record.run_id == self.run_id
        {
            self.folder.remove(&lease_file(generation)).await?;
        }
        Ok(())
    }
}

fn lease_record(run_id: &str, ttl: Duration) -> LeaseRecord {
    LeaseRecord {
        run_id: run_id.to_string(),
        holder: holder(),
        expires_at_ms: millis_since_epoch(SystemTime::now() + ttl),
    }
}

/// The lease in force: the highest generation, with its record.
async fn current_lease(folder: &LoadFolder) -> Result<Option<(u64, LeaseRecord)>> {
    let highest = folder
        .files()
        .await?
        .iter()
        .filter(|f| f.starts_with(LEASE_PREFIX))
        .filter_map(|f| lease_generation(f))
        .max();
    let Some(generation) = highest else {
        return Ok(None);
    };
    // A lease deleted between the listing and the read is free again.
    Ok(folder
        .read::<LeaseRecord>(&lease_file(generation))
        .await?
        .map(|record| (generation, record)))
}

/// Renews the lease every third of its time to live, until it is lost.
async fn renew(folder: LoadFolder, generation: u64, run_id: String, ttl: Duration, lost: Arc<AtomicBool>) {
    let period = (ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        match current_lease(&folder).await {
            Ok(Some((g, record))) if g == generation && record.run_id == run_id => {
                if let Err(e) = folder.write(&lease_file(generation), &lease_record(&run_id, ttl)).await {
                    tracing::warn!(load = folder.load_id(), error = %e, "could not renew the load's lease");
                }
            }
            Ok(_) => {
                tracing::warn!(
                    load = folder.load_id(),
                    "the load's lease was taken over; this run will not commit"
                );
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(load = folder.load_id(), error = %e, "could not read the load's lease"),
        }
    }
}
