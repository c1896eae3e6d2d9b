//! The producer side shared by both clients: one thread per stream reads its share of the
//! Parquet file, converts it into requests of the client's format and hands them over through
//! a bounded channel, so reading and converting overlap with the requests in flight.

use crate::source::{Share, Source};
use anyhow::{Result, anyhow};
use arrow::record_batch::RecordBatch;
use std::thread;
use tokio::sync::mpsc;

/// One append request's payload and how many rows it carries.
pub struct Request<P> {
    /// What the client sends.
    pub payload: P,
    /// Rows in `payload`.
    pub rows: u64,
}

/// Turns Parquet batches into requests of about a target size.
pub trait Packer: Send + 'static {
    /// What one request carries.
    type Payload: Send + 'static;

    /// Adds a batch; returns the requests that are now full.
    fn push(&mut self, batch: RecordBatch) -> Result<Vec<Request<Self::Payload>>>;

    /// Returns the last, partly filled request, if any.
    fn finish(&mut self) -> Result<Option<Request<Self::Payload>>>;
}

/// Receives the requests of one stream; an `Err` ends the stream's load.
pub type Requests<P> = mpsc::Receiver<Result<Request<P>>>;

/// Starts a thread that packs `share` of `source` into requests; at most `ahead` requests
/// wait in the channel for the writer.
pub fn produce<K: Packer>(source: &Source, share: Share, mut packer: K, ahead: usize) -> Requests<K::Payload> {
    let (tx, rx) = mpsc::channel(ahead.max(1));
    let source = source.clone();
    thread::spawn(move || {
        if let Err(error) = pack_share(&source, &share, &mut packer, &tx) {
            // The receiver may be gone already; then nobody needs the error.
            let _ = tx.blocking_send(Err(error));
        }
    });
    rx
}

/// Reads every batch of `share`, packs it and sends the requests; stops early when the
/// receiver has gone.
fn pack_share<K: Packer>(
    source: &Source,
    share: &Share,
    packer: &mut K,
    tx: &mpsc::Sender<Result<Request<K::Payload>>>,
) -> Result<()> {
    let send = |request| {
        tx.blocking_send(Ok(request))
            .map_err(|_| anyhow!("the writer stopped taking requests"))
    };
    for batch in source.read(share)? {
        for request in packer.push(batch?)? {
            send(request)?;
        }
    }
    if let Some(request) = packer.finish()? {
        send(request)?;
    }
    Ok(())
}
