"""The console's server side over HTTP: ``/ui`` and its CSP, Swagger at ``/docs`` from local assets
only, and the endpoints added for the console with their RBAC: ``GET /admin/config``,
``POST /admin/experiments/{name}/canary/{action}`` and ``GET /api/usage`` (the caller's own)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway_proc import GatewayProcess, start_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "ui-admin@example.com"
ADMIN_PASSWORD = "Ui-admin-passphrase-42"
USER_EMAIL = "ui-user@example.com"
USER_PASSWORD = "ui-user-passphrase-77"

CONFIG = """
models:
  stable: {provider: mock, price_input_per_mtok: 1, price_output_per_mtok: 2}
  next: {provider: mock, price_input_per_mtok: 1, price_output_per_mtok: 2}
experiments:
  rollout:
    alias: chat-rollout
    control: stable
    arms: {stable: {model: stable}, next: {model: next}}
    canary: {arm: next, min_samples: 20, steps: [{percent: 10, after_requests: 1000}, {percent: 100}]}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("console-http"),
        config=CONFIG,
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_DOCS_ENABLED": "true",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.2",
        },
        ready_timeout=120,
    )
    yield process
    process.stop()


def _bearer(gw: GatewayProcess, email: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{gw.url}/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_ui_is_served_with_a_same_origin_csp(gw: GatewayProcess) -> None:
    assert httpx.get(f"{gw.url}/ui").headers["location"] == "/ui/"
    page = httpx.get(f"{gw.url}/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
    for asset in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text):
        r = httpx.get(f"{gw.url}{asset}")
        assert r.status_code == 200, asset
    assert (
        httpx.get(f"{gw.url}/ui/static/pages/playground.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert httpx.get(f"{gw.url}/ui/static/../../main.py").status_code == 404


def test_swagger_loads_only_local_assets(gw: GatewayProcess) -> None:
    docs = httpx.get(f"{gw.url}/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text and "https://" not in docs.text.replace("https://swagger.io", "")
    assert "https:" not in docs.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert len(assets) == 3 and all(a.startswith("/ui/static/vendor/swagger-ui/") for a in assets), assets
    for asset in assets:
        assert httpx.get(f"{gw.url}{asset}").status_code == 200, asset
    assert httpx.get(f"{gw.url}/redoc").status_code == 404  # ReDoc only came from a CDN: dropped


def test_console_endpoints_enforce_roles_and_scope(gw: GatewayProcess) -> None:
    r = httpx.post(f"{gw.url}/auth/register", json={"email": USER_EMAIL, "password": USER_PASSWORD})
    assert r.status_code == 202, r.text
    admin = _bearer(gw, ADMIN_EMAIL, ADMIN_PASSWORD)
    user = _bearer(gw, USER_EMAIL, USER_PASSWORD)

    assert httpx.get(f"{gw.url}/admin/config").status_code == 401
    assert httpx.get(f"{gw.url}/admin/config", headers=user).status_code == 403
    config = httpx.get(f"{gw.url}/admin/config", headers=admin).json()
    assert config["models"] == ["next", "stable"]
    assert config["config"]["models"]["stable"]["provider"] == "mock"

    canary_url = f"{gw.url}/admin/experiments/rollout/canary"
    assert httpx.post(f"{canary_url}/rollback", headers=user).status_code == 403
    assert httpx.post(f"{gw.url}/admin/experiments/nope/canary/rollback", headers=admin).status_code == 404
    bad = httpx.post(f"{canary_url}/explode", headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    rolled = httpx.post(f"{canary_url}/rollback", headers=admin, json={"reason": "looks off"}).json()
    assert rolled["canary"]["status"] == "rolled_back" and rolled["canary"]["percent"] == 0
    assert rolled["canary"]["rollback_reason"] == "looks off"
    promoted = httpx.post(f"{canary_url}/promote", headers=admin).json()["canary"]
    assert promoted["status"] == "complete" and promoted["percent"] == 100
    assert [e["event"] for e in promoted["history"]] == ["start", "rollback", "promote"]

    for headers in (admin, admin, user):
        r = httpx.post(
            f"{gw.url}/v1/chat/completions",
            headers=headers,
            json={"model": "stable", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text

    def own(headers: dict[str, str]) -> int:
        data = httpx.get(f"{gw.url}/api/usage", headers=headers).json()["data"]
        return int(data[0]["requests"]) if data else 0

    wait_until(lambda: own(admin) == 2 and own(user) == 1, "each caller's own usage")
    by_user = httpx.get(f"{gw.url}/api/usage?group_by=user", headers=user).json()["data"]
    assert len(by_user) == 1  # never anyone else's rows
    csv = httpx.get(f"{gw.url}/api/usage/export", headers=user)
    assert csv.status_code == 200 and csv.text.count("\n") >= 2
    assert httpx.get(f"{gw.url}/api/usage").status_code == 401

    def hits() -> int:
        data = httpx.get(f"{gw.url}/api/usage", headers=admin).json()["data"]
        return int(data[0]["cache_hits"]) if data else 0

    before = hits()  # the two "hi" above may have been one miss and one hit
    same = {"model": "stable", "temperature": 0, "messages": [{"role": "user", "content": "cache me"}]}
    for _ in range(2):
        r = httpx.post(f"{gw.url}/v1/chat/completions", headers=admin, json=same)
        assert r.status_code == 200, r.text
    assert r.headers["x-prism-cache"] == "hit"
    wait_until(lambda: hits() == before + 1, "the cache hit counted in the usage report")
    report = httpx.get(f"{gw.url}/admin/usage?group_by=model", headers=admin).json()["data"]
    assert {row["model"]: row["fallbacks"] for row in report} == {"stable": 0}
