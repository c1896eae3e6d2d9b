//! The AppendRows request as it is sent: its fields around rows that are already encoded
//! (proto rows framed in place, or an Arrow IPC message), written into the call's buffer
//! with one copy of the rows and no per-row work. A codec of our own does this in place of
//! prost's, which would copy each row into the message one by one.

use bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

use crate::encode::{Payload, WriterSchema};
use crate::proto::AppendRowsResponse;

/// Field numbers of `AppendRowsRequest` and of the messages inside it.
mod field {
    pub(super) const WRITE_STREAM: u32 = 1;
    pub(super) const OFFSET: u32 = 2;
    pub(super) const PROTO_ROWS: u32 = 4;
    pub(super) const ARROW_ROWS: u32 = 5;
    pub(super) const TRACE_ID: u32 = 6;
    pub(super) const DEFAULT_MISSING_VALUE_INTERPRETATION: u32 = 8;
    /// `ProtoData.writer_schema`, `ArrowData.writer_schema`.
    pub(super) const WRITER_SCHEMA: u32 = 1;
    /// `ProtoData.rows`, `ArrowData.rows`.
    pub(super) const ROWS: u32 = 2;
    /// `Int64Value.value`, `ArrowRecordBatch.serialized_record_batch`.
    pub(super) const FIRST: u32 = 1;
}

/// One AppendRows request.
#[derive(Debug, Clone)]
pub(crate) struct AppendRequest {
    pub(crate) write_stream: String,
    /// Explicit offset (`None` on the `_default` stream).
    pub(crate) offset: Option<i64>,
    /// The writer schema, on a connection's first request (and on resends).
    pub(crate) writer_schema: Option<WriterSchema>,
    pub(crate) rows: Payload,
    /// Sent on a connection's first request; empty otherwise.
    pub(crate) trace_id: String,
    /// `default_missing_value_interpretation` (0: unset).
    pub(crate) missing_values: i32,
}

