//! Generates the Storage Write API client and server from `proto/` without `protoc`:
//! protox parses the files into a descriptor set, tonic-prost-build turns it into Rust.

use std::io;

const PROTOS: &[&str] = &[
    "proto/google/cloud/bigquery/storage/v1/storage.proto",
    "proto/google/cloud/bigquery/storage/v1/annotations.proto",
    "proto/google/rpc/error_details.proto",
];

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"]).map_err(io::Error::other)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".google.cloud.bigquery.storage.v1.ProtoRows.serialized_rows")
        .bytes(".google.cloud.bigquery.storage.v1.ArrowSchema.serialized_schema")
        .bytes(".google.cloud.bigquery.storage.v1.ArrowRecordBatch.serialized_record_batch")
        .compile_fds(descriptors)
}
