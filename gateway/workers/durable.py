"""A durable worker process: ``python -m gateway.workers.durable [--model NAME]``.

Opens the durable runtime on the application's database (``GATEWAY_DATABASE_URL``; Postgres in
production) with the registered graphs, resumes the runs a dead worker left (at start, then every
``GATEWAY_DURABLE_RECOVERY_SCAN_S``) and renews the leases of the runs it executes. SIGTERM or
SIGINT: it stops its runs, gives their leases back (another worker continues them at once) and exits.
``--metrics-port PORT`` serves its Prometheus metrics (``prism_durable_*``, ``prism_worker_*``) on
``GATEWAY_HOST:PORT``.

The graphs registered here: the document pipelines of ``gateway/pipelines/registry.py``
(``summarize``, ``document_analysis``), whose model calls go through Prism's own request path
in-process (routing, guards, quotas, usage records; ``gateway/workers/completions.py``), answered by
``--model`` (a model or alias of the routing file; a job's ``options.model`` may name another).
The jobs API (issue #23) submits runs; runs can also be submitted with :meth:`DurableRuntime.submit`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Collection

import structlog
from prometheus_client import start_http_server

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.runtime import open_runtime
from gateway.config.settings import Settings, get_settings
from gateway.db.migrate import migrate
from gateway.observability.logging import configure_logging
from gateway.pipelines.llm import PipelineLLM
from gateway.pipelines.registry import pipeline_graphs
from gateway.workers.completions import open_completions

log = structlog.get_logger("gateway.durable")


def registered_graphs(llm: PipelineLLM, *, models: Collection[str]) -> list[DurableGraph]:
    if llm.model not in models and llm.model != "auto":
        raise SystemExit(f"--model {llm.model!r} is not a configured, enabled model or alias")
    return pipeline_graphs(llm)


async def serve(settings: Settings, *, model: str, metrics_port: int | None = None) -> None:
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.host)
    if settings.database_migrate_on_start:
        await migrate(settings)
    async with open_completions(settings) as completions:
        snapshot = completions.s.holder.current
        llm = PipelineLLM(completions, model=model)
        graphs = registered_graphs(llm, models={*snapshot.targets, *snapshot.config.aliases})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", "--summary-model", dest="model", default="mock-fast", help="the pipelines' model"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve /metrics on GATEWAY_HOST:PORT (default: off)"
    )
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings, model=args.model, metrics_port=args.metrics_port))


if __name__ == "__main__":
    main()
