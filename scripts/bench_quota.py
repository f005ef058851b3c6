"""Median added latency of quota check_and_reserve (+settle) and of a cache hit.

    .venv/bin/python scripts/bench_quota.py [--n 2000] [--redis-url redis://127.0.0.1:6379/0]

Targets: quota check ≤ 0.5 ms, cache hit ≤ 1 ms. Keys use a unique prefix and are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.cache import (
    CachedEntry,
    EffectiveLimits,
    MemoryQuotaBackend,
    MemoryResponseStore,
    QuotaLimiter,
    RedisQuotaBackend,
    RedisResponseStore,
    ResponseCache,
    ScopeLimits,
    cache_key,
    make_redis,
)
from gateway.config.quotas import QuotaConfig
from gateway.security.principal import Principal

PRINCIPAL = Principal(user_id="bench", api_key_id="k-bench")
LIMITS = EffectiveLimits(
    (
        ScopeLimits("key:k-bench", rpm=10_000_000, tpm=10**12, tokens_per_day=10**15, monthly_budget_usd=1e9),
        ScopeLimits("user:bench", rpm=10_000_000, tpm=10**12, tokens_per_day=10**15, monthly_budget_usd=1e9),
    )
)


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"median {statistics.median(samples) * 1000:.3f} ms  p99 {q[98] * 1000:.3f} ms"


async def bench(name: str, limiter: QuotaLimiter, cache: ResponseCache, n: int) -> None:
    check: list[float] = []
    settle: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        ticket = await limiter.check_and_reserve(
            request_id=f"bench-{uuid.uuid4().hex}",
            principal=PRINCIPAL,
            estimated_tokens=500,
            estimated_cost_usd=0.001,
            limits=LIMITS,
        )
        t1 = time.perf_counter()
        await limiter.settle(ticket, actual_tokens=300 + i % 7, actual_cost_usd=0.0006)
        t2 = time.perf_counter()
        check.append(t1 - t0)
        settle.append(t2 - t1)
    request = {"model": "m", "messages": [{"role": "user", "content": "hello " * 50}], "temperature": 0}
    key = cache_key(request, route="gpt-4o-mini", tenant="bench")
    response = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "word " * 400}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 60, "completion_tokens": 400, "total_tokens": 460},
    }
    await cache.set(key, CachedEntry(response=response, model_served="gpt-4o-mini"), 600)
    hits: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        key = cache_key(request, route="gpt-4o-mini", tenant="bench")
        entry = await cache.get(key)
        hits.append(time.perf_counter() - t0)
        assert entry is not None
    print(f"[{name}] quota check_and_reserve ({n}x): {_ms(check)}")
    print(f"[{name}] quota settle            ({n}x): {_ms(settle)}")
    both = [a + b for a, b in zip(check, settle, strict=True)]
    print(f"[{name}] quota check+settle      ({n}x): {_ms(both)}")
    print(f"[{name}] cache hit (key+get)     ({n}x): {_ms(hits)}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    await bench(
        "in-process",
        QuotaLimiter(MemoryQuotaBackend(), QuotaConfig()),
        ResponseCache(MemoryResponseStore()),
        args.n,
    )
    prefix = f"prism-bench-{uuid.uuid4().hex[:8]}"
    client = make_redis(args.redis_url, timeout_ms=500)
    try:
        await bench(
            "redis",
            QuotaLimiter(RedisQuotaBackend(client, prefix=prefix), QuotaConfig()),
            ResponseCache(RedisResponseStore(client, prefix=prefix)),
            args.n,
        )
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
