"""Loads lineitem from a Parquet file through Google's official Python client for the
Storage Write API, the way its documentation shows: pyarrow rows become protobuf messages,
serialized into AppendRows requests on one PENDING stream through AppendRowsStream, then
the stream is finalized and committed. Used by `cargo bench --bench e2e`, which reads the one
line of `key=value` pairs this prints.

    python benches/python_client.py --endpoint http://127.0.0.1:9060 \
        --table bench.tpch.lineitem --parquet target/bench-data/lineitem-sf1.parquet
"""

import argparse
import datetime
import resource
import sys
import time

import grpc
import pyarrow.parquet as pq
from google.cloud import bigquery_storage_v1
from google.cloud.bigquery_storage_v1 import types, writer
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Field number, name and proto type of each lineitem column; NUMERIC travels as its string form.
COLUMNS = [
    ("l_orderkey", "int64"),
    ("l_partkey", "int64"),
    ("l_suppkey", "int64"),
    ("l_linenumber", "int64"),
    ("l_quantity", "numeric"),
    ("l_extendedprice", "numeric"),
    ("l_discount", "numeric"),
    ("l_tax", "numeric"),
    ("l_returnflag", "string"),
    ("l_linestatus", "string"),
    ("l_shipdate", "date"),
    ("l_commitdate", "date"),
    ("l_receiptdate", "date"),
    ("l_shipinstruct", "string"),
    ("l_shipmode", "string"),
    ("l_comment", "string"),
]

PROTO_TYPES = {
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "numeric": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "date": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
}

EPOCH = datetime.date(1970, 1, 1).toordinal()
MAX_REQUEST_BYTES = 5 * 1024 * 1024


def row_descriptor():
    message = descriptor_pb2.DescriptorProto(name="Lineitem")
    for number, (name, kind) in enumerate(COLUMNS, start=1):
        message.field.add(
            name=name,
            number=number,
            type=PROTO_TYPES[kind],
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    return message


def row_class(descriptor):
    file = descriptor_pb2.FileDescriptorProto(name="lineitem.proto", syntax="proto2")
    file.message_type.add().CopyFrom(descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("Lineitem"))


def to_message(row_type, row):
    message = row_type()
    for name, kind in COLUMNS:
        value = row[name]
        if value is None:
            continue
        if kind == "numeric":
            value = str(value)
        elif kind == "date":
            value = value.toordinal() - EPOCH
        setattr(message, name, value)
    return message


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--table", required=True, help="project.dataset.table")
    parser.add_argument("--parquet", required=True)
    args = parser.parse_args()

    target = args.endpoint.removeprefix("http://")
    channel = grpc.insecure_channel(
        target,
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    client = bigquery_storage_v1.BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))
    project, dataset, table = args.table.split(".")
    parent = client.table_path(project, dataset, table)

    descriptor = row_descriptor()
    row_type = row_class(descriptor)
    parquet = pq.ParquetFile(args.parquet)

    started = time.perf_counter()
    cpu_started = time.process_time()
    stream = client.create_write_stream(
        parent=parent, write_stream=types.WriteStream(type_=types.WriteStream.Type.PENDING)
    )
    template = types.AppendRowsRequest(write_stream=stream.name)
    template.proto_rows = types.AppendRowsRequest.ProtoData(
        writer_schema=types.ProtoSchema(proto_descriptor=descriptor)
    )
    appender = writer.AppendRowsStream(client, template)

    futures = []
    offset = 0
    rows_sent = 0
    bytes_sent = 0
    pending = []
    pending_bytes = 0

    def flush():
        nonlocal offset, pending, pending_bytes
        if not pending:
            return
        request = types.AppendRowsRequest(offset=offset)
        request.proto_rows = types.AppendRowsRequest.ProtoData(rows=types.ProtoRows(serialized_rows=pending))
        futures.append(appender.send(request))
        offset += len(pending)
        pending = []
        pending_bytes = 0

    for batch in parquet.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            serialized = to_message(row_type, row).SerializeToString()
            if pending_bytes + len(serialized) + 8 > MAX_REQUEST_BYTES:
                flush()
            pending.append(serialized)
            pending_bytes += len(serialized) + 8
            rows_sent += 1
            bytes_sent += len(serialized)
    flush()
    for future in futures:
        future.result()
    appender.close()
    finalized = client.finalize_write_stream(name=stream.name)
    if finalized.row_count != rows_sent:
        sys.exit(f"finalize reported {finalized.row_count} rows, {rows_sent} were sent")
    committed = client.batch_commit_write_streams(
        types.BatchCommitWriteStreamsRequest(parent=parent, write_streams=[stream.name])
    )
    if committed.stream_errors:
        sys.exit(f"commit failed: {committed.stream_errors}")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rows={rows_sent} bytes={bytes_sent} seconds={seconds:.3f} "
        f"cpu_seconds={cpu_seconds:.3f} peak_rss_mib={peak_rss_mib:.0f}"
    )


if __name__ == "__main__":
    main()
