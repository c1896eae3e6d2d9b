//! Checkpointed loads (`bigquery.checkpoint`): each worker records in a folder (a local path
//! or an object store) the stream it writes and the rows the service acknowledged, so a load
//! that died resumes where it stopped instead of starting over, and a load run again after
//! its commit writes nothing.
//!
//! Layout of a checkpoint folder: one folder per load id, holding `load.json` (the input's
//! fingerprint), `partition-<n>-<plan>.json` (one per worker), `lease-<generation>.json` (the run
//! in charge) and, once committed, `commit.json`. A pending stream keeps its uncommitted rows
//! for 24 hours: a resume later than that finds the stream gone and starts its partition over.

mod folder;
mod lease;
mod records;
mod resumable;
mod run;
mod worker;

pub(crate) use folder::is_id_char;
pub use folder::{CheckpointStore, LoadInfo};
pub(crate) use records::{CommitRecord, parse_rfc3339};
pub(crate) use run::{LoadIdentity, OpenRun, RunSettings, RunStart, start_run};
pub(crate) use worker::Worker;
pub(crate) use worker::write_stream;

use sha2::{Digest, Sha256};

/// The hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Bytes as lower-case hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The load id derived from a table and an input fingerprint: the table's name and the
/// first 16 hex digits of their hash, so the same INSERT over the same input is the same load.
pub(crate) fn derived_load_id(table: &str, fingerprint: &str) -> String {
    let hash = sha256_hex(&format!("{table}\n{fingerprint}"));
    let short: String = table
        .split('.')
        .skip(1)
        .collect::<Vec<_>>()
        .join(".")
        .chars()
        .map(|c| if folder::is_id_char(c) { c } else { '_' })
        .collect();
    format!("{short}-{}", &hash[..16])
}

/// A fresh run id: time and process, unique enough to tell runs apart.
pub(crate) fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_load_ids_name_the_table_and_hash_the_input() {
        let id = derived_load_id("p.sales.orders", "abc");
        assert!(id.starts_with("sales.orders-") && id.len() == "sales.orders-".len() + 16);
        assert_eq!(id, derived_load_id("p.sales.orders", "abc"));
        assert_ne!(id, derived_load_id("p.sales.orders", "abd"));
    }
}
