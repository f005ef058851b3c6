"""Accounts end to end over real HTTP: register, login (JSON + form), refresh rotation and reuse,
logout, API keys (create, use on /v1, revoke), object-level checks, admin-only usage and users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.db_fixtures import *  # noqa: F403
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "root-admin@example.com"
ADMIN_PASSWORD = "An-admin-passphrase-42"
PASSWORD = "violet-harbour-kettle-91"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("accounts"),
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_API_KEY_CACHE_TTL_S": "0",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
            "GATEWAY_LOGIN_MAX_FAILURES_PER_ACCOUNT": "3",
            "GATEWAY_REGISTER_MAX_PER_IP": "1000",
        },
    )
    yield process
    process.stop()


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def _signup(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    email = _email()
    r = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 202, r.text
    r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return email, r.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_refresh_logout(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        email, tokens = await _signup(client)
        assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
        me = await client.get("/users/me", headers=_bearer(tokens["access_token"]))
        assert me.status_code == 200 and me.json()["email"] == email
        assert "password_hash" not in me.json()

        # OAuth2 password form works too
        form = await client.post("/auth/login", data={"username": email, "password": PASSWORD})
        assert form.status_code == 200

        # an existing email answers exactly like a new one (no account enumeration)
        again = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
        fresh = await client.post("/auth/register", json={"email": _email(), "password": PASSWORD})
        assert again.status_code == fresh.status_code == 202 and again.json() == fresh.json()
        assert again.headers["cache-control"] == "no-store"
        weak = await client.post("/auth/register", json={"email": _email(), "password": "Password123"})
        assert weak.status_code == 400

        # access and refresh tokens are not interchangeable
        assert (await client.get("/users/me", headers=_bearer(tokens["refresh_token"]))).status_code == 401
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
        assert r.status_code == 401

        # rotation, then reuse of the old token revokes the family
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200
        rotated = r.json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        r = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
        assert r.status_code == 200
        latest = r.json()
        # the first token is older than the immediately previous one: reuse, even inside the grace window
        reuse = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert reuse.status_code == 401
        after = await client.post("/auth/refresh", json={"refresh_token": latest["refresh_token"]})
        assert after.status_code == 401, "the whole family must be revoked after reuse"
        # and the session's access tokens stop too (the family is checked by the authenticator)
        assert (await client.get("/users/me", headers=_bearer(latest["access_token"]))).status_code == 401
        assert "refresh_token_reuse_detected" in gw.log()

        # logout revokes the session's family
        r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        session = r.json()
        assert (
            await client.post("/auth/logout", headers=_bearer(session["access_token"]))
        ).status_code == 204
        r = await client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert r.status_code == 401
        # logout ends the access token as well
        assert (await client.get("/users/me", headers=_bearer(session["access_token"]))).status_code == 401

        # logout-all invalidates outstanding access tokens too
        r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        other = r.json()
        assert (
            await client.post("/auth/logout-all", headers=_bearer(other["access_token"]))
        ).status_code == 204
        assert (await client.get("/users/me", headers=_bearer(other["access_token"]))).status_code == 401


async def test_parallel_refresh_two_tabs_keep_the_session(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        _, tokens = await _signup(client)
        results = await asyncio.gather(
            *(client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(2))
        )
        assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
        assert results[0].headers["cache-control"] == "no-store"
        for r in results:  # both tabs go on with their own pair
            nxt = await client.post("/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
            assert nxt.status_code == 200
            assert (
                await client.get("/users/me", headers=_bearer(nxt.json()["access_token"]))
            ).status_code == 200


async def test_unknown_user_and_wrong_password_look_alike_and_throttle(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url) as client:
        email, _ = await _signup(client)
        wrong = await client.post("/auth/login", json={"email": email, "password": "not-the-password-x"})
        unknown = await client.post("/auth/login", json={"email": _email(), "password": "not-the-password-x"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        for _ in range(3):
            await client.post("/auth/login", json={"email": email, "password": "still-wrong-pass"})
        r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 429 and "retry-after" in r.headers


async def test_api_keys_and_object_level_checks(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        _, alice = await _signup(client)
        _, bob = await _signup(client)
        r = await client.post(
            "/api/keys",
            json={"name": "ci", "allowed_models": [], "rpm_limit": 100},
            headers=_bearer(alice["access_token"]),
        )
        assert r.status_code == 201, r.text
        created = r.json()
        secret = created["key"]
        assert secret.startswith("sk-prism-") and created["prefix"] == secret[: len(created["prefix"])]
        listed = (await client.get("/api/keys", headers=_bearer(alice["access_token"]))).json()["data"]
        assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]

        # the key works on /v1 via Bearer and X-API-Key, and on /users/me
        models = await client.get("/v1/models", headers=_bearer(secret))
        assert models.status_code == 200
        assert (await client.get("/v1/models", headers={"X-API-Key": secret})).status_code == 200
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/v1/models", headers=_bearer("sk-prism-nope"))).status_code == 401

        # bob cannot see or revoke alice's key
        assert (
            await client.delete(f"/api/keys/{created['id']}", headers=_bearer(bob["access_token"]))
        ).status_code == 404
        assert (await client.get("/api/keys", headers=_bearer(bob["access_token"]))).json()["data"] == []

        # non-admins are refused on admin routes
        assert (await client.get("/admin/usage", headers=_bearer(alice["access_token"]))).status_code == 403
        assert (await client.get("/admin/users", headers=_bearer(secret))).status_code == 403

        # revoke: takes effect immediately in this process
        assert (
            await client.delete(f"/api/keys/{created['id']}", headers=_bearer(alice["access_token"]))
        ).status_code == 204
        assert (await client.get("/v1/models", headers=_bearer(secret))).status_code == 401

        # other users' conversations are 404
        assert (
            await client.get("/api/conversations/does-not-exist", headers=_bearer(bob["access_token"]))
        ).status_code == 404
        page = await client.get("/api/conversations?limit=0", headers=_bearer(bob["access_token"]))
        assert page.status_code == 400


async def test_admin_usage_and_users(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        r = await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        admin = _bearer(r.json()["access_token"])
        _, user_tokens = await _signup(client)
        key = (
            await client.post("/api/keys", json={"name": "k"}, headers=_bearer(user_tokens["access_token"]))
        ).json()
        body = {"model": "mock-fast", "messages": [{"role": "user", "content": "hello"}]}
        models = (await client.get("/v1/models", headers=_bearer(key["key"]))).json()["data"]
        body["model"] = next(m["id"] for m in models if m["id"].startswith("mock"))
        for _ in range(3):
            r = await client.post("/v1/chat/completions", json=body, headers=_bearer(key["key"]))
            assert r.status_code == 200, r.text
        me = (await client.get("/users/me", headers=_bearer(user_tokens["access_token"]))).json()
        report: dict[str, object] = {}
        for _ in range(50):
            report = (
                await client.get(f"/admin/usage?group_by=user,model&user_id={me['id']}", headers=admin)
            ).json()
            if report.get("data") and report["data"][0]["requests"] == 3:  # type: ignore[index]
                break
            await asyncio.sleep(0.1)
        row = report["data"][0]  # type: ignore[index]
        assert row["requests"] == 3 and row["user"] == me["id"] and row["latency_p50_ms"] is not None
        csv = await client.get(f"/admin/usage/export?user_id={me['id']}", headers=admin)
        assert csv.status_code == 200 and csv.text.count("\n") == 4
        bad = await client.get(
            "/admin/usage?start=2025-02-01T00:00:00Z&end=2025-01-01T00:00:00Z", headers=admin
        )
        assert bad.status_code == 400
        assert (await client.get("/admin/usage?group_by=colour", headers=admin)).status_code == 400

        users = (await client.get("/admin/users?limit=500", headers=admin)).json()
        assert any(u["id"] == me["id"] for u in users["data"])
        r = await client.patch(
            f"/admin/users/{me['id']}", json={"disabled": True, "tier": "pro"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["disabled"] is True
        assert (
            await client.get("/users/me", headers=_bearer(user_tokens["access_token"]))
        ).status_code == 401
        assert (await client.get("/v1/models", headers=_bearer(key["key"]))).status_code == 401
        r = await client.patch(f"/admin/users/{me['id']}", json={"role": "root"}, headers=admin)
        assert r.status_code == 400


def test_fixture_paths_exist(tmp_path: Path) -> None:
    assert tmp_path.exists()


async def test_conversation_store_through_completions(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        _, alice = await _signup(client)
        _, bob = await _signup(client)
        conv = f"conv-{uuid.uuid4().hex[:8]}"
        headers = {**_bearer(alice["access_token"]), "X-Prism-Conversation-Id": conv}
        body = {"model": "mock-fast", "messages": [{"role": "user", "content": "first question"}]}
        assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
        body = {"model": "mock-fast", "stream": True, "messages": [{"role": "user", "content": "second one"}]}
        r = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 200 and "[DONE]" in r.text
        detail = (
            await client.get(f"/api/conversations/{conv}", headers=_bearer(alice["access_token"]))
        ).json()
        roles = [m["role"] for m in detail["messages"]]
        assert roles == ["user", "assistant", "user", "assistant"], detail
        assert detail["messages"][2]["content"] == "second one" and detail["messages"][3]["content"]
        listing = (await client.get("/api/conversations", headers=_bearer(alice["access_token"]))).json()
        assert listing["total"] == 1 and listing["data"][0]["id"] == conv
        # bob can neither read it nor write into it
        assert (
            await client.get(f"/api/conversations/{conv}", headers=_bearer(bob["access_token"]))
        ).status_code == 404
        bob_headers = {**_bearer(bob["access_token"]), "X-Prism-Conversation-Id": conv}
        r = await client.post("/v1/chat/completions", json=body | {"stream": False}, headers=bob_headers)
        assert r.status_code == 404
        assert (
            await client.delete(f"/api/conversations/{conv}", headers=_bearer(alice["access_token"]))
        ).status_code == 204
        assert (
            await client.get(f"/api/conversations/{conv}", headers=_bearer(alice["access_token"]))
        ).status_code == 404


async def test_change_password_ends_every_other_session(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        email, first = await _signup(client)
        second = (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
        new_password = "amber-lantern-orchard-57"
        wrong = await client.post(
            "/auth/password",
            json={"current_password": "not-my-password-9", "new_password": new_password},
            headers=_bearer(first["access_token"]),
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_current_password"
        r = await client.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=_bearer(first["access_token"]),
        )
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        fresh = r.json()
        for old in (first, second):
            assert (await client.get("/users/me", headers=_bearer(old["access_token"]))).status_code == 401
            refreshed = await client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
            assert refreshed.status_code == 401
        assert (await client.get("/users/me", headers=_bearer(fresh["access_token"]))).status_code == 200
        old_login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert old_login.status_code == 401
        new_login = await client.post("/auth/login", json={"email": email, "password": new_password})
        assert new_login.status_code == 200


async def test_admin_reset_token_works_once(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        admin = _bearer(
            (
                await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            ).json()["access_token"]
        )
        email, user = await _signup(client)
        me = (await client.get("/users/me", headers=_bearer(user["access_token"]))).json()
        refused = await client.post(
            f"/admin/users/{me['id']}/password-reset", headers=_bearer(user["access_token"])
        )
        assert refused.status_code == 403
        issued = await client.post(f"/admin/users/{me['id']}/password-reset", headers=admin)
        assert issued.status_code == 201, issued.text
        assert issued.headers["cache-control"] == "no-store"
        reset_token = issued.json()["reset_token"]
        # the account is locked at once: old sessions and the old password stop working
        assert (await client.get("/users/me", headers=_bearer(user["access_token"]))).status_code == 401
        assert (
            await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        ).status_code == 401
        # a reset token is not an access token
        assert (await client.get("/users/me", headers=_bearer(reset_token))).status_code == 401
        new_password = "copper-meadow-violin-38"
        body = {"token": reset_token, "new_password": new_password}
        assert (await client.post("/auth/password-reset", json=body)).status_code == 204
        again = await client.post("/auth/password-reset", json={**body, "new_password": "other-pass-77-zz"})
        assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_reset_token"
        forged = await client.post("/auth/password-reset", json={**body, "token": reset_token[:-4] + "AAAA"})
        assert forged.json() == again.json()
        r = await client.post("/auth/login", json={"email": email, "password": new_password})
        assert r.status_code == 200
