//! An order-independent digest of serialized rows: how many, how many bytes, and a wrapping
//! sum of a 64-bit hash of each. Two loads digest alike when they delivered the same rows the
//! same number of times, whatever the order, so a test can check exactly-once delivery without
//! the server keeping the rows.

/// Rows, bytes and the sum of per-row hashes of a set of serialized rows.
///
/// ```
/// use datafusion_bigquery::server::RowDigest;
///
/// let mut a = RowDigest::default();
/// a.add(b"first");
/// a.add(b"second");
/// let mut b = RowDigest::default();
/// b.add(b"second");
/// b.add(b"first");
/// assert_eq!(a, b); // order does not matter
/// b.add(b"first");
/// assert_ne!(a, b); // a duplicate does
/// assert_eq!(a.rows, 2);
/// assert_eq!(a.bytes, 11);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RowDigest {
    /// Number of rows.
    pub rows: u64,
    /// Total size of the serialized rows, without framing.
    pub bytes: u64,
    /// Wrapping sum of a 64-bit hash of each row.
    pub checksum: u64,
}

impl RowDigest {
    /// Adds one serialized row.
    pub fn add(&mut self, row: &[u8]) {
        self.rows += 1;
        self.bytes += row.len() as u64;
        self.checksum = self.checksum.wrapping_add(row_hash(row));
    }

    /// Counts `rows` rows of `bytes` bytes without hashing them (the checksum is unchanged).
    pub fn count(&mut self, rows: u64, bytes: u64) {
        self.rows += rows;
        self.bytes += bytes;
    }

    /// Adds every row of `rows`.
    pub fn add_all<'a>(&mut self, rows: impl IntoIterator<Item = &'a [u8]>) {
        for row in rows {
            self.add(row);
        }
    }

    /// Adds another digest's rows.
    pub fn merge(&mut self, other: &RowDigest) {
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.checksum = self.checksum.wrapping_add(other.checksum);
    }
}

/// A fast, well-mixed 64-bit hash of a byte string (not cryptographic): eight bytes at a time
/// through a multiply-rotate round, then a final avalanche with the length.
pub(super) fn row_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(29);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(29);
    }
    finish(h ^ bytes.len() as u64)
}

/// The SplitMix64 finalizer: every input bit affects every output bit.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        let base = row_hash(b"0123456789abcdef-tail");
        for i in 0..21 {
            let mut changed = b"0123456789abcdef-tail".to_vec();
            changed[i] ^= 1;
            assert_ne!(row_hash(&changed), base, "byte {i}");
        }
        assert_ne!(row_hash(b"ab"), row_hash(b"ab\0"));
        assert_ne!(row_hash(b""), row_hash(b"\0"));
    }

    #[test]
    fn digest_counts_rows_and_bytes_and_merges() {
        let mut a = RowDigest::default();
        a.add_all([&b"x"[..], b"yz"]);
        let mut b = RowDigest::default();
        b.add(b"w");
        let mut merged = a;
        merged.merge(&b);
        let mut all = RowDigest::default();
        all.add_all([&b"w"[..], b"yz", b"x"]);
        assert_eq!(merged, all);
        assert_eq!((all.rows, all.bytes), (3, 4));
    }
}
