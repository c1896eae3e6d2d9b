//! What the encoder hands to the writer: the rows of one request, and the writer schema that
//! goes with a connection's first request. Both are already in their wire form, so the
//! request is assembled around them without touching a row.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use bytes::{BufMut, Bytes};

use super::framed;

/// The rows of one AppendRows request, encoded.
#[derive(Debug, Clone)]
pub struct EncodedRows {
    rows: usize,
    payload: Payload,
}

/// Encoded rows in one of the two formats AppendRows takes.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// Proto rows, framed in place as the entries of `ProtoRows.serialized_rows`: exactly the
    /// body of a `ProtoRows` message.
    Proto(Bytes),
    /// One Arrow IPC record batch message.
    Arrow(ArrowMessage),
}

/// An Arrow IPC record batch message: its pieces (metadata, then body buffers shared with
/// the batch, not copied) and the batch, kept to encode a part of it again.
#[derive(Debug, Clone)]
pub(crate) struct ArrowMessage {
    pub(crate) pieces: Arc<[Buffer]>,
    pub(crate) len: usize,
    pub(crate) batch: RecordBatch,
}

impl Payload {
    /// Size in bytes of the payload as it travels.
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Proto(framed) => framed.len(),
            Payload::Arrow(message) => message.len,
        }
    }

    /// Appends the payload's bytes to `buf`.
    pub(crate) fn put(&self, buf: &mut impl BufMut) {
        match self {
            Payload::Proto(framed) => buf.put_slice(framed),
            Payload::Arrow(message) => {
                for piece in message.pieces.iter() {
                    buf.put_slice(piece.as_slice());
                }
            }
        }
    }
}

impl EncodedRows {
    pub(crate) fn new(rows: usize, payload: Payload) -> Self {
        Self { rows, payload }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Size of the rows as they travel in the request (proto framing or the IPC message).
    pub fn bytes(&self) -> usize {
        self.payload.len()
    }

    /// True if the rows are Arrow IPC, false if proto.
    pub fn is_arrow(&self) -> bool {
        matches!(self.payload, Payload::Arrow(_))
    }

    pub(crate) fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The proto rows, one serialized message each (empty for Arrow rows).
    pub fn proto_rows(&self) -> Vec<Bytes> {
        match &self.payload {
            Payload::Proto(bytes) => framed::rows(bytes).map(|(_, row)| bytes.slice_ref(row)).collect(),
            Payload::Arrow(_) => Vec::new(),
        }
    }

    /// Calls `f` with each proto row's serialized message, in order (none for Arrow rows).
    pub fn for_each_proto_row(&self, mut f: impl FnMut(&[u8])) {
        if let Payload::Proto(bytes) = &self.payload {
            for (_, row) in framed::rows(bytes) {
                f(row);
            }
        }
    }
}

/// The writer schema of a connection, encoded once: the body of `ProtoData.writer_schema`
/// (a `ProtoSchema`) or of `ArrowData.writer_schema` (an `ArrowSchema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterSchema {
    /// An encoded `ProtoSchema` (the row descriptor).
    Proto(Bytes),
    /// An encoded `ArrowSchema` (one IPC schema message).
    Arrow(Bytes),
}

impl WriterSchema {
    /// The encoded message.
    pub(crate) fn encoded(&self) -> &Bytes {
        match self {
            WriterSchema::Proto(bytes) | WriterSchema::Arrow(bytes) => bytes,
        }
    }
}
