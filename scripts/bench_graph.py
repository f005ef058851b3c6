"""Micro-benchmark of the pipeline's own cost: the compiled graph with every node on, mock provider
in-process, no network. Prints p50/p95 per request for explicit-model and `auto` requests.

    .venv/bin/python scripts/bench_graph.py [--n 2000]

``--durable PG_BASE_URL`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432``) measures the two
runtimes on one flow of ``--steps`` trivial steps instead (docs/graph.md, "Two runtimes"): the fast
runner, LangGraph's Pregel loop without a checkpointer, with the in-memory, SQLite and Postgres
checkpointers (``durability="sync"``), and a whole durable run (lease row, checkpoints, outcome);
plus the latency of each checkpoint write (``aput``/``aput_writes``). It creates and drops its own
database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.agent.graph import build_runner
from gateway.agent.guard import GuardService
from gateway.config.routing import CircuitBreakerConfig
from gateway.intent import IntentClassifier
from gateway.observability.logging import configure_logging
from gateway.routing.circuit import CircuitBreakers
from gateway.runtime import ConfigHolder
from gateway.schemas.openai import ChatCompletionRequest
from gateway.security.principal import ANONYMOUS
from gateway.services.completion import CompletionService, CompletionServices, chat_input

CONFIG = Path(__file__).resolve().parents[1] / "config" / "prism.yaml"


async def measure(service: CompletionService, model: str, n: int) -> list[float]:
    raw = {"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    request = ChatCompletionRequest.model_validate(raw)
    samples = []
    for i in range(n):
        chat = chat_input(request, raw)
        started = time.perf_counter()
        await service.run(chat=chat, principal=ANONYMOUS, request_id=f"bench-{i}", sticky={})
        samples.append(time.perf_counter() - started)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--durable", metavar="PG_BASE_URL", default=None)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="console")
    if args.durable:
        from scripts.bench_durable import bench_runtimes

        await bench_runtimes(args.durable, n=args.n, steps=args.steps)
        return
    holder = ConfigHolder(path=CONFIG, clients=None, circuits=CircuitBreakers(CircuitBreakerConfig()))
    holder.load()
    classifier = IntentClassifier.load()
    for engine in ("direct", "langgraph"):
        runner = build_runner(engine)
        service = CompletionService(
            CompletionServices(holder=holder, graph=runner, guard=GuardService(), classifier=classifier)
        )
        for model in ("mock-fast", "auto"):
            await measure(service, model, 200)  # warm-up
            samples = sorted(await measure(service, model, args.n))
            p50 = statistics.median(samples) * 1000
            p95 = samples[int(len(samples) * 0.95)] * 1000
            print(
                f"pipeline engine={engine:<9} model={model:<9} n={args.n} p50={p50:.3f} ms p95={p95:.3f} ms "
                f"({1 / statistics.median(samples):.0f} req/s on one core)"
            )


if __name__ == "__main__":
    asyncio.run(main())
