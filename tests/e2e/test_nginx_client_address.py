"""The shipped nginx.conf and GATEWAY_TRUSTED_PROXIES together: a client behind nginx cannot pick
its throttling bucket by writing X-Forwarded-For, and the gateway sees nginx's view of the client.

One gateway (trusting nginx's loopback address) behind the real nginx config rendered for
loopback. Guesses sent with a different forged X-Forwarded-For each still share the one bucket of
the address nginx saw, so the limit holds; with ``$proxy_add_x_forwarded_for`` (the old config)
each forged value would have been a fresh bucket.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_proc import GatewayProcess, start_gateway
from tests.support.ports import candidate_port

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3
ADMIN = ("edge-admin@example.com", "An-admin-passphrase-42")

pytestmark = pytest.mark.slow


def _render(dest: Path, *, listen_port: int, upstream_ports: list[int]) -> Path:
    path = ROOT / "tests" / "static" / "test_deploy_configs.py"
    spec = importlib.util.spec_from_file_location("_prism_deploy_configs_addr", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    conf: Path = module.render_nginx_conf(dest, listen_port=listen_port, upstream_ports=upstream_ports)
    return conf


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[int, GatewayProcess]]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if nginx is None:
        pytest.fail("`nginx` is not installed (Debian package nginx)", pytrace=False)
    gateway = start_gateway(
        tmp_path,
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_ADMIN_EMAIL": ADMIN[0],
            "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
            "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
            "FORWARDED_ALLOW_IPS": "",
            "GATEWAY_LOGIN_MAX_FAILURES_PER_ACCOUNT": str(LIMIT),
        },
    )
    port = candidate_port()
    conf = _render(tmp_path / "nginx", listen_port=port, upstream_ports=[gateway.port])
    log = conf.parent / "logs" / "stdout.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [nginx, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/nginx-healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail((conf.parent / "logs" / "error.log").read_text(), pytrace=False)
            time.sleep(0.1)
        else:
            pytest.fail("nginx did not come up", pytrace=False)
        yield port, gateway
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        gateway.stop()


def test_forged_forwarded_for_through_nginx_does_not_escape_the_limit(
    edge: tuple[int, GatewayProcess],
) -> None:
    port, _ = edge
    statuses = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for i in range(LIMIT + 3):
            r = client.post(
                "/auth/login",
                json={"email": ADMIN[0], "password": f"wrong-guess-{i}"},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}", "X-Real-IP": f"203.0.113.{i + 1}"},
            )
            statuses.append(r.status_code)
        assert statuses == [401] * LIMIT + [429] * 3, statuses
        # and nginx's security posture: docs and metrics are not served through it
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert client.get(path).status_code == 404
