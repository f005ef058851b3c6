"""With ``/v1`` auth off, admin routes still take an admin's token (they answered 403 to it: #26)
and still refuse everyone else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.gateway_proc import running_gateway

pytestmark = pytest.mark.integration


def test_admin_routes_authenticate_admins_when_v1_is_anonymous(tmp_path: Path) -> None:
    env = {
        "GATEWAY_AUTH_ENABLED": "false",
        "GATEWAY_ADMIN_EMAIL": "ops@example.com",
        "GATEWAY_ADMIN_PASSWORD": "Operator-passphrase-31",
    }
    with running_gateway(tmp_path, env=env) as gw:
        login = httpx.post(
            gw.url + "/auth/login", json={"email": "ops@example.com", "password": "Operator-passphrase-31"}
        )
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert httpx.post(gw.url + "/admin/config/reload", headers=admin).status_code == 200
        assert httpx.get(gw.url + "/admin/circuits", headers=admin).status_code == 200
        anonymous = httpx.post(gw.url + "/admin/config/reload")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["type"]
        assert (
            httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "mock-fast", "messages": [{"role": "user", "content": "hi"}]},
            ).status_code
            == 200
        )  # /v1 stays anonymous
