"""``python -m gateway``: the production entry point (optionally migrate, then serve with uvicorn)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# One BLAS thread per worker: the intent encoder's small matrix products only lose to thread hand-offs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import uvicorn

from gateway.settings import get_settings


def prepare_metrics_dir(workers: int) -> str | None:
    """Multiprocess Prometheus: every worker writes its values under ``PROMETHEUS_MULTIPROC_DIR``.

    It must be set before any worker imports ``prometheus_client``, so it is settled here,
    in the parent. A configured directory is created and emptied (files of a previous run
    would be summed in); with several workers and none configured, a fresh temporary one
    is made and removed at exit. One worker without the variable keeps the in-process registry.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
        return path
    if workers <= 1:
        return None
    path = tempfile.mkdtemp(prefix="prism-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def main() -> None:
    settings = get_settings()
    workers = int(os.environ.get("GATEWAY_WORKERS", "1"))
    prepare_metrics_dir(workers)
    uvicorn.run(
        "gateway.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
    )


if __name__ == "__main__":
    main()
