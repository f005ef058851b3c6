"""The production surface and cluster-wide auth limits, against real replicas.

Two replicas of the real gateway (uvicorn, ``GATEWAY_ENV=production``): replica A with two worker
processes, replica B with one; one Postgres database and one Redis (own key prefix). The test
client plays the trusted proxy (127.0.0.1 is in ``GATEWAY_TRUSTED_PROXIES``) and sets
``X-Forwarded-For`` to act as many clients. Replica B has registration switched on (to create the
test accounts); replica A keeps the production default (closed)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.cache_fixtures import *  # noqa: F403 - shared_redis_url
from tests.integration.db_fixtures import *  # noqa: F403 - pg_url
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_EMAIL = "sec-admin@example.com"
ADMIN_PASSWORD = "An-admin-passphrase-42"
PASSWORD = "violet-harbour-kettle-91"
METRICS_TOKEN = "metrics-" + "x" * 24
PAIR_LIMIT = 5
ACCOUNT_LIMIT = 20
CACHE_TTL_S = 2.0
CLOSE = {"Connection": "close"}  # a new connection per request: spread over the workers


@dataclass
class Cluster:
    a: GatewayProcess
    b: GatewayProcess


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, shared_redis_url: str
) -> Iterator[Cluster]:
    prefix = f"sec-{uuid.uuid4().hex[:10]}"
    env = {
        "GATEWAY_ENV": "production",
        "GATEWAY_JWT_SECRET": "j" * 48,
        "GATEWAY_METRICS_TOKEN": METRICS_TOKEN,
        "GATEWAY_DATABASE_URL": pg_url,
        "GATEWAY_DATABASE_MIGRATE_ON_START": "false",
        "GATEWAY_REDIS_URL": shared_redis_url,
        "GATEWAY_REDIS_KEY_PREFIX": prefix,
        "GATEWAY_REDIS_TIMEOUT_MS": "3000",
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
        "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
        "FORWARDED_ALLOW_IPS": "",  # `python -m uvicorn` here; `python -m gateway` switches it off itself
        "GATEWAY_API_KEY_CACHE_TTL_S": str(CACHE_TTL_S),
        "GATEWAY_LOGIN_MAX_FAILURES_PER_ACCOUNT": str(PAIR_LIMIT),
        "GATEWAY_LOGIN_MAX_FAILURES_PER_ACCOUNT_TOTAL": str(ACCOUNT_LIMIT),
    }
    # each replica its own multiprocess metrics directory (never one a previous test left in os.environ)
    a_dir = tmp_path_factory.mktemp("replica-a")
    (a_dir / "metrics").mkdir()
    a = start_gateway(
        a_dir, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(a_dir / "metrics")}, workers=2, ready_timeout=120
    )
    try:
        b = start_gateway(
            tmp_path_factory.mktemp("replica-b"),
            env={**env, "GATEWAY_REGISTRATION_OPEN": "true", "GATEWAY_REGISTER_MAX_PER_IP": "1000"},
            ready_timeout=120,
        )
    except BaseException:
        a.stop()
        raise
    try:
        yield Cluster(a, b)
    finally:
        a.stop()
        b.stop()
        import redis

        client = redis.Redis.from_url(shared_redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def _from(address: str) -> dict[str, str]:
    return {**CLOSE, "X-Forwarded-For": address}


async def _register(cluster: Cluster, client: httpx.AsyncClient) -> str:
    email = f"sec-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(f"{cluster.b.url}/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 202, r.text
    return email


async def _login(
    url: str, client: httpx.AsyncClient, email: str, password: str, address: str
) -> httpx.Response:
    return await client.post(
        f"{url}/auth/login", json={"email": email, "password": password}, headers=_from(address)
    )


async def test_production_surface_is_closed(cluster: Cluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
        metrics = await client.get("/metrics")
        assert metrics.status_code == 401 and metrics.json()["error"]["type"] == "authentication_error"
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200 and b"prism_" in ok.content
        new = await client.post(
            "/auth/register", json={"email": "nobody-new@example.com", "password": PASSWORD}
        )
        taken = await client.post("/auth/register", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        assert new.status_code == taken.status_code == 403 and new.json() == taken.json()
        hot = await client.post("/v1/chat/completions", json={"model": "mock-fast", "messages": []})
        for r in (ok, hot, await client.get("/healthz"), await client.get("/nope")):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["strict-transport-security"].startswith("max-age=31536000")
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["referrer-policy"] == "no-referrer"
        login = await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert login.status_code == 200 and login.headers["cache-control"] == "no-store"


async def test_unknown_user_and_wrong_password_look_alike(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        wrong = await _login(cluster.a.url, client, ADMIN_EMAIL, "not-the-password-1", "192.0.2.200")
        unknown = await _login(
            cluster.a.url, client, "nobody@example.com", "not-the-password-1", "192.0.2.201"
        )
        assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()


async def test_guessing_over_workers_and_replicas_gets_only_the_limit(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        victim = await _register(cluster, client)
        attacker = "198.51.100.23"
        urls = [cluster.a.url, cluster.b.url] * 20
        results = await asyncio.gather(
            *(_login(url, client, victim, f"guess-{i}-wrong", attacker) for i, url in enumerate(urls))
        )
        statuses = [r.status_code for r in results]
        assert statuses.count(401) == PAIR_LIMIT, statuses
        assert statuses.count(429) == len(urls) - PAIR_LIMIT
        assert all(int(r.headers["retry-after"]) >= 1 for r in results if r.status_code == 429)
        print(f"\nguessing: {len(urls)} guesses over 3 workers / 2 replicas, {statuses.count(401)} checked")
        # the owner, from another address, is not locked out
        assert (await _login(cluster.a.url, client, victim, PASSWORD, "203.0.113.77")).status_code == 200


async def test_distributed_guessing_never_locks_out_the_owner(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        victim = await _register(cluster, client)
        addresses = [f"198.18.0.{i}" for i in range(1, 11)]
        urls = [cluster.a.url, cluster.b.url]
        results = await asyncio.gather(
            *(
                _login(urls[(i + j) % 2], client, victim, f"wrong-{i}-{j}", address)
                for i, address in enumerate(addresses)
                for j in range(PAIR_LIMIT)
            )
        )
        checked = sum(r.status_code == 401 for r in results)
        assert checked <= ACCOUNT_LIMIT + len(addresses), checked
        print(f"\ndistributed: {len(results)} guesses from {len(addresses)} addresses, {checked} checked")
        # an address that already failed is refused once the account bucket is full ...
        assert (await _login(cluster.b.url, client, victim, PASSWORD, addresses[0])).status_code == 429
        # ... while the owner from a clean address signs in, on either replica
        for url in urls:
            assert (await _login(url, client, victim, PASSWORD, "203.0.113.99")).status_code == 200


async def _revoked_within(url: str, client: httpx.AsyncClient, token: str, *, bound: float) -> float:
    """Poll ``/users/me`` on ``url`` (new connections) until the token is refused; seconds taken."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        r = await client.get(f"{url}/users/me", headers={**CLOSE, "Authorization": f"Bearer {token}"})
        if r.status_code == 401:
            return time.monotonic() - started
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"token still accepted on {url} after {bound}s")


