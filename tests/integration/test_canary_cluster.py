"""Canary decisions reach every worker of every replica: an admin rollback or promote on one replica,
and an automatic health rollback decided by one worker, change the canary's share on all three
workers of two ``python -m gateway`` replicas (one with two workers) sharing one Redis within 5 s.

Each replica has its own SQLite database (bootstrapped before its workers start); the canary state
is shared through Redis under a key prefix unique to the run. Arms are counted from the
``x-prism-route`` header of requests sent on fresh connections (so every worker gets some). A third
``python -m gateway`` (two workers, no Redis) shares its decisions through the parent's status
directory. The three start together (the module's wall time is their start-up)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.cache.backends import make_redis
from gateway.db.engine import create_engine, create_sessionmaker
from gateway.db.migrate import migrate
from gateway.experiments.canary import CanaryDecision
from gateway.experiments.canary_sync import RedisCanaryStore
from gateway.services.users import ensure_admin
from tests.integration.db_fixtures import db_test_settings
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = ("canary-admin@example.com", "An-admin-passphrase-42")
START_TIMEOUT_S = 150.0
CONFIG = """
models:
  stable: {provider: mock}
  candidate: {provider: mock}
  broken: {provider: mock, mock: {failure_rate: 1.0, failure_kind: "500"}}
aliases:
  plain: {target: stable}
retry: {max_attempts: 1}
circuit_breaker: {failure_threshold: 100000}
cache: {enabled: false}
experiments:
  by-admin:
    alias: chat-admin
    control: current
    sticky: request
    arms: {current: {model: stable}, next: {model: candidate}}
    canary: {arm: next, min_samples: 100000, steps: [{percent: 50, after_requests: 100000}, {percent: 100}]}
  by-health:
    alias: chat-health
    control: current
    sticky: request
    arms: {current: {model: stable}, next: {model: broken}}
    canary:
      {arm: next, min_samples: 3, window: 20, steps: [{percent: 50, after_requests: 100000}, {percent: 100}]}
