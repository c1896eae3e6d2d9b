#!/usr/bin/env bash
# Runs every test: unit, integration (embedded server), CLI, Ballista, doc tests, and the
# conformance suites against bqemulator and the checkpoint tests on S3 (moto), which this script
# installs into virtualenvs and starts.
#
#   scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bqemulator.sh install
scripts/moto.sh install
emulator_env=$(scripts/bqemulator.sh start)
trap 'scripts/bqemulator.sh stop; BQEMULATOR_STATE_DIR=target/bqemulator-faults scripts/bqemulator.sh stop; BQEMULATOR_STATE_DIR=target/bqemulator-checkpoint scripts/bqemulator.sh stop; scripts/moto.sh stop' EXIT
eval "$emulator_env"
# An S3-compatible server for the checkpoint tests' sources and checkpoints (tests/checkpoint.rs).
eval "$(scripts/moto.sh start)"
# A second emulator for the fault suite, which may wear it out (tests/conformance_faults.rs).
faults_env=$(BQEMULATOR_STATE_DIR=target/bqemulator-faults scripts/bqemulator.sh start)
eval "${faults_env//BQEMULATOR_/BQEMULATOR_FAULTS_}"
# A third for the checkpoint crash test: the AppendRows calls of a killed client keep
# bqemulator's worker threads, so that test gets an emulator of its own.
checkpoint_env=$(BQEMULATOR_STATE_DIR=target/bqemulator-checkpoint scripts/bqemulator.sh start)
eval "${checkpoint_env//BQEMULATOR_/BQEMULATOR_CHECKPOINT_}"

# The conformance and S3 suites fail instead of skipping when their servers are missing.
export DFBQ_REQUIRE_CONFORMANCE=1
# The Ballista feature is on, so its suite runs too (one build serves every suite).
if [[ $# -gt 0 ]]; then
    cargo test --features ballista "$@"
else
    # Everything, then the randomized fault suite uncaptured, so its summary line shows.
    cargo test --features ballista -- --skip randomized_fault_suite
    cargo test --features ballista --test faults -- --exact randomized_fault_suite --nocapture
fi
