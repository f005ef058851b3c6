"""Auth that outlives a database blip (issue #17): a private Postgres is stopped under a running
gateway. A recently verified API key keeps working; an unknown key, a JWT route that needs the
database and a login get 503 ``service_unavailable`` with Retry-After in OpenAI's shape, never 500;
everything recovers when the database is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from gateway.db.migrate import migrate
from tests.integration.db_fixtures import *  # noqa: F403 - private_postgres
from tests.integration.db_fixtures import PostgresInstance, create_database, db_test_settings
from tests.support.gateway_proc import running_gateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PASSWORD = "violet-harbour-kettle-91"


def _assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert error["code"] == "service_unavailable" and error["type"] == "server_error"


def test_known_key_survives_an_outage_and_the_rest_is_503(
    private_postgres: PostgresInstance, tmp_path: Path
) -> None:
    url = create_database(private_postgres.base_url)
    asyncio.run(migrate(db_test_settings(url)))
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_DATABASE_MIGRATE_ON_START": "false",
        "GATEWAY_API_KEY_CACHE_TTL_S": "0.5",  # fresh for 0.5 s: the outage path is what is tested
        "GATEWAY_AUTH_CACHE_STALE_S": "300",
        "GATEWAY_DATABASE_POOL_SIZE": "2",
    }
    with (
        running_gateway(tmp_path, env=env) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as http,
    ):
        email = "outage@example.com"
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 202
        tokens = http.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        key = http.post("/api/keys", json={"name": "k"}, headers=bearer).json()["key"]
        key_auth = {"Authorization": f"Bearer {key}"}
        body = {"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}]}
        assert http.get("/v1/models", headers=key_auth).status_code == 200
        assert http.get("/users/me", headers=bearer).status_code == 200

        private_postgres.stop()
        try:
            # the verified key keeps working (cache past its freshness), on the hot path too
            assert http.get("/v1/models", headers=key_auth).status_code == 200
            assert http.post("/v1/chat/completions", json=body, headers=key_auth).status_code == 200
            # an unknown key: 503 + Retry-After, never 500 or 401
            _assert_unavailable(
                http.get("/v1/models", headers={"Authorization": "Bearer sk-prism-" + "z" * 40})
            )
            _assert_unavailable(
                http.post("/v1/chat/completions", json=body, headers={"X-API-Key": "sk-prism-" + "y" * 40})
            )
            # JWT routes that need the database, and the public auth routes
            _assert_unavailable(http.get("/api/keys", headers=bearer))
            _assert_unavailable(http.post("/auth/login", json={"email": email, "password": PASSWORD}))
            _assert_unavailable(http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))
        finally:
            private_postgres.start()
        # recovery without a restart (the pool replaces dead connections)
        for _ in range(50):
            r = http.post("/auth/login", json={"email": email, "password": PASSWORD})
            if r.status_code == 200:
                break
        assert r.status_code == 200, r.text
        assert (
            http.get("/v1/models", headers={"Authorization": "Bearer sk-prism-" + "z" * 40}).status_code
            == 401
        )
        assert "unhandled_error" not in gateway.log()


def test_a_key_verified_by_another_replica_survives_an_outage(
    private_postgres: PostgresInstance, tmp_path: Path
) -> None:
    """Two replicas on one Postgres and one Redis. A key used only on replica A keeps working on
    replica B — which never saw it — while Postgres is down (B reads A's last known state from
    Redis); a key revoked through A before the outage does not come back from there: 503 on B."""
    url = create_database(private_postgres.base_url)
    asyncio.run(migrate(db_test_settings(url)))
    prefix = f"outage-{uuid.uuid4().hex[:8]}:"
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_DATABASE_MIGRATE_ON_START": "false",
        "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEWAY_REDIS_KEY_PREFIX": prefix,
        "GATEWAY_API_KEY_CACHE_TTL_S": "0.5",
        "GATEWAY_AUTH_CACHE_STALE_S": "300",
        "GATEWAY_DATABASE_POOL_SIZE": "2",
    }
    shared = redis.Redis(host="127.0.0.1", port=6379)
    try:
        with (
            running_gateway(_dir(tmp_path, "a"), env=env) as a,
            running_gateway(_dir(tmp_path, "b"), env=env) as b,
            httpx.Client(timeout=30) as http,
        ):
            email = "shared-outage@example.com"
            assert (
                http.post(a.url + "/auth/register", json={"email": email, "password": PASSWORD}).status_code
                == 202
            )
            tokens = http.post(a.url + "/auth/login", json={"email": email, "password": PASSWORD}).json()
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            kept = http.post(a.url + "/api/keys", json={"name": "kept"}, headers=bearer).json()
            revoked = http.post(a.url + "/api/keys", json={"name": "revoked"}, headers=bearer).json()
            for key in (kept, revoked):
                assert http.get(a.url + "/v1/models", headers={"X-API-Key": key["key"]}).status_code == 200
            assert http.delete(a.url + f"/api/keys/{revoked['id']}", headers=bearer).status_code in (200, 204)
            # A's write-behind of the key states reaches Redis (background, after the request)
            for _ in range(100):
                if shared.exists(f"{prefix}auth:keyid:{kept['id']}") and not shared.exists(
                    f"{prefix}auth:keyid:{revoked['id']}"
                ):
                    break
                time.sleep(0.05)
            assert shared.exists(f"{prefix}auth:keyid:{kept['id']}")

            private_postgres.stop()
            try:
                body = {"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}]}
                r = http.post(b.url + "/v1/chat/completions", json=body, headers={"X-API-Key": kept["key"]})
                assert r.status_code == 200, r.text
                _assert_unavailable(http.get(b.url + "/v1/models", headers={"X-API-Key": revoked["key"]}))
                _assert_unavailable(
                    http.get(b.url + "/v1/models", headers={"X-API-Key": "sk-prism-" + "x" * 40})
                )
                metrics = http.get(b.url + "/metrics").text
                assert 'prism_auth_cache_total{result="shared"}' in metrics
            finally:
                private_postgres.start()
    finally:
        for name in shared.scan_iter(f"{prefix}*"):
            shared.delete(name)
        shared.close()


def _dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path
