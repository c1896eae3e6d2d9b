"""Run bqemulator (the independent BigQuery conformance server) offline.

bqemulator wants DuckDB's ``spatial`` extension at start-up and tries to
download it; with no internet that fails and the server refuses to start.
This launcher turns that step into a no-op (GEOGRAPHY is then unsupported),
switches off the optional ``avro`` extension download as well, and starts an
in-memory (ephemeral) emulator whose scratch files all live in one directory.

Usage: bqemulator_launch.py REST_PORT GRPC_PORT [WORK_DIR]

WORK_DIR (created if missing; a fresh temporary directory by default) becomes
the working directory, so no stray ``.bqemu.toml`` is read and DuckDB's spill
files stay there.
"""

import os
import sys
import tempfile


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    rest_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) == 4:
        work_dir = os.path.abspath(sys.argv[3])
        os.makedirs(work_dir, exist_ok=True)
    else:
        work_dir = tempfile.mkdtemp(prefix="bqemulator-")
    os.chdir(work_dir)
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    os.environ.setdefault("BQEMU_UPLOAD_STAGING_DIR", os.path.join(work_dir, "uploads"))
    os.environ["TMPDIR"] = work_dir

    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None

    from bqemulator import cli

    sys.argv = [
        "bqemulator",
        "start",
        "--ephemeral",
        "--rest-host", "127.0.0.1",
        "--rest-port", str(rest_port),
        "--grpc-host", "127.0.0.1",
        "--grpc-port", str(grpc_port),
        "--log-format", "json",  # the console renderer always emits ANSI colours
    ]
    cli.main()


if __name__ == "__main__":
    main()
