"""Runs bqemulator the way scripts/bqemulator_launch.py does, with one correction.

bqemulator 1.4.0 resolves the target stream of every AppendRows request from its
`write_stream` field. The Storage Write API only requires that field on the first request of
a connection, and google-cloud-bigquery's writer leaves it out of later requests (its
`SendOptimizer`), so bqemulator answers "Stream not found: " from the second request on.
This wrapper keeps a connection on its stream when a request names none, then hands over to
the usual launcher.

    .venv/bqemulator/bin/python peers/bqemulator_compat.py REST_PORT GRPC_PORT [WORK_DIR]
"""

import os
import runpy
import sys

from bqemulator.grpc_api.write_servicer import BigQueryWriteHandler

_ensure_stream_bound = BigQueryWriteHandler._ensure_stream_bound


def _keep_bound_stream(self, stream_name, bound_ctx, context):
    """An empty `write_stream` means the stream the connection already writes to."""
    if not stream_name and bound_ctx is not None:
        return bound_ctx
    return _ensure_stream_bound(self, stream_name, bound_ctx, context)


BigQueryWriteHandler._ensure_stream_bound = _keep_bound_stream

if __name__ == "__main__":
    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "bqemulator_launch.py")
    sys.argv[0] = launcher
    runpy.run_path(launcher, run_name="__main__")
