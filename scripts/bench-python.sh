#!/usr/bin/env bash
# Makes .venv/bench with Google's official Python client for the Storage Write API, for the
# end-to-end benchmark's comparison (`cargo bench --bench e2e`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bench/bin/python ]; then
    python3 -m venv .venv/bench
fi
.venv/bench/bin/pip install --quiet --disable-pip-version-check \
    google-cloud-bigquery-storage==2.43.0 pyarrow==26.0.1
.venv/bench/bin/python -c "import google.cloud.bigquery_storage_v1, pyarrow; print('ok: .venv/bench')"
