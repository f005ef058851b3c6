"""``python -m gateway``: the production entry point (optionally migrate, then serve with uvicorn)."""

from __future__ import annotations

import os

# One BLAS thread per worker: the intent encoder's small matrix products only lose to thread hand-offs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import uvicorn

from gateway.settings import get_settings


def main() -> None:
    settings = get_settings()
    workers = int(os.environ.get("GATEWAY_WORKERS", "1"))
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
