//! Proto rows framed in place: each row is written once, already as an entry of
//! `ProtoRows.serialized_rows` (key, length, message), so a request's rows are one contiguous
//! slice that goes into the request as it is. This module is the one home of that framing.

use prost::encoding::{decode_varint, encoded_len_varint};

/// The key of `ProtoRows.serialized_rows` (field 1, length-delimited).
pub(crate) const ROW_KEY: u8 = 0x0A;

/// Size of a row of `len` bytes once framed.
pub(crate) fn framed_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Writes the frame header of a row of `len` bytes at `at`; returns where the row starts.
pub(crate) fn put_header(buf: &mut [u8], at: usize, len: usize) -> usize {
    buf[at] = ROW_KEY;
    let mut cursor = at + 1;
    let mut value = len as u64;
    while value >= 0x80 {
        buf[cursor] = (value as u8) | 0x80;
        value >>= 7;
        cursor += 1;
    }
    buf[cursor] = value as u8;
    cursor + 1
}

/// The framed rows of `framed`, in order: each as (start of its frame, the row's message).
/// Stops at the first malformed frame (rows are only ever framed by this module).
pub(crate) fn rows(framed: &[u8]) -> impl Iterator<Item = (usize, &[u8])> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= framed.len() || framed[at] != ROW_KEY {
            return None;
        }
        let start = at;
        let mut rest = &framed[at + 1..];
        let before = rest.len();
        let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
        let body = at + 1 + (before - rest.len());
        let end = body.checked_add(len).filter(|end| *end <= framed.len())?;
        at = end;
        Some((start, &framed[body..end]))
    })
}

/// Byte offset of framed row `index` (or the end, for `index` = the row count).
pub(crate) fn offset_of(framed: &[u8], index: usize) -> Option<usize> {
    if index == 0 {
        return Some(0);
    }
    let mut seen = 0;
    for (start, _) in rows(framed) {
        if seen == index {
            return Some(start);
        }
        seen += 1;
    }
    (seen == index).then_some(framed.len())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(rows: &[&[u8]]) -> Bytes {
        let total = rows.iter().map(|r| framed_len(r.len())).sum();
        let mut buf = vec![0u8; total];
        let mut at = 0;
        for row in rows {
            let start = put_header(&mut buf, at, row.len());
            buf[start..start + row.len()].copy_from_slice(row);
            at = start + row.len();
        }
        Bytes::from(buf)
    }

    #[test]
    fn framing_is_what_prost_writes_for_serialized_rows() {
        use prost::Message;
        let long = vec![7u8; 300];
        let rows: Vec<&[u8]> = vec![b"a", b"", &long, b"xyz"];
        let ours = frame(&rows);
        let theirs = crate::proto::ProtoRows {
            serialized_rows: rows.iter().map(|r| Bytes::copy_from_slice(r)).collect(),
        }
        .encode_to_vec();
        assert_eq!(ours.as_ref(), theirs.as_slice());
        assert_eq!(ours.len(), rows.iter().map(|r| framed_len(r.len())).sum::<usize>());
    }

    #[test]
    fn rows_and_offsets_walk_the_frames() {
        let long = vec![1u8; 200];
        let framed = frame(&[b"ab", &long, b"c"]);
        let seen: Vec<&[u8]> = rows(&framed).map(|(_, r)| r).collect();
        assert_eq!(seen, vec![&b"ab"[..], &long[..], &b"c"[..]]);
        assert_eq!(offset_of(&framed, 0), Some(0));
        assert_eq!(offset_of(&framed, 1), Some(4));
        assert_eq!(offset_of(&framed, 2), Some(4 + 3 + 200));
        assert_eq!(offset_of(&framed, 3), Some(framed.len()));
        assert_eq!(offset_of(&framed, 4), None);
    }
}
