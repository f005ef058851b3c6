"""What making a usage record durable costs per request, for the two designs issue #17 names.

* ``segment``: ``SegmentLog.append`` — orjson + one ``write()`` to this worker's segment file
  (what Prism does), with and without ``fsync``;
* ``redis-xadd``: ``XADD`` of the same record to a Redis stream with redis-py's asyncio client, each
  awaited (a request cannot answer before its record is acknowledged), against the machine's Redis.

Usage: ``python scripts/bench_ledger.py [--records 20000] [--redis redis://127.0.0.1:6379/0]``.
Prints microseconds per record (median of five rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from gateway.usage.record import UsageRecord
from gateway.usage.segments import SegmentLog


def _record() -> UsageRecord:
    return UsageRecord(
        request_id=uuid.uuid4().hex,
        client_request_id="client-correlation-id-123",
        user_id=uuid.uuid4().hex,
        api_key_id=uuid.uuid4().hex,
        tier="pro",
        route="auto → intent=coding,confidence=0.91,tier=strong → model=mock-smart",
        model_requested="auto",
        model_served="mock-smart",
        provider="openai",
        intent="coding",
        routing_tier="strong",
        prompt_tokens=812,
        completion_tokens=211,
        cost_usd=0.001234,
        latency_ms=412.5,
        ttft_ms=88.1,
        attempts=1,
    )


def bench_segment(records: int, *, fsync: bool) -> float:
    rows = [_record().as_row() for _ in range(records)]
    with tempfile.TemporaryDirectory() as directory:
        log = SegmentLog(Path(directory), fsync=fsync)
        started = time.perf_counter()
        for row in rows:
            log.append(row)
        elapsed = time.perf_counter() - started
        log.close()
    return elapsed / records * 1e6


async def bench_xadd(records: int, url: str) -> float:
    import redis.asyncio as redis

    client = redis.from_url(url)
    stream = f"prism:bench:ledger:{uuid.uuid4().hex}"
    rows = [_record().as_row() for _ in range(records)]
    try:
        started = time.perf_counter()
        for row in rows:
            await client.xadd(stream, {"r": orjson.dumps(row)})
        return (time.perf_counter() - started) / records * 1e6
    finally:
        await client.delete(stream)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    results = {
        "segment (write)": [bench_segment(args.records, fsync=False) for _ in range(5)],
        "segment (write + fsync)": [
            bench_segment(max(args.records // 20, 200), fsync=True) for _ in range(5)
        ],
        "redis XADD (awaited)": [asyncio.run(bench_xadd(args.records, args.redis)) for _ in range(5)],
    }
    print("| design | µs per record (median of 5) |")
    print("|---|---:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
