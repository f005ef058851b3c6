"""Proxy selection for upstream URLs: the environment's variables as curl/httpx read them, per-model
overrides, and ``NO_PROXY`` matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.providers import UpstreamHTTPSettings
from gateway.config.routing import ConfigError, parse_config
from gateway.providers.transport import bypasses_proxy, proxy_for
from gateway.providers.wire_http import Endpoint, Proxy

DEFAULT = UpstreamHTTPSettings()


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("api.openai.com", 443, "*", True),
        ("api.openai.com", 443, "openai.com", True),
        ("api.openai.com", 443, ".openai.com", True),
        ("openai.com", 443, ".openai.com", True),
        ("notopenai.com", 443, "openai.com", False),
        ("api.openai.com", 443, "example.com, localhost", False),
        ("vllm.internal", 8000, "vllm.internal:8000", True),
        ("vllm.internal", 8001, "vllm.internal:8000", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("127.0.0.1", 80, "127.0.0.1", True),
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]:80", True),
        ("LOCALHOST", 80, "localhost", True),
        ("api.openai.com", 443, "", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypass


def test_environment_and_overrides() -> None:
    env = {"HTTPS_PROXY": "http://corp:3128", "http_proxy": "http://plain:8080", "NO_PROXY": "internal"}
    assert proxy_for("https://api.openai.com/v1", DEFAULT, env) == Proxy("corp", 3128)
    assert proxy_for("http://vllm:8000/v1", DEFAULT, env) == Proxy("plain", 8080)
    assert proxy_for("https://llm.internal/v1", DEFAULT, env) is None
    assert proxy_for("https://api.openai.com/v1", UpstreamHTTPSettings(trust_env=False), env) is None
    assert proxy_for("https://api.openai.com/v1", UpstreamHTTPSettings(proxy=""), env) is None
    own = UpstreamHTTPSettings(proxy="http://u:p%40ss@other:1")
    assert proxy_for("https://llm.internal/v1", own, env) == Proxy("other", 1, "Basic dTpwQHNz")
    both = {"https_proxy": "a:1", "HTTPS_PROXY": "http://b:2"}
    assert proxy_for("https://x/v1", DEFAULT, both) == Proxy("a", 1)
    assert proxy_for("https://x/v1", DEFAULT, {"ALL_PROXY": "http://all:3"}) == Proxy("all", 3)
    assert proxy_for("https://x/v1", DEFAULT, {}) is None
    for loopback in ("http://127.0.0.1:8000/v1", "http://localhost:11434", "http://[::1]:8000/v1"):
        assert proxy_for(loopback, DEFAULT, env) is None  # the environment's proxy cannot reach it
    assert proxy_for("http://127.0.0.1:8000/v1", own, env) == Proxy("other", 1, "Basic dTpwQHNz")
    with pytest.raises(ValueError, match="environment"):
        proxy_for("https://x/v1", DEFAULT, {"ALL_PROXY": "socks5://s:1080"})


def test_plain_http_through_a_proxy_is_absolute_form() -> None:
    endpoint = Endpoint("http://vllm:8000/v1/chat/completions", proxy=Proxy("p", 1, "Basic eA=="))
    assert endpoint.head == (
        b"POST http://vllm:8000/v1/chat/completions HTTP/1.1\r\nHost: vllm:8000\r\n"
        b"Proxy-Authorization: Basic eA==\r\n"
    )
    tunnelled = Endpoint("https://api.openai.com/v1/chat/completions", proxy=Proxy("p", 1, "Basic eA=="))
    assert tunnelled.head == b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
    assert "eA==" not in repr(Proxy("p", 1, "Basic eA=="))


def test_a_bad_http_block_is_refused_with_its_line(tmp_path: Path) -> None:
    text = f"""models:
  up:
    provider: openai
    base_url: https://llm.internal/v1
    http:
      proxy: socks5://egress:1080
      ca_bundle: {tmp_path / "missing.pem"}
  local:
    provider: mock
    http: {{pool_idle_s: 5}}
"""
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    message = str(refused.value)
    assert "prism.yaml:6: models.up.http.proxy" in message and "only http:// proxies" in message
    assert "prism.yaml:7: models.up.http.ca_bundle" in message
    assert "client: wire only" in message
    config = parse_config("models:\n  up:\n    provider: openai\n    http: {proxy: 'http://u:pw@p:3128'}\n")
    assert "pw" not in repr(config.models["up"])
