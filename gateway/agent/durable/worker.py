"""A durable worker process: ``python -m gateway.agent.durable.worker [--summary-model NAME]``.

Opens the durable runtime on the application's database (``GATEWAY_DATABASE_URL``; Postgres in
production) with the registered graphs, resumes the runs a dead worker left (at start, then every
``GATEWAY_DURABLE_RECOVERY_SCAN_S``) and renews the leases of the runs it executes. SIGTERM or
SIGINT: it stops its runs, gives their leases back (another worker continues them at once) and exits.
``--metrics-port PORT`` serves its Prometheus metrics (``prism_durable_*``, ``prism_worker_*``) on
``GATEWAY_HOST:PORT``.

The graphs registered here: ``summarize`` (``summarize.py``), answered by ``--summary-model`` (a
model of the routing file). The jobs API (issue #23) submits runs; until then runs are submitted
in-process with :meth:`DurableRuntime.submit`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Mapping

import structlog
from prometheus_client import start_http_server

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.runtime import open_runtime
from gateway.agent.durable.summarize import summarize_pipeline
from gateway.config.routing import load_config
from gateway.config.settings import Settings, get_settings
from gateway.db.migrate import migrate
from gateway.observability.logging import configure_logging
from gateway.providers.http import UpstreamClients
from gateway.providers.registry import Target, build_targets

log = structlog.get_logger("gateway.durable")


def registered_graphs(targets: Mapping[str, Target], *, summary_model: str) -> list[DurableGraph]:
    if summary_model not in targets:
        raise SystemExit(f"--summary-model {summary_model!r} is not a configured, enabled model")
    return [summarize_pipeline(targets[summary_model])]


async def serve(settings: Settings, *, summary_model: str, metrics_port: int | None = None) -> None:
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.host)
    if settings.database_migrate_on_start:
        await migrate(settings)
    clients = UpstreamClients()
    try:
        targets = build_targets(load_config(settings.config), clients=clients, env=os.environ)
        graphs = registered_graphs(targets, summary_model=summary_model)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with open_runtime(settings, graphs) as runtime:
            log.info(
                "durable_worker_started",
                graphs=sorted(runtime.graphs),
                durable_worker=runtime.config.worker_id,
            )
            await stop.wait()
            log.info("durable_worker_stopping", durable_worker=runtime.config.worker_id)
    finally:
        await clients.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary-model", default="mock-fast")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve /metrics on GATEWAY_HOST:PORT (default: off)"
    )
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings, summary_model=args.summary_model, metrics_port=args.metrics_port))


if __name__ == "__main__":
    main()
