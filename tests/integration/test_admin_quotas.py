"""Admins see a key's or user's quota usage and change its limits with immediate effect."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.support.gateway_proc import running_gateway

ADMIN = ("quota-admin@example.com", "An-admin-passphrase-42")
PASSWORD = "violet-harbour-kettle-91"
CONFIG = """
models:
  m: {provider: mock, tier: cheap}
quotas:
  tiers:
    free: {rpm: 1000, tpm: 1000000}
    pro: {rpm: 5000, tpm: 5000000}
"""


def test_admin_reads_and_patches_quotas(tmp_path: Path) -> None:
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN[0],
        "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
        "GATEWAY_API_KEY_CACHE_TTL_S": "30",
        "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEWAY_REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "GATEWAY_REDIS_TIMEOUT_MS": "3000",
    }
    with (
        running_gateway(tmp_path, config=CONFIG, env=env) as gateway,
        httpx.Client(base_url=gateway.url) as http,
    ):
        email = f"quota-{uuid.uuid4().hex[:8]}@example.com"
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 202
        user_token = http.post("/auth/login", json={"email": email, "password": PASSWORD}).json()[
            "access_token"
        ]
        created = http.post(
            "/api/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {user_token}"}
        )
        key_id, secret = created.json()["id"], created.json()["key"]
        admin = {
            "Authorization": "Bearer "
            + http.post("/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
        }
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post(
            "/v1/chat/completions", json=ask, headers={"Authorization": f"Bearer {secret}"}
        ).is_success

        report = http.get(f"/admin/quotas/key:{key_id}", headers=admin).json()
        assert report["requests_per_minute"]["used"] == 1 and report["requests_per_minute"]["limit"] == 1000
        assert (
            http.get(
                f"/admin/quotas/key:{key_id}", headers={"Authorization": f"Bearer {user_token}"}
            ).status_code
            == 403
        )
        assert http.get("/admin/quotas/key:nope", headers=admin).status_code == 404
        assert http.get("/admin/quotas/bogus", headers=admin).status_code == 400

        patched = http.patch(f"/admin/quotas/key:{key_id}", json={"rpm_limit": 2}, headers=admin)
        assert patched.status_code == 200 and patched.json()["requests_per_minute"]["limit"] == 2
        statuses = [
            http.post(
                "/v1/chat/completions", json=ask, headers={"Authorization": f"Bearer {secret}"}
            ).status_code
            for _ in range(2)
        ]
        assert statuses == [200, 429]  # 1 used before + 1 more = the new limit of 2, at once

        user_id = http.get("/users/me", headers={"Authorization": f"Bearer {user_token}"}).json()["id"]
        assert (
            http.patch(f"/admin/quotas/user:{user_id}", json={"tier": "platinum"}, headers=admin).status_code
            == 400
        )
        moved = http.patch(f"/admin/quotas/user:{user_id}", json={"tier": "pro"}, headers=admin)
        assert moved.status_code == 200
        assert moved.json()["tier"] == "pro" and moved.json()["requests_per_minute"]["limit"] == 5000
