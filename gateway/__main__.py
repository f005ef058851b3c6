"""``python -m gateway``: the production entry point (optionally migrate, then serve with uvicorn)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

# One BLAS thread per worker: the intent encoder's small matrix products only lose to thread hand-offs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import uvicorn

from gateway.config.settings import get_settings
from gateway.observability.logging import configure_logging
from gateway.supervision import PrismMultiprocess, prepare_supervisor


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


class PrismServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM/SIGINT drain ends with exit status 0.

    uvicorn re-raises the captured signal after a graceful shutdown (so the process
    dies "by the signal"); here the shutdown completed — usage and shadow results were
    flushed in the lifespan shutdown — so the process exits normally instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def main() -> None:
    settings = get_settings()
    workers = int(os.environ.get("GATEWAY_WORKERS", "1"))
    prepare_metrics_dir(workers)
    configure_logging(level=settings.log_level, fmt=settings.log_format)  # the supervisor's lines too
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "log_config": None,  # uvicorn's loggers propagate to the JSON root handler (logging.py)
        "access_log": False,
        # The drain (gateway.services.drain) ends open streams at drain_timeout_s; uvicorn's
        # own limit, which cancels without a word, comes a little later.
        "timeout_graceful_shutdown": int(settings.drain_timeout_s + settings.drain_delay_s) + 5,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 64 * 1024,
        # X-Forwarded-For is read by gateway.security.client_address, from GATEWAY_TRUSTED_PROXIES only.
        "proxy_headers": False,
    }
    if workers > 1:
        prepare_supervisor()
        config = uvicorn.Config("gateway.main:create_app", workers=workers, **options)
        PrismMultiprocess(config, sockets=[config.bind_socket()]).run()
        return
    PrismServer(uvicorn.Config("gateway.main:create_app", **options)).run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["eval"]:  # the evaluation CI gate (docs/prompts-and-evals.md), not the server
        from gateway.evals.cli import main as eval_main

        sys.exit(eval_main(sys.argv[2:]))
    main()
