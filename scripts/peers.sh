#!/usr/bin/env bash
# Builds `peers` (peers/: loads TPC-H lineitem from Parquet through third-party Rust
# BigQuery Storage Write clients, for the benchmarks) in release with its own lock file and
# target directory, and prints the binary's path on stdout.
#
#   PEERS="$(scripts/peers.sh)"
#   "$PEERS" load --client gcloud-bigquery --endpoint http://127.0.0.1:9060 \
#       --table bench.tpch.lineitem --parquet target/bench-data/lineitem-sf1.parquet
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="$(cd "$SCRIPT_DIR/../peers" && pwd)"

cd "$PEERS_DIR"
# Its own target directory, whatever CARGO_TARGET_DIR the caller has.
CARGO_TARGET_DIR="$PEERS_DIR/target" cargo build --release --locked >&2
echo "$PEERS_DIR/target/release/peers"
