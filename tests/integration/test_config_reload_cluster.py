"""Config reload that reaches everything (issue #18): ``POST /admin/config/reload`` called once, or
SIGHUP to one parent process, and every worker of every replica serves the new model (0 × 404); the
admin answer lists every worker with the hash it runs; a bad file is refused everywhere.

Real ``python -m gateway`` processes: one with two workers and one with a single worker share one
Redis (two replicas, three workers; a second two-worker replica only costs start-up time on a busy
machine); another two-worker one runs without Redis (its workers are told through their parent)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cache.backends import make_redis
from gateway.config_sync import RedisRegistry, WorkerStatus
from gateway.db.engine import create_engine, create_sessionmaker
from gateway.db.migrate import migrate
from gateway.services.users import ensure_admin
from gateway.supervision import status_dir
from tests.integration.db_fixtures import create_database, db_test_settings, drop_database, postgres_available
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = ("reload-admin@example.com", "An-admin-passphrase-42")
START_TIMEOUT_S = 150.0
"""Spawned workers import the whole app: on a shared 2-core machine that alone took 30-40 s."""
BASE = """
models:
  mock-fast: {provider: mock, tier: cheap}
  mock-smart: {provider: mock, tier: strong}
aliases:
  auto: {smart: true}
cache: {enabled: false}
"""


def with_models(*names: str) -> str:
    return BASE.replace("aliases:", "".join(f"  {name}: {{provider: mock}}\n" for name in names) + "aliases:")


async def _bootstrap(url: str) -> None:
    """Migrate and create the admin once, before the workers start (they would race to create it)."""
    settings = db_test_settings(url, admin_email=ADMIN[0], admin_password=ADMIN[1])
    await migrate(settings)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await ensure_admin(session, settings=settings)
    finally:
        await engine.dispose()


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_DATABASE_URL": db_url,
        "GATEWAY_DATABASE_MIGRATE_ON_START": "false",
        "GATEWAY_API_KEY_CACHE_TTL_S": "0",
        **extra,
    }


def _wait_for(check: Callable[[], Any], *, timeout: float = 15.0, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


class Admin:
    def __init__(self, gateway: GatewayProcess, stack: contextlib.ExitStack) -> None:
        self.http = stack.enter_context(httpx.Client(base_url=gateway.url, timeout=15))
        login = self.http.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
        assert login.status_code == 200, login.text
        self.http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def status(self) -> dict[str, Any]:
        answer = self.http.get("/admin/config/status")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def key(self) -> str:
        created = self.http.post("/api/keys", json={"name": "reload"})
        assert created.status_code == 201, created.text
        key: str = created.json()["key"]
        return key


def _statuses(gateways: list[GatewayProcess], key: str, model: str, rounds: int) -> list[int]:
    """``rounds`` requests per gateway, each on a new connection (so every worker gets some)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"}
    return [
        httpx.post(f"{gateway.openai_base_url}/chat/completions", json=body, headers=headers, timeout=15)
        .status_code
        for _ in range(rounds)
        for gateway in gateways
    ]


