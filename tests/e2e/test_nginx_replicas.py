"""End to end: two gateway replicas behind a real nginx (nginx/nginx.conf, rendered for loopback).

- a streamed chat completion through nginx arrives token by token (no buffering);
- X-Request-ID: the gateway's own in the answer, the client's echoed as x-client-request-id;
- after one replica is SIGKILLed, the next requests still succeed through the other.

Needs the `nginx` binary (`bash .ci/install-tools.sh`); a missing nginx fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.ports import candidate_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TOKEN_DELAY_MS = 20
ANSWER_WORDS = 40

pytestmark = pytest.mark.slow


def _load_renderer():  # type: ignore[no-untyped-def]
    """The nginx.conf renderer shared with the static checks (one source of truth)."""
    path = ROOT / "tests" / "static" / "test_deploy_configs.py"
    spec = importlib.util.spec_from_file_location("_prism_deploy_configs", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render_nginx_conf


def wait_http(
    url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            pytest.fail(f"process for {url} exited with {proc.returncode}:\n{tail}", pytrace=False)
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code == 200:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    pytest.fail(f"{url} not ready after {deadline_s}s (last: {last!r})\n{tail}", pytrace=False)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def write_config(tmp: Path) -> Path:
    """The repository's routing config plus a slow mock model for the streaming check."""
    config = yaml.safe_load((ROOT / "config" / "prism.yaml").read_text())
    config.setdefault("models", {})["mock-slow"] = {
        "provider": "mock",
        "tier": "cheap",
        "price_input_per_mtok": 0.1,
        "price_output_per_mtok": 0.2,
        "context_window": 8192,
        "mock": {"token_delay_ms": TOKEN_DELAY_MS, "latency_ms": 0, "answer_words": ANSWER_WORDS},
    }
    path = tmp / "prism.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, object]]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if nginx is None:
        pytest.fail(
            "`nginx` is not installed (Debian package nginx); run `bash .ci/install-tools.sh`", pytrace=False
        )
    if not (ROOT / "gateway" / "main.py").exists():
        pytest.fail("gateway/main.py is missing: the app this test drives is not there", pytrace=False)

    config = write_config(tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    replicas: list[tuple[int, subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(2):
            port = candidate_port()
            (tmp_path / f"r{i}").mkdir()
            env = {
                **os.environ,
                "GATEWAY_ENV": "test",
                "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/prism.db",
                "GATEWAY_CONFIG": str(config),
                "GATEWAY_AUTH_ENABLED": "false",
                "GATEWAY_LOG_FORMAT": "json",
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_USAGE_SPILL_DIR": str(tmp_path / f"r{i}" / "spill"),
                "GATEWAY_DRAIN_TIMEOUT_S": "2",
            }
            for var in ("GATEWAY_REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "OPENAI_API_KEY"):
                env.pop(var, None)
            log = tmp_path / f"gateway-{i}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [
                        PYTHON,
                        "-m",
                        "uvicorn",
                        "gateway.main:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs.append(proc)
            replicas.append((port, proc, log))
            # Start one after the other: both share the SQLite file and its first-run schema.
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc, log)

        nginx_port = candidate_port()
        conf = _load_renderer()(
            tmp_path / "nginx",
            listen_port=nginx_port,
            upstream_ports=[p for p, _, _ in replicas],
            # Prove nginx.conf itself streams, not only the gateway's X-Accel-Buffering header.
            ignore_upstream_accel_buffering=True,
        )
        nginx_log = tmp_path / "nginx" / "logs" / "stdout.log"
        with nginx_log.open("wb") as out:
            nginx_proc = subprocess.Popen(
                [nginx, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(nginx_proc)
        wait_http(
            f"http://127.0.0.1:{nginx_port}/nginx-healthz", 15, nginx_proc, conf.parent / "logs" / "error.log"
        )
        yield {
            "nginx_port": nginx_port,
            "replicas": replicas,
            "nginx_dir": conf.parent,
        }
    finally:
        for proc in reversed(procs):
            # nginx: SIGQUIT is its graceful stop; uvicorn: SIGTERM.
            stop(proc, signal.SIGQUIT if proc.args[0] == nginx else signal.SIGTERM)


def openai_client(port: int):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0, timeout=30)


def test_streaming_through_nginx_and_failover(stack: dict[str, object]) -> None:
    port = int(stack["nginx_port"])  # type: ignore[call-overload]
    replicas = stack["replicas"]
    assert isinstance(replicas, list)

    # Request id: kept when the client sends a sane one, generated otherwise.
    r = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "e2e-req-1"}, timeout=5)
    assert r.status_code == 200
    # The client's id comes back for correlation; the request id is the gateway's own (one header).
    assert r.headers.get("x-client-request-id") == "e2e-req-1"
    assert len(r.headers.get_list("x-request-id")) == 1
    assert r.headers["x-request-id"] != "e2e-req-1" and len(r.headers["x-request-id"]) == 32
    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
    assert r.status_code == 200, r.text
    assert len(r.headers.get("x-request-id", "")) >= 16
    assert any(m["id"] == "mock-slow" for m in r.json()["data"])
    # Metrics are per replica, never through the balancer.
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 404

    client = openai_client(port)

    # 1. Streaming: chunks arrive as they are produced, not buffered until the end.
    start = time.monotonic()
    arrivals: list[float] = []
    text = []
    with client.chat.completions.create(
        model="mock-slow",
        messages=[{"role": "user", "content": "Tell me about gateways."}],
        stream=True,
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic() - start)
                text.append(chunk.choices[0].delta.content)
    total = time.monotonic() - start
    assert len(arrivals) >= 10, f"only {len(arrivals)} content chunks: {''.join(text)!r}"
    expected_span = (len(arrivals) - 1) * TOKEN_DELAY_MS / 1000
    spread = arrivals[-1] - arrivals[0]
    assert spread >= 0.5 * expected_span, f"chunks arrived together (spread {spread:.3f}s): buffered?"
    assert arrivals[0] < 0.5 * arrivals[-1], f"first chunk at {arrivals[0]:.3f}s, last at {arrivals[-1]:.3f}s"
    assert total < 30

    # 2. Both replicas serve traffic before the failure.
    for _ in range(4):
        resp = client.chat.completions.create(model="mock-fast", messages=[{"role": "user", "content": "hi"}])
        assert resp.choices[0].message.content

    # 3. Kill one replica hard; every following request must still succeed via the other.
    _, victim, _ = replicas[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    survivor_port, survivor, survivor_log = replicas[1]
    assert survivor.poll() is None, survivor_log.read_text()[-2000:]

    for i in range(8):
        resp = client.chat.completions.create(
            model="mock-fast", messages=[{"role": "user", "content": f"after failover {i}"}]
        )
        assert resp.choices[0].message.content
    chunks = 0
    with client.chat.completions.create(
        model="mock-fast", messages=[{"role": "user", "content": "stream after failover"}], stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
    assert chunks > 0

    # The JSON access log shows the surviving upstream serving the requests.
    nginx_dir = stack["nginx_dir"]
    assert isinstance(nginx_dir, Path)
    lines = [
        json.loads(line) for line in (nginx_dir / "logs" / "access.log").read_text().splitlines() if line
    ]
    completions = [entry for entry in lines if entry["uri"] == "/v1/chat/completions"]
    assert completions and all(entry["status"] == 200 for entry in completions)
    assert f"127.0.0.1:{survivor_port}" in completions[-1]["upstream_addr"]
    assert all(entry["client_request_id"] for entry in lines)
    assert all(len(entry["request_id"]) == 32 for entry in completions)  # the gateway's own id
