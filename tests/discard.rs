//! The embedded server in discard mode: it validates requests as in keep mode but keeps only a
//! digest of the rows, and that digest matches what the client sent, in proto rows or Arrow
//! rows alike.

#![cfg(feature = "server")]

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion_bigquery::client::WriteClient;
use datafusion_bigquery::encode::RowEncoder;
use datafusion_bigquery::proto::write_stream::Type as StreamType;
use datafusion_bigquery::server::{Retention, RowDigest, ServerBuilder};
use datafusion_bigquery::{BigQueryOptions, EmbeddedServer, Loader, RowFormat, StreamWriter, TableRef, schema};
use futures::stream;

fn batches(schema: &arrow::datatypes::SchemaRef) -> Vec<RecordBatch> {
    (0..5i64)
        .map(|b| {
            let ids = Int64Array::from_iter_values(b * 2000..(b + 1) * 2000);
            let notes =
                StringArray::from_iter((b * 2000..(b + 1) * 2000).map(|i| (i % 3 != 0).then(|| format!("n{i}"))));
            RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(notes)]).expect("batch")
        })
        .collect()
}

/// The digest of `batches` as the client encodes them in proto rows (the form the server
/// digests every row in).
fn expected_digest(loader: &Loader, batches: &[RecordBatch]) -> RowDigest {
    let encoder = RowEncoder::new(
        &loader.table().to_string(),
        loader.table_schema(),
        &loader.arrow_schema(),
        &loader
            .options()
            .clone()
            .with_row_format(RowFormat::Proto)
            .encode_options(),
    )
    .expect("encoder");
    let mut digest = RowDigest::default();
    for batch in batches {
        for request in encoder.encode(batch, 0).expect("encode") {
            digest.add_all(request.proto_rows().iter().map(|r| r.as_ref()));
        }
    }
    digest
}

async fn load_into(retention: Retention, format: RowFormat) -> (EmbeddedServer, TableRef, RowDigest) {
    load_on(EmbeddedServer::builder().retention(retention), format).await
}

async fn load_on(builder: ServerBuilder, format: RowFormat) -> (EmbeddedServer, TableRef, RowDigest) {
    let server = builder.start().await.expect("server");
    let table: TableRef = "bench.discard.t".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED,note:STRING").expect("schema"),
    );
    let options = BigQueryOptions::default()
        .with_endpoint(server.endpoint())
        .with_streams(3)
        .with_row_format(format);
    let loader = Loader::connect(table.clone(), options).await.expect("connect");
    let input = batches(&loader.arrow_schema());
    let expected = expected_digest(&loader, &input);
    let summary = loader
        .load(
            loader.arrow_schema(),
            stream::iter(input.into_iter().map(Ok::<_, std::io::Error>)),
        )
        .await
        .expect("load");
    assert_eq!(summary.rows, 10_000);
    (server, table, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarding_server_counts_and_digests_what_the_client_sent() {
    for format in [RowFormat::Proto, RowFormat::Arrow] {
        let (server, table, expected) = load_into(Retention::Discard, format).await;
        assert_eq!(server.row_count(&table), Some(10_000));
        assert_eq!(server.rows(&table).map(|b| b.len()), Some(0), "no rows are kept");
        assert_eq!(server.table_digest(&table), Some(expected), "{format:?}");
        let stats = server.stats();
        assert_eq!(stats.rows_appended, 10_000);
        assert_eq!(stats.row_bytes_appended, expected.bytes);
        assert_eq!(stats.commits, 1);
        assert_eq!(stats.arrow_requests > 0, format == RowFormat::Arrow);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_digests_rows_are_counted_and_the_checksum_stays_zero() {
    for format in [RowFormat::Proto, RowFormat::Arrow] {
        let builder = EmbeddedServer::builder()
            .retention(Retention::Discard)
            .without_digests();
        let (server, table, expected) = load_on(builder, format).await;
        let digest = server.table_digest(&table).expect("digest");
        assert_eq!((digest.rows, digest.checksum), (10_000, 0), "{format:?}");
        assert_eq!(server.row_count(&table), Some(10_000));
        if format == RowFormat::Proto {
            assert_eq!(digest.bytes, expected.bytes, "proto rows: their own bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_server_digests_the_same_rows_alike() {
    for format in [RowFormat::Proto, RowFormat::Arrow] {
        let (server, table, expected) = load_into(Retention::Keep, format).await;
        assert_eq!(server.row_count(&table), Some(10_000));
        assert_eq!(server.table_digest(&table), Some(expected), "{format:?}");
    }
    // A different row changes the digest.
    let (_, _, mut expected) = load_into(Retention::Keep, RowFormat::Proto).await;
    let before = expected;
    expected.add(b"\x08\x01");
    assert_ne!(expected, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarding_server_still_refuses_what_keep_mode_refuses() {
    let server = EmbeddedServer::builder()
        .retention(Retention::Discard)
        .start()
        .await
        .expect("server");
    let table: TableRef = "bench.discard.strict".parse().expect("name");
    server.create_table(
        &table,
        schema::parse_inline_schema("id:INT64:REQUIRED").expect("schema"),
    );
    let client = WriteClient::connect(&server.endpoint()).await.expect("client");

    let buffered = client
        .create_write_stream(&table, StreamType::Buffered)
        .await
        .expect_err("no BUFFERED streams");
    assert!(buffered.to_string().contains("BUFFERED"), "{buffered}");

    // A writer whose schema has a column the table lacks is refused before any row counts.
    let wider_schema = schema::parse_inline_schema("id:INT64:REQUIRED,surplus:STRING").expect("schema");
    let arrow = Arc::new(schema::to_arrow_schema(&wider_schema));
    let options = BigQueryOptions::default().with_endpoint(server.endpoint());
    let encoder =
        RowEncoder::new(&table.to_string(), &wider_schema, &arrow, &options.encode_options()).expect("encoder");
    let mut writer = StreamWriter::new(client, table.clone(), Arc::new(encoder), options);
    let batch = RecordBatch::try_new(
        arrow,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
    )
    .expect("batch");
    let sent = writer.write(&batch, 0).await;
    let err = match sent {
        Err(e) => e,
        Ok(()) => writer.finish().await.expect_err("extra field"),
    };
    assert!(err.to_string().contains("surplus is not a column"), "{err}");
    assert_eq!(server.stats().rows_appended, 0);
    assert_eq!(server.row_count(&table), Some(0));
}
