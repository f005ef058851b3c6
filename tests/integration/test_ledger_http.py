"""The ledger's edge over real HTTP, as an attacker would try it: a reused ``X-Request-ID`` never
deduplicates a record or a quota reservation, and text the database cannot store is refused with a
400 on every route (authenticated or not) without ever poisoning the records that follow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.db.engine import create_engine
from gateway.db.models import UsageLog
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import db_test_settings
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "ledger-admin@example.com"
ADMIN_PASSWORD = "Ledger-admin-passphrase-7"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("ledger"),
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_DATABASE_URL": pg_database,
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_API_KEY_CACHE_TTL_S": "0",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
        },
    )
    yield process
    process.stop()


def _admin_token(gw: GatewayProcess) -> str:
    r = httpx.post(gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _key(gw: GatewayProcess, **limits: object) -> str:
    r = httpx.post(
        gw.url + "/api/keys",
        json={"name": f"ledger-{uuid.uuid4().hex[:6]}", **limits},
        headers={"Authorization": f"Bearer {_admin_token(gw)}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def _rows(url: str, ids: list[str]) -> dict[str, UsageLog]:
    engine = create_engine(db_test_settings(url))
    try:
        for _ in range(100):  # written off the request path: wait for the flush, bounded
            async with engine.connect() as conn:
                found = (await conn.execute(select(UsageLog).where(UsageLog.request_id.in_(ids)))).all()
            if len(found) >= len(ids):
                break
            await asyncio.sleep(0.05)
        return {row.request_id: row for row in found}
    finally:
        await engine.dispose()


def _chat(content: str) -> dict[str, object]:
    return {"model": "mock-fast", "messages": [{"role": "user", "content": content}]}


async def test_a_reused_request_id_deduplicates_nothing(gw: GatewayProcess, pg_database: str) -> None:
    key = _key(gw, rpm_limit=5)
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": "same-id-every-time"}
    answers = []
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=10) as client:
        for i in range(8):
            answers.append(await client.post(CHAT, json=_chat(f"prompt number {i}")))
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3  # the key's 5 RPM hold
    server_ids = [r.headers["x-request-id"] for r in answers]
    assert len(set(server_ids)) == 8 and "same-id-every-time" not in server_ids
    assert all(r.headers["x-client-request-id"] == "same-id-every-time" for r in answers)
    contents = {r.json()["choices"][0]["message"]["content"] for r in answers[:5]}
    assert len(contents) == 5  # five different prompts, five upstream answers
    assert [r.json()["id"] for r in answers[:5]] == [f"chatcmpl-{rid}" for rid in server_ids[:5]]

    rows = await _rows(pg_database, server_ids)
    assert sorted(rows) == sorted(server_ids)  # one record per request, the refused ones too
    assert {row.client_request_id for row in rows.values()} == {"same-id-every-time"}
    assert sorted(row.http_status for row in rows.values()) == [200] * 5 + [429] * 3


async def test_an_id_reused_across_keys_records_both(gw: GatewayProcess, pg_database: str) -> None:
    ids = []
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
        for key in (_key(gw), _key(gw)):
            r = await client.post(
                CHAT,
                json=_chat("hello"),
                headers={"Authorization": f"Bearer {key}", "X-Request-ID": "shared-between-users"},
            )
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-request-id"])
    rows = await _rows(pg_database, ids)
    assert len(rows) == 2 and len({row.api_key_id for row in rows.values()}) == 2


NUL_CHATS = [
    {"model": "mock\u0000fast", "messages": [{"role": "user", "content": "hi"}]},
    {"model": "mock-fast", "messages": [{"role": "user", "content": "hi\u0000there"}]},
    {"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}], "user": "u\u0000"},
    {"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}], "metadata": {"k\u0000": "v"}},
    {"model": "mock-fast", "messages": [{"role": "user", "content": [{"type": "text", "text": "\u0000"}]}]},
]


@pytest.mark.parametrize("body", NUL_CHATS)
def test_nul_in_any_chat_field_is_a_400(gw: GatewayProcess, body: dict[str, object]) -> None:
    r = httpx.post(gw.url + CHAT, json=body, headers={"Authorization": f"Bearer {_key(gw)}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_text"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/auth/login", {"json": {"email": "a\u0000@example.com", "password": "x" * 12}}),
        ("POST", "/auth/register", {"json": {"email": "b@example.com", "password": "pass\u0000word-long"}}),
        ("POST", "/auth/login", {"data": {"username": "c%00@example.com", "password": "x\u0000" * 6}}),
        (
            "POST",
            "/auth/login",
            {
                "content": b'{"email": "d\\ud800@example.com", "password": "xxxxxxxxxxxx"}',
                "headers": {"content-type": "application/json"},
            },
        ),
        ("GET", "/api/keys/%00", {}),
        ("GET", "/v1/models?after=%00", {}),
        ("POST", "/api/keys", {"json": {"name": "k\u0000"}}),
    ],
)
def test_unstorable_text_is_a_400_on_every_route(
    gw: GatewayProcess, method: str, path: str, kwargs: dict[str, object]
) -> None:
    r = httpx.request(method, gw.url + path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == 400, (path, r.status_code, r.text)
    body = r.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "invalid_text"


async def test_poison_never_stops_the_records_that_follow(
    gw: GatewayProcess, pg_database: str, tmp_path: Path
) -> None:
    key = _key(gw)
    headers = {"Authorization": f"Bearer {key}"}
    ids = []
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=10) as client:
        for i in range(20):
            if i % 4 == 0:
                bad = await client.post(CHAT, json=NUL_CHATS[i % len(NUL_CHATS)])
                assert bad.status_code == 400
                huge = await client.post(CHAT, json={**_chat("x"), "model": "m" * 1_000_000})
                assert huge.status_code in {400, 404, 413}, huge.text
            r = await client.post(CHAT, json=_chat(f"after poison {i}"))
            assert r.status_code == 200
            ids.append(r.headers["x-request-id"])
    rows = await _rows(pg_database, ids)
    assert sorted(rows) == sorted(ids)
    assert "unhandled_error" not in gw.log() and "usage_flush_failed" not in gw.log()
