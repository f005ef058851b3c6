"""Three OS processes, each with its own Redis client, hammer one API key with 3× its RPM."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from tests.integration.cache_fixtures import *  # noqa: F403 - fixtures
from tests.integration.cache_fixtures import hammer_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_three_processes_admit_exactly_the_limit(shared_redis_url: str, key_prefix: str) -> None:
    rpm = 60
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # every process connected before the first request
    procs = [
        ctx.Process(target=hammer_worker, args=(shared_redis_url, key_prefix, rpm, rpm, i, start_at, out))
        for i in range(3)
    ]
    try:
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        out.close()
        out.join_thread()
        import redis

        client = redis.Redis.from_url(shared_redis_url)
        keys = list(client.scan_iter(match=f"{key_prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    allowed = sum(r[1] for r in results)
    refused = [ra for r in results for ra in r[2]]
    assert allowed == rpm  # ±0
    assert len(refused) == 2 * rpm
    assert all(1 <= ra <= 60 for ra in refused), refused