/// Size of a length-delimited field of `len` bytes (every field here has a one-byte key).
fn delimited_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_delimited_header(buf: &mut impl BufMut, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

impl AppendRequest {
    /// Size of `Int64Value { value: offset }`.
    fn offset_body_len(offset: i64) -> usize {
        if offset == 0 {
            0
        } else {
            1 + encoded_len_varint(offset as u64)
        }
    }

    /// Size of the `ProtoData` or `ArrowData` message.
    fn data_len(&self) -> usize {
        let schema = self
            .writer_schema
            .as_ref()
            .map_or(0, |s| delimited_len(s.encoded().len()));
        let rows = match &self.rows {
            Payload::Proto(framed) => framed.len(),
            // ArrowRecordBatch { serialized_record_batch = 1 }
            Payload::Arrow(message) => delimited_len(message.len),
        };
        schema + delimited_len(rows)
    }

    /// Size of the encoded request.
    pub(crate) fn encoded_len(&self) -> usize {
        let mut len = 0;
        if !self.write_stream.is_empty() {
            len += delimited_len(self.write_stream.len());
        }
        if let Some(offset) = self.offset {
            len += delimited_len(Self::offset_body_len(offset));
        }
        len += delimited_len(self.data_len());
        if !self.trace_id.is_empty() {
            len += delimited_len(self.trace_id.len());
        }
        if self.missing_values != 0 {
            len += 1 + encoded_len_varint(self.missing_values as u64);
        }
        len
    }

    /// Writes the request, fields in number order, as prost would.
    pub(crate) fn encode(&self, buf: &mut impl BufMut) {
        if !self.write_stream.is_empty() {
            put_delimited_header(buf, field::WRITE_STREAM, self.write_stream.len());
            buf.put_slice(self.write_stream.as_bytes());
        }
        if let Some(offset) = self.offset {
            put_delimited_header(buf, field::OFFSET, Self::offset_body_len(offset));
            if offset != 0 {
                encode_key(field::FIRST, WireType::Varint, buf);
                encode_varint(offset as u64, buf);
            }
        }
        let tag = match self.rows {
            Payload::Proto(_) => field::PROTO_ROWS,
            Payload::Arrow(_) => field::ARROW_ROWS,
        };
        put_delimited_header(buf, tag, self.data_len());
        if let Some(schema) = &self.writer_schema {
            put_delimited_header(buf, field::WRITER_SCHEMA, schema.encoded().len());
            buf.put_slice(schema.encoded());
        }
        match &self.rows {
            Payload::Proto(framed) => put_delimited_header(buf, field::ROWS, framed.len()),
            Payload::Arrow(message) => {
                put_delimited_header(buf, field::ROWS, delimited_len(message.len));
                put_delimited_header(buf, field::FIRST, message.len);
            }
        }
        self.rows.put(buf);
        if !self.trace_id.is_empty() {
            put_delimited_header(buf, field::TRACE_ID, self.trace_id.len());
            buf.put_slice(self.trace_id.as_bytes());
        }
        if self.missing_values != 0 {
            encode_key(field::DEFAULT_MISSING_VALUE_INTERPRETATION, WireType::Varint, buf);
            encode_varint(self.missing_values as u64, buf);
        }
    }
}

/// The AppendRows codec: [`AppendRequest`]s out, prost-decoded responses in.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppendCodec;

/// Writes [`AppendRequest`]s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppendEncoder;

impl Encoder for AppendEncoder {
    type Item = AppendRequest;
    type Error = Status;

    fn encode(&mut self, item: AppendRequest, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(dst);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Codec for AppendCodec {
    type Encode = AppendRequest;
    type Decode = AppendRowsResponse;
    type Encoder = AppendEncoder;
    type Decoder = ProstDecoder<AppendRowsResponse>;

    fn encoder(&mut self) -> AppendEncoder {
        AppendEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use prost::Message;

    use super::*;
    use crate::encode::{EncodeOptions, RowEncoder, RowFormat};
    use crate::proto::append_rows_request::Rows;
    use crate::proto::table_field_schema::{Mode, Type};
    use crate::proto::{AppendRowsRequest, ArrowSchema, ProtoSchema};
    use crate::schema::{field, table_schema};

    fn encoded(
        format: RowFormat,
        offset: Option<i64>,
        with_schema: bool,
        trace: &str,
        missing: i32,
    ) -> (AppendRequest, Vec<u8>) {
        let schema = table_schema(vec![field("id", Type::Int64, Mode::Required)]);
        let input = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let options = EncodeOptions {
            row_format: format,
            ..EncodeOptions::default()
        };
        let encoder = RowEncoder::new("p.d.t", &schema, &input, &options).unwrap();
        let batch = RecordBatch::try_new(input, vec![Arc::new(Int64Array::from(vec![1, 300, -7]))]).unwrap();
        let rows = encoder.encode(&batch, 0).unwrap().remove(0);
        let request = AppendRequest {
            write_stream: "projects/p/datasets/d/tables/t/streams/s".into(),
            offset,
            writer_schema: with_schema.then(|| encoder.writer_schema().clone()),
            rows: rows.payload().clone(),
            trace_id: trace.into(),
            missing_values: missing,
        };
        let mut buf = Vec::new();
        request.encode(&mut buf);
        assert_eq!(buf.len(), request.encoded_len());
        (request, buf)
    }

    #[test]
    fn proto_requests_decode_as_the_messages_they_stand_for() {
        for (offset, with_schema, trace, missing) in [
            (Some(0), true, "t", 2),
            (Some(300), false, "", 0),
            (None, true, "", 1),
            (Some(1 << 40), false, "x", 0),
        ] {
            let (request, buf) = encoded(RowFormat::Proto, offset, with_schema, trace, missing);
            let decoded = AppendRowsRequest::decode(buf.as_slice()).unwrap();
            assert_eq!(decoded.write_stream, request.write_stream);
            assert_eq!(decoded.offset, offset);
            assert_eq!(decoded.trace_id, trace);
            assert_eq!(decoded.default_missing_value_interpretation, missing);
            let Some(Rows::ProtoRows(data)) = decoded.rows else {
                panic!("proto rows expected");
            };
            let rows = data.rows.unwrap().serialized_rows;
            assert_eq!(
                rows,
                vec![
                    Bytes::from_static(&[0x08, 1]),
                    Bytes::from_static(&[0x08, 0xAC, 0x02]),
                    Bytes::from_static(&[0x08, 0xF9, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
                ]
            );
            match (with_schema, data.writer_schema) {
                (true, Some(schema)) => {
                    let expected = ProtoSchema::decode(request.writer_schema.unwrap().encoded().as_ref()).unwrap();
                    assert_eq!(schema, expected);
                }
                (false, None) => {}
                (wanted, got) => panic!("schema wanted {wanted}, got {got:?}"),
            }
            // prost writes the same bytes for the same message.
            assert_eq!(AppendRowsRequest::decode(buf.as_slice()).unwrap().encode_to_vec(), buf);
        }
    }

    #[test]
    fn arrow_requests_carry_the_ipc_messages() {
        let (request, buf) = encoded(RowFormat::Arrow, Some(5), true, "", 0);
        let decoded = AppendRowsRequest::decode(buf.as_slice()).unwrap();
        assert_eq!(decoded.offset, Some(5));
        let Some(Rows::ArrowRows(data)) = decoded.rows else {
            panic!("arrow rows expected");
        };
        let schema = data.writer_schema.unwrap();
        let expected = ArrowSchema::decode(request.writer_schema.unwrap().encoded().as_ref()).unwrap();
        assert_eq!(schema, expected);
        let message = data.rows.unwrap().serialized_record_batch;
        let Payload::Arrow(sent) = &request.rows else {
            panic!("arrow payload expected");
        };
        assert_eq!(message.len(), sent.len);
        // The schema message and the batch message read back as the batch.
        let mut stream = schema.serialized_schema.to_vec();
        stream.extend_from_slice(&message);
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0], sent.batch);
    }
}
