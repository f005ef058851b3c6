"""The real gateway (uvicorn, uvloop) in a locked-down deployment: its upstream needs a client
certificate from a private CA and is reachable only through an authenticated forward proxy named in
``HTTPS_PROXY``; its Redis speaks only TLS with a client certificate and an ACL user (the default
user off). A chat completion is answered, cached in that Redis, and served from the cache again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.gateway_proc import start_gateway
from tests.support.http_doubles import ForwardProxy, MTLSUpstream
from tests.support.pki import PKI, make_pki
from tests.support.redis_proc import RedisServer, servers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def doubles(tmp_path: Path) -> AsyncIterator[tuple[PKI, MTLSUpstream, ForwardProxy]]:
    pki = make_pki(tmp_path / "pki")
    upstream, proxy = MTLSUpstream(pki), ForwardProxy(credentials=("egress", "pw"))
    await upstream.start()
    await proxy.start()
    yield pki, upstream, proxy
    await proxy.stop()
    await upstream.stop()


async def test_gateway_behind_a_proxy_with_mtls_and_tls_redis(
    tmp_path: Path, doubles: tuple[PKI, MTLSUpstream, ForwardProxy]
) -> None:
    pki, upstream, proxy = doubles
    redis = RedisServer(
        tmp_path / "redis",
        *("--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key)),
        *("--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes"),
        *("--user", "default", "off", "--user", "prism", "on", ">r3dis pw", "~*", "&*", "+@all"),
        tls=True,
    ).start()
    tls_query = "&".join(
        f"{name}={quote(str(path))}"
        for name, path in (
            ("ssl_ca_certs", pki.ca),
            ("ssl_certfile", pki.client_cert),
            ("ssl_keyfile", pki.client_key),
        )
    )
    redis_url = f"rediss://prism:{quote('r3dis pw')}@127.0.0.1:{redis.port}/0?{tls_query}"
    prefix = f"secure-{uuid.uuid4().hex[:8]}"
    config = f"""
models:
  secure:
    provider: openai
    base_url: https://upstream.test:{upstream.port}/v1
    http:
      ca_bundle: {pki.ca}
      client_cert: {pki.client_cert}
      client_key: {pki.client_key}
"""
    env = {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_KEY_PREFIX": prefix,
        "GATEWAY_REDIS_TIMEOUT_MS": "2000",
        "HTTPS_PROXY": proxy.url("egress:pw"),
        "NO_PROXY": "",
    }
    (tmp_path / "gw").mkdir()
    with servers(redis):
        gateway = await asyncio.to_thread(start_gateway, tmp_path / "gw", config=config, env=env)
        try:
            body = {"model": "secure", "temperature": 0, "messages": [{"role": "user", "content": "hello"}]}
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
                assert (await client.get("/readyz")).status_code == 200  # Redis PING over TLS + ACL
                first = await client.post("/v1/chat/completions", json=body)
                assert first.status_code == 200, first.text
                assert first.json()["choices"][0]["message"]["content"] == "hi"
                second = await client.post("/v1/chat/completions", json=body)
                assert second.status_code == 200 and second.headers["x-prism-cache"] == "hit"
            assert proxy.seen == [f"CONNECT upstream.test:{upstream.port}"]
            assert upstream.subjects == ["prism-gateway"]  # the second answer came from Redis
            check = Redis.from_url(redis_url)
            try:
                assert [key async for key in check.scan_iter(match=f"{prefix}:*")]
            finally:
                await check.aclose()
        finally:
            await asyncio.to_thread(gateway.stop)
