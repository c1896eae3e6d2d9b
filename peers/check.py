"""Correctness check of `peers load` against bqemulator (stdlib only).

Creates a fresh lineitem table through bqemulator's REST API, loads a Parquet file with the
chosen client, and compares what the table holds with the file (read with pyarrow when
available, else only the row count printed by `peers`):

    eval "$(scripts/bqemulator.sh start)"
    python3 peers/check.py --client gcloud-bigquery --parquet lineitem-sf0.01.parquet
"""

import argparse
from decimal import Decimal
import json
import os
import subprocess
import sys
import time
import urllib.request

PROJECT = "bench"
COLUMNS = [
    ("l_orderkey", "INT64"), ("l_partkey", "INT64"), ("l_suppkey", "INT64"),
    ("l_linenumber", "INT64"), ("l_quantity", "NUMERIC"), ("l_extendedprice", "NUMERIC"),
    ("l_discount", "NUMERIC"), ("l_tax", "NUMERIC"), ("l_returnflag", "STRING"),
    ("l_linestatus", "STRING"), ("l_shipdate", "DATE"), ("l_commitdate", "DATE"),
    ("l_receiptdate", "DATE"), ("l_shipinstruct", "STRING"), ("l_shipmode", "STRING"),
    ("l_comment", "STRING"),
]
SUMMARY = (
    "SELECT COUNT(*), SUM(l_orderkey), SUM(l_linenumber), CAST(SUM(l_quantity) AS STRING), "
    "CAST(SUM(l_extendedprice) AS STRING), CAST(SUM(l_discount) AS STRING), "
    "CAST(SUM(l_tax) AS STRING), SUM(UNIX_DATE(l_shipdate)), SUM(UNIX_DATE(l_commitdate)), "
    "SUM(UNIX_DATE(l_receiptdate)), SUM(LENGTH(l_comment)), SUM(LENGTH(l_shipinstruct)), "
    "COUNT(DISTINCT l_returnflag || l_linestatus || l_shipmode), "
    "COUNT(DISTINCT l_orderkey * 8 + l_linenumber) FROM `{table}`"
)
FIRST = (
    "SELECT l_orderkey, l_linenumber, CAST(l_extendedprice AS STRING), "
    "CAST(l_shipdate AS STRING), l_shipmode, l_comment FROM `{table}` "
    "ORDER BY l_orderkey, l_linenumber LIMIT 3"
)


def rest(base, path, body):
    request = urllib.request.Request(
        f"{base}/bigquery/v2/projects/{PROJECT}/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def create_table(base, dataset):
    rest(base, "datasets", {"datasetReference": {"projectId": PROJECT, "datasetId": dataset}})
    fields = [{"name": n, "type": t, "mode": "REQUIRED"} for n, t in COLUMNS]
    rest(base, f"datasets/{dataset}/tables", {
        "tableReference": {"projectId": PROJECT, "datasetId": dataset, "tableId": "lineitem"},
        "schema": {"fields": fields},
    })


def query(base, sql):
    body = rest(base, "queries", {"query": sql, "useLegacySql": False})
    if body.get("errors"):
        sys.exit(f"query failed: {body['errors']}")
    return [[cell["v"] for cell in row["f"]] for row in body.get("rows", [])]


def expected(parquet):
    """The same summary computed from the file with pyarrow, or None without pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        return None
    t = pq.read_table(parquet)
    t = t.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in t.schema]))
    days = lambda c: pc.sum(t[c].cast("int32")).as_py()
    flags = {(a, b, c) for a, b, c in zip(t["l_returnflag"].to_pylist(), t["l_linestatus"].to_pylist(), t["l_shipmode"].to_pylist())}
    return [
        t.num_rows, pc.sum(t["l_orderkey"]).as_py(), pc.sum(t["l_linenumber"]).as_py(),
        *(pc.sum(t[c]).as_py() for c in ("l_quantity", "l_extendedprice", "l_discount", "l_tax")),
        days("l_shipdate"), days("l_commitdate"), days("l_receiptdate"),
        pc.sum(pc.utf8_length(t["l_comment"])).as_py(), pc.sum(pc.utf8_length(t["l_shipinstruct"])).as_py(),
        len(flags),
        len({k * 8 + n for k, n in zip(t["l_orderkey"].to_pylist(), t["l_linenumber"].to_pylist())}),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", required=True)
    parser.add_argument("--parquet", required=True)
    parser.add_argument("--streams", default="2")
    parser.add_argument("--peers", default=os.path.join(os.path.dirname(__file__), "target/release/peers"))
    args = parser.parse_args()
    grpc, base = os.environ["BQEMULATOR_GRPC"], os.environ["BQEMULATOR_REST"]

    dataset = f"peers_{args.client.replace('-', '_')}_{int(time.time() * 1000)}"
    create_table(base, dataset)
    table = f"{PROJECT}.{dataset}.lineitem"
    loaded = subprocess.run(
        [args.peers, "load", "--client", args.client, "--endpoint", grpc, "--table", table,
         "--parquet", args.parquet, "--streams", args.streams],
        capture_output=True, text=True,
    )
    sys.stderr.write(loaded.stderr)
    if loaded.returncode != 0:
        sys.exit(f"peers load exited {loaded.returncode}")
    print(loaded.stdout.strip())

    got = query(base, SUMMARY.format(table=table))[0]
    print("table:", got)
    for row in query(base, FIRST.format(table=table)):
        print("row:", row)
    want = expected(args.parquet)
    if want is None:
        print("no pyarrow: compared the row count only")
        want_rows = int(loaded.stdout.split()[0].removeprefix("rows="))
        ok = int(got[0]) == want_rows
    else:
        print("file: ", want)
        ok = len(want) == len(got) and all(Decimal(str(w)) == Decimal(g) for w, g in zip(want, got))
    print("MATCH" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