def _all_on(status: dict[str, Any], digest: str, workers: int) -> bool:
    return len(status["workers"]) == workers and all(w["hash"] == digest for w in status["workers"])


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def two_replicas(tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    if not postgres_available():
        pytest.skip("Postgres is not reachable")
    db_url = create_database()
    asyncio.run(_bootstrap(db_url))
    prefix = f"test-reload-{uuid.uuid4().hex[:8]}"
    started: list[GatewayProcess] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = []
            for name, workers in (("a", 2), ("b", 1)):
                directory = tmp_path / name
                directory.mkdir()
                env = _env(
                    db_url,
                    GATEWAY_REDIS_URL="redis://127.0.0.1:6379/0",
                    GATEWAY_REDIS_KEY_PREFIX=prefix,
                    GATEWAY_REPLICA_ID=f"replica-{name}",
                )
                futures.append(
                    pool.submit(
                        start_gateway,
                        directory,
                        config=BASE,
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
        drop_database(db_url)


def test_reload_and_sighup_reach_every_worker_of_two_replicas(
    two_replicas: list[GatewayProcess], stack: contextlib.ExitStack
) -> None:
    a, b = two_replicas
    admin = Admin(a, stack)
    key = admin.key()
    _wait_for(lambda: len(admin.status()["workers"]) == 3, what="3 workers in the config status", timeout=60)

    for gateway in two_replicas:  # each replica has its own copy of the file (a ConfigMap per pod)
        gateway.config_path.write_text(with_models("mock-new"))
    reloaded = admin.http.post("/admin/config/reload")
    assert reloaded.status_code == 200, reloaded.text
    report = reloaded.json()
    digest = report["hash"]
    assert report["scope"] == "cluster" and report["converged"] and report["pending"] == []
    assert len(report["workers"]) == 3
    assert all(w["hash"] == digest and w["answered"] for w in report["workers"])
    assert report["replicas"] == {"replica-a": {digest: 2}, "replica-b": {digest: 1}}
    assert "mock-new" in report["models"]
    codes = _statuses(two_replicas, key, "mock-new", rounds=40)
    assert codes.count(200) == len(codes), codes
    assert httpx.get(f"{b.url}/readyz").json()["config"]["hash"] == digest

    # a bad file is refused by the worker that got the call and nothing is sent: everyone keeps the config
    for gateway in two_replicas:
        gateway.config_path.write_text("models: [")
    refused = admin.http.post("/admin/config/reload")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_config"
    assert _all_on(admin.status(), digest, 3)
    assert _statuses(two_replicas, key, "mock-new", rounds=5).count(200) == 10
    rejected = re.compile(r'prism_config_reloads_total\{outcome="rejected"\} [1-9]')
    assert rejected.search(httpx.get(f"{b.url}/metrics").text) is None  # b was never asked to read it

    # a replica whose file differs (here: broken) keeps running its config and says so
    a.config_path.write_text(with_models("mock-new", "mock-a-only"))
    partial = admin.http.post("/admin/config/reload").json()
    assert not partial["converged"] and partial["pending"] == []
    by_replica = {w["replica"]: w for w in partial["workers"]}
    assert by_replica["replica-b"]["hash"] == digest and by_replica["replica-b"]["answered"]
    assert "invalid YAML" in by_replica["replica-b"]["error"]
    assert httpx.get(f"{b.url}/readyz").json()["config"] == {"hash": digest, "reload_error": True}
    assert by_replica["replica-a"]["hash"] == partial["hash"] != digest
    assert _statuses([b], key, "mock-new", rounds=5).count(200) == 5
    assert rejected.search(httpx.get(f"{b.url}/metrics").text)

    # SIGHUP to one parent: its workers reload, and the notice takes the new file to the other replica
    for gateway in two_replicas:
        gateway.config_path.write_text(with_models("mock-new", "mock-two"))
    a.signal(signal.SIGHUP)
    status = _wait_for(
        lambda: (s := admin.status())["hash"] != digest and _all_on(s, s["hash"], 3) and s,
        what="every worker on the SIGHUP'd config",
    )
    assert status["converged"]
    codes = _statuses(two_replicas, key, "mock-two", rounds=40)
    assert codes.count(200) == len(codes), codes

    metrics = httpx.get(f"{b.url}/metrics").text
    assert re.search(r'prism_config_reloads_total\{outcome="ok"\} [1-9]', metrics)
    assert f'prism_config_info{{hash="{status["hash"]}"}} 1.0' in metrics


def test_reload_without_redis_reaches_the_workers_of_one_parent(
    tmp_path: Path, stack: contextlib.ExitStack
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path}/reload.db"
    asyncio.run(_bootstrap(db_url))
    gateway = start_gateway(
        tmp_path, config=BASE, env=_env(db_url), workers=2, entry="gateway", ready_timeout=START_TIMEOUT_S
    )
    try:
        admin = Admin(gateway, stack)
        key = admin.key()
        _wait_for(lambda: len(admin.status()["workers"]) == 2, what="both workers in the status", timeout=60)
        assert status_dir(gateway.process.pid).is_dir()

        gateway.config_path.write_text(with_models("mock-new"))
        reloaded = admin.http.post("/admin/config/reload")
        assert reloaded.status_code == 200, reloaded.text
        report = reloaded.json()
        assert report["scope"] == "replica" and report["converged"], report
        assert len(report["workers"]) == 2 and all(w["answered"] for w in report["workers"])
        codes = _statuses([gateway], key, "mock-new", rounds=40)
        assert codes.count(200) == len(codes), codes

        gateway.config_path.write_text(with_models("mock-new", "mock-two"))
        gateway.signal(signal.SIGHUP)
        _wait_for(
            lambda: (s := admin.status())["hash"] != report["hash"] and _all_on(s, s["hash"], 2),
            what="both workers on the SIGHUP'd config",
        )
        codes = _statuses([gateway], key, "mock-two", rounds=40)
        assert codes.count(200) == len(codes), codes
    finally:
        gateway.stop()
    assert not status_dir(gateway.process.pid).exists()  # the parent removed it at exit


async def test_redis_registry_lists_fresh_workers_and_drops_stale_ones() -> None:
    redis = make_redis("redis://127.0.0.1:6379/0", timeout_ms=2000)
    registry = RedisRegistry(redis, prefix=f"test-registry-{uuid.uuid4().hex[:8]}")
    try:
        now = time.time()
        for pid, seen_at in ((1, now), (2, now - 60)):
            status = WorkerStatus("r", pid, "h", loaded_at=now, error=None, notice=None, seen_at=seen_at)
            await registry.put(status)
        assert [status.pid for status in await registry.list()] == [1]
        assert await redis.hkeys(registry.key) == [b"r:1"]  # the stale field was removed
        assert 0 < await redis.ttl(registry.key) <= 60  # the hash goes away once no worker refreshes it
        await registry.remove(WorkerStatus("r", 1, "h", loaded_at=now, error=None, notice=None, seen_at=now))
        assert await redis.exists(registry.key) == 0
    finally:
        await redis.aclose()