"""
APPLY_WITHIN_S = 5.0


async def _bootstrap(url: str) -> None:
    settings = db_test_settings(url, admin_email=ADMIN[0], admin_password=ADMIN[1])
    await migrate(settings)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await ensure_admin(session, settings=settings)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayProcess]]:
    """Replicas a (2 workers) and b (1 worker) on one Redis, and c (2 workers, no Redis), started
    together."""
    prefix = f"test-canary-{uuid.uuid4().hex[:8]}"
    started: list[GatewayProcess] = []
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = []
            for name, workers in (("a", 2), ("b", 1), ("c", 2)):
                directory = tmp_path_factory.mktemp(f"canary-{name}")
                db_url = f"sqlite+aiosqlite:///{directory}/gateway.db"
                asyncio.run(_bootstrap(db_url))
                env = {
                    "GATEWAY_AUTH_ENABLED": "false",
                    "GATEWAY_DATABASE_URL": db_url,
                    "GATEWAY_DATABASE_MIGRATE_ON_START": "false",
                    "GATEWAY_QUOTA_ENABLED": "false",
                }
                if name != "c":
                    env |= {
                        "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
                        "GATEWAY_REDIS_KEY_PREFIX": prefix,
                        "GATEWAY_REPLICA_ID": f"replica-{name}",
                    }
                futures.append(
                    pool.submit(
                        start_gateway,
                        directory,
                        config=CONFIG,
                        env=env,
                        workers=workers,
                        entry="gateway",
                        ready_timeout=START_TIMEOUT_S,
                    )
                )
            for future in futures:
                started.append(future.result())
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def _admin(gateway: GatewayProcess, stack: contextlib.ExitStack) -> httpx.Client:
    http = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=15))
    login = http.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    assert login.status_code == 200, login.text
    http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return http


def _arms(gateways: list[GatewayProcess], alias: str, rounds: int) -> dict[str, int]:
    """``rounds`` requests per gateway, each on a new connection; counts of the ``arm=`` label."""
    counts: dict[str, int] = {}
    body = {"model": alias, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(rounds):
        for gateway in gateways:
            answer = httpx.post(f"{gateway.openai_base_url}/chat/completions", json=body, timeout=15)
            route = answer.headers.get("x-prism-route", "")
            arm = next((p[4:] for p in route.split(";") if p.startswith("arm=")), "none")
            counts[arm] = counts.get(arm, 0) + 1
    return counts


def _wait_workers(admin: httpx.Client, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(admin.get("/admin/config/status").json()["workers"]) == count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers registered")


def test_canary_decisions_reach_every_worker_of_two_replicas(gateways: list[GatewayProcess]) -> None:
    a, b, _ = gateways
    replicas = [a, b]
    with contextlib.ExitStack() as stack:
        admin_a, admin_b = _admin(a, stack), _admin(b, stack)
        _wait_workers(admin_a, 3)
        before = _arms(replicas, "chat-admin", rounds=15)
        assert before.get("next", 0) > 0 and before.get("current", 0) > 0, before

        # an admin rollback on replica a: every worker of both replicas stops sending canary traffic
        started = time.monotonic()
        answer = admin_a.post("/admin/experiments/by-admin/canary/rollback", json={"reason": "bad build"})
        assert answer.status_code == 200, answer.text
        shared: dict[str, Any] = answer.json()["shared"]
        assert shared["scope"] == "cluster" and shared["workers"] == 3, shared
        assert shared["applied"] == 3 and shared["pending"] == [], shared
        shared_rollback_ms = shared["waited_ms"]
        assert shared["shared"]["status"] == "rolled_back" and shared["shared"]["actor"].startswith("admin:")
        rollback_s = time.monotonic() - started
        assert rollback_s <= APPLY_WITHIN_S
        after = _arms(replicas, "chat-admin", rounds=30)
        assert after == {"current": 60}, after

        # the report on the other replica shows the shared decision and who runs it
        report = admin_b.get("/admin/experiments/by-admin").json()
        assert report["canary"]["status"] == "rolled_back", report["canary"]
        assert report["canary_shared"]["shared"]["source"].startswith("replica-a:")
        assert report["canary_shared"]["applied"] == 3

        # a promote on replica b: every worker sends all the traffic to the canary
        answer = admin_b.post("/admin/experiments/by-admin/canary/promote")
        assert answer.status_code == 200, answer.text
        assert answer.json()["shared"]["applied"] == 3, answer.json()
        promote_ms = answer.json()["shared"]["waited_ms"]
        assert _arms(replicas, "chat-admin", rounds=30) == {"next": 60}

        # an automatic health rollback decided on replica b's worker reaches replica a's two workers
        # (replica a gets no chat-health traffic before: its workers cannot decide on their own)
        deadline = time.monotonic() + 30
        while admin_b.get("/admin/experiments/by-health").json()["canary"]["status"] != "rolled_back":
            assert time.monotonic() < deadline, "replica b never rolled the broken canary back"
            _arms([b], "chat-health", rounds=5)
        decided = time.monotonic()
        while True:
            shared = admin_a.get("/admin/experiments/by-health").json()["canary_shared"]
            if shared["shared"] is not None and shared["applied"] == 3:
                break
            assert time.monotonic() - decided <= APPLY_WITHIN_S, shared
            time.sleep(0.1)
        auto_s = time.monotonic() - decided
        print(  # the figures in docs/experiments.md (pytest -s)
            f"\ncanary figures: admin rollback answered, applied on 3/3 workers,"
            f" in {rollback_s * 1000:.0f} ms (waited {shared_rollback_ms} ms);"
            f" promote waited {promote_ms} ms; automatic rollback seen"
            f" applied on 3/3 workers {auto_s * 1000:.0f} ms after replica b reported it"
        )
        assert shared["shared"]["actor"] == "auto" and shared["shared"]["source"].startswith("replica-b:")
        assert _arms([a], "chat-health", rounds=30) == {"current": 30}

        # bad input: unknown experiment, unknown action
        assert admin_a.post("/admin/experiments/nope/canary/rollback").status_code == 404
        assert admin_a.post("/admin/experiments/by-admin/canary/explode").status_code == 400


def test_without_redis_the_workers_of_one_parent_share_decisions(gateways: list[GatewayProcess]) -> None:
    c = gateways[2]
    with contextlib.ExitStack() as stack:
        admin = _admin(c, stack)
        _wait_workers(admin, 2)
        answer = admin.post("/admin/experiments/by-admin/canary/rollback")
        assert answer.status_code == 200, answer.text
        shared = answer.json()["shared"]
        assert (shared["scope"], shared["workers"], shared["applied"]) == ("replica", 2, 2), shared
        assert _arms([c], "chat-admin", rounds=40) == {"current": 40}
        answer = admin.post("/admin/experiments/by-admin/reset", json={"reason": "new build"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["canary_shared"]["applied"] == 2
        assert _arms([c], "chat-admin", rounds=40).get("next", 0) > 0
        print(f"\ncanary figures (no Redis, 2 workers): rollback waited {shared['waited_ms']} ms")


async def test_the_redis_store_compares_and_sets() -> None:
    redis = make_redis("redis://127.0.0.1:6379/0", timeout_ms=2000)
    store = RedisCanaryStore(redis, prefix=f"test-canary-store-{uuid.uuid4().hex[:8]}")
    decision = CanaryDecision(
        experiment="exp",
        generation=1,
        fingerprint="f",
        event="rollback",
        step=0,
        status="rolled_back",
        reason="r",
        actor="auto",
        source="replica:1",
        at="2026-12-07T00:00:00.000+00:00",
    )
    try:
        assert await store.write(decision)
        assert not await store.write(decision)  # two workers deciding over generation 0: one wins
        assert not await store.write(replace(decision, generation=3))
        assert await store.write(replace(decision, generation=2, event="reset", status="ramping"))
        assert (await store.read())["exp"].generation == 2
        await store.ack("replica:1", {"exp": 2})
        assert await store.acks() == {"replica:1": {"exp": 2}}
    finally:
        await redis.delete(store.key, store.applied_key)
        await redis.aclose()