async def test_password_change_and_logout_reach_the_other_replica(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        email = await _register(cluster, client)
        old = (await _login(cluster.a.url, client, email, PASSWORD, "203.0.113.5")).json()
        auth = {"Authorization": f"Bearer {old['access_token']}"}
        for url in (cluster.a.url, cluster.b.url) * 3:  # both replicas (and A's workers) cache the user
            assert (await client.get(f"{url}/users/me", headers={**CLOSE, **auth})).status_code == 200
        r = await client.post(
            f"{cluster.a.url}/auth/password",
            json={"current_password": PASSWORD, "new_password": "amber-lantern-orchard-57"},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        # the new session works at once everywhere, though B's cache still holds the old version
        fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for url in (cluster.b.url, cluster.a.url) * 2:
            assert (await client.get(f"{url}/users/me", headers={**CLOSE, **fresh})).status_code == 200
        changed = await _revoked_within(cluster.b.url, client, old["access_token"], bound=CACHE_TTL_S + 2)

        session = r.json()
        auth = {"Authorization": f"Bearer {session['access_token']}"}
        for url in (cluster.a.url, cluster.b.url) * 3:
            assert (await client.get(f"{url}/users/me", headers={**CLOSE, **auth})).status_code == 200
        assert (await client.post(f"{cluster.a.url}/auth/logout", headers=auth)).status_code == 204
        logged_out = await _revoked_within(
            cluster.b.url, client, session["access_token"], bound=CACHE_TTL_S + 2
        )
        print(f"\nrevocation on the other replica: password change {changed:.2f}s, logout {logged_out:.2f}s")
