//! Single-thread encode throughput on TPC-H lineitem: our encoder against two baselines run on
//! the same batches in the same process.
//!
//! - `datafusion_bigquery`: `RowEncoder::encode`, Arrow batches to serialized proto2 rows split
//!   into requests.
//! - `prost_reflect_dynamic_message`: the generic way, one `DynamicMessage` built and encoded
//!   per row from the same Arrow values (same bytes out, checked before timing).
//! - `arrow_ipc`: Arrow IPC stream serialization of the same batches, the near-memcpy ceiling.
//!
//! ```text
//! cargo bench --bench encode                      # lineitem SF 0.1 (600,572 rows)
//! DFBQ_BENCH_SF=0.01 cargo bench --bench encode   # another scale factor
//! ```
//!
//! Throughput is reported per row and per byte of encoded rows (proto rows for the first two,
//! the IPC stream for the third).

mod common;

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Int32Type, Int64Type};
use arrow::ipc::writer::StreamWriter;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion_bigquery::encode::{EncodeOptions, RowEncoder};
use datafusion_bigquery::values;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn our_encoder(batches: &[RecordBatch]) -> RowEncoder {
    RowEncoder::new(
        "bench.tpch.lineitem",
        &common::lineitem_table(),
        &common::lineitem_arrow_schema(),
        &EncodeOptions::default(),
    )
    .unwrap_or_else(|e| panic!("encoder for {}: {e}", batches.len()))
}

/// Encodes every batch; returns the rows and their total size as they travel (framed).
fn encode_ours(encoder: &RowEncoder, batches: &[RecordBatch]) -> (usize, usize) {
    let (mut rows, mut bytes) = (0, 0);
    for batch in batches {
        for request in encoder.encode(batch, 0).expect("encode") {
            rows += request.len();
            bytes += request.bytes();
            black_box(&request);
        }
    }
    (rows, bytes)
}

/// The row message as prost-reflect sees it, from the descriptor our encoder sends.
fn reflect_descriptor(encoder: &RowEncoder) -> MessageDescriptor {
    let standard =
        prost_types::DescriptorProto::decode(encoder.descriptor().encode_to_vec().as_slice()).expect("descriptor");
    let name = standard.name.clone().unwrap_or_default();
    let file = FileDescriptorProto {
        name: Some("lineitem.proto".into()),
        syntax: Some("proto2".into()),
        message_type: vec![standard],
        ..Default::default()
    };
    let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] }).expect("pool");
    pool.get_message_by_name(&name).expect("row message")
}

/// One `DynamicMessage` per row, fields set from the Arrow values, then encoded.
fn encode_reflect(descriptor: &MessageDescriptor, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) {
    for row in 0..batch.num_rows() {
        let mut message = DynamicMessage::new(descriptor.clone());
        for (i, column) in batch.columns().iter().enumerate() {
            if column.is_null(row) {
                continue;
            }
            let value = match column.data_type() {
                DataType::Int64 => Value::I64(column.as_primitive::<Int64Type>().value(row)),
                DataType::Int32 => Value::I64(i64::from(column.as_primitive::<Int32Type>().value(row))),
                DataType::Date32 => Value::I32(column.as_primitive::<Date32Type>().value(row)),
                DataType::Decimal128(_, scale) => {
                    let unscaled = column.as_primitive::<Decimal128Type>().value(row);
                    let at_scale_9 = unscaled * 10i128.pow((values::NUMERIC_SCALE - scale) as u32);
                    Value::Bytes(values::pack_numeric(at_scale_9).into())
                }
                DataType::Utf8View => Value::String(column.as_string_view().value(row).to_string()),
                other => panic!("lineitem has no {other} column"),
            };
            message.set_field_by_number(i as u32 + 1, value);
        }
        out.push(message.encode_to_vec());
    }
}

fn encode_ipc(batches: &[RecordBatch]) -> usize {
    let mut out = Vec::with_capacity(64 << 20);
    let mut writer = StreamWriter::try_new(&mut out, &batches[0].schema()).expect("ipc writer");
    for batch in batches {
        writer.write(batch).expect("ipc write");
    }
    writer.finish().expect("ipc finish");
    drop(writer);
    black_box(&out);
    out.len()
}

fn bench_encode(c: &mut Criterion) {
    let sf = common::scale_factor(0.1);
    let batches = common::lineitem(sf, 8192);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let encoder = our_encoder(&batches);
    let descriptor = reflect_descriptor(&encoder);

    // Same bytes out of both proto encoders, row by row, before anything is timed.
    let (_, proto_bytes) = encode_ours(&encoder, &batches);
    for batch in batches.iter().take(2) {
        let ours: Vec<_> = encoder
            .encode(batch, 0)
            .expect("encode")
            .into_iter()
            .flat_map(|r| r.proto_rows())
            .collect();
        let mut theirs = Vec::new();
        encode_reflect(&descriptor, batch, &mut theirs);
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a.as_ref(), b.as_slice(), "the two encoders disagree");
        }
    }
    let ipc_bytes = encode_ipc(&batches);
    eprintln!(
        "lineitem SF {sf}: {rows} rows in {} batches; {:.1} MB as proto rows, {:.1} MB as Arrow IPC",
        batches.len(),
        proto_bytes as f64 / 1e6,
        ipc_bytes as f64 / 1e6
    );

    let mut group = c.benchmark_group(format!("encode_lineitem_sf{sf}"));
    group.sample_size(10);
    group.throughput(Throughput::ElementsAndBytes {
        elements: rows as u64,
        bytes: proto_bytes as u64,
    });
    group.bench_function("datafusion_bigquery", |b| b.iter(|| encode_ours(&encoder, &batches)));
    let descriptor = Arc::new(descriptor);
    group.bench_function("prost_reflect_dynamic_message", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(8192);
            for batch in &batches {
                out.clear();
                encode_reflect(&descriptor, batch, &mut out);
                black_box(&out);
            }
        })
    });
    group.throughput(Throughput::ElementsAndBytes {
        elements: rows as u64,
        bytes: ipc_bytes as u64,
    });
    group.bench_function("arrow_ipc", |b| b.iter(|| encode_ipc(&batches)));
    group.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
