"""Micro-benchmark of the two hand-written clients against the libraries they replace.

* HTTP: ``gateway/providers/wire_http.py`` vs aiohttp and httpx, one non-streamed chat completion
  per request (``POST`` of a small JSON body, whole answer read) against the fake OpenAI upstream
  (``python -m tests.fakes.openai_upstream``, started here on a spare port).
* Redis: ``gateway/cache/pipelined.py`` vs redis-py's asyncio client as the gateway configures it
  (``make_redis``: blocking pool, one retry), ``EVALSHA`` of a one-key script and ``GET``, against
  ``--redis-url``.

Each client runs ``--n`` operations at each concurrency (``--concurrency``), ``--rounds`` times,
interleaved; printed per client: throughput (median round), latency p50/p99 (all rounds) and the
client process's CPU per operation, and the ratio to the lean client. Runs on uvloop, as the
gateway does. The machine's load (``os.getloadavg``) is printed before and after: on a shared
machine compare CPU per operation first, throughput second.

    .venv/bin/python scripts/bench_clients.py [--n 3000] [--concurrency 1,32] [--rounds 3]
        [--redis-url redis://127.0.0.1:6379/0] [--skip-http] [--skip-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402

from gateway.cache.backends import make_redis  # noqa: E402
from gateway.cache.pipelined import LuaScript, PipelinedRedis  # noqa: E402
from gateway.providers.wire_http import Endpoint, WireHTTP, encode_headers  # noqa: E402

Op = Callable[[int], Awaitable[object]]

BODY = orjson.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
)
HEADERS = {
    "Authorization": "Bearer sk-bench",
    "Content-Type": "application/json",
    "Accept": "application/json",
}
SCRIPT = "return redis.call('INCR', KEYS[1])"


@dataclass
class Result:
    name: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    ops: int = 0

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.ops * 1e6


async def run_round(op: Op, n: int, concurrency: int, result: Result) -> None:
    per_worker = n // concurrency
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for i in range(per_worker):
            started = time.perf_counter()
            await op(w * per_worker + i)
            latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - wall
    result.cpu_s += time.process_time() - cpu
    result.ops += per_worker * concurrency
    result.rates.append(per_worker * concurrency / wall)
    result.latencies += latencies


async def compare(title: str, ops: dict[str, Op], *, n: int, concurrency: int, rounds: int) -> None:
    results = {name: Result(name) for name in ops}
    for op in ops.values():  # warm up: connections, scripts, caches
        await asyncio.gather(*(op(i) for i in range(min(200, n))))
    for _ in range(rounds):
        for name, op in ops.items():
            await run_round(op, n, concurrency, results[name])
    base = next(iter(results.values()))
    print(f"\n{title}, concurrency {concurrency}, {n} ops x {rounds} rounds")
    print(f"{'client':<12}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/op':>11}{'ops/s vs lean':>15}")
    for result in results.values():
        print(
            f"{result.name:<12}{result.rate:>10.0f}{result.quantile(0.5) * 1e3:>9.3f}"
            f"{result.quantile(0.99) * 1e3:>9.3f}{result.cpu_us:>11.0f}{result.rate / base.rate:>15.2f}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"fake upstream did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


async def bench_http(args: argparse.Namespace) -> None:
    proc, url = start_upstream()
    wire = WireHTTP()
    endpoint = Endpoint(url)
    wire_headers = encode_headers(HEADERS)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000))

    async def with_wire(_: int) -> object:
        response = await wire.post(endpoint, wire_headers, BODY)
        return orjson.loads(await response.read())

    async def with_aiohttp(_: int) -> object:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            return orjson.loads(await response.read())

    async def with_httpx(_: int) -> object:
        response = await client.post(url, content=BODY, headers=HEADERS)
        return orjson.loads(response.content)

    try:
        for concurrency in args.concurrency:
            await compare(
                "HTTP POST /v1/chat/completions (fake upstream)",
                {"wire_http": with_wire, "aiohttp": with_aiohttp, "httpx": with_httpx},
                n=args.n,
                concurrency=concurrency,
                rounds=args.rounds,
            )
    finally:
        await wire.aclose()
        await session.close()
        await client.aclose()
        proc.terminate()
        proc.wait(timeout=10)


async def bench_redis(args: argparse.Namespace) -> None:
    prefix = f"bench-clients-{uuid.uuid4().hex[:8]}"
    fast = PipelinedRedis(args.redis_url, timeout_s=2.0)
    redis = make_redis(args.redis_url, timeout_ms=2000)
    lua = LuaScript(SCRIPT)
    script = redis.register_script(SCRIPT)
    keys = [f"{prefix}:{i}" for i in range(64)]

    async def fast_eval(i: int) -> object:
        return await fast.evalsha(lua, [keys[i % 64]], [])

    async def py_eval(i: int) -> object:
        return await script(keys=[keys[i % 64]], args=[])

    async def fast_get(i: int) -> object:
        return await fast.execute("GET", keys[i % 64])

    async def py_get(i: int) -> object:
        return await redis.get(keys[i % 64])

    try:
        for concurrency in args.concurrency:
            for title, ops in (
                ("Redis EVALSHA (one key)", {"pipelined": fast_eval, "redis-py": py_eval}),
                ("Redis GET", {"pipelined": fast_get, "redis-py": py_get}),
            ):
                await compare(title, ops, n=args.n, concurrency=concurrency, rounds=args.rounds)
    finally:
        await redis.delete(*keys)
        await fast.aclose()
        await redis.aclose()


async def main(args: argparse.Namespace) -> None:
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if not args.skip_http:
        await bench_http(args)
    if not args.skip_redis:
        await bench_redis(args)
    print("\nload average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-redis", action="store_true")
    import uvloop

    uvloop.run(main(parser.parse_args()))
