"""The lean client's production transport features against real processes on 127.0.0.1: an mTLS
upstream (CA, server and client certificates made by the test), an asyncio forward proxy
(``CONNECT`` tunnels and absolute-form plain HTTP, with Basic credentials), proxy selection from
``HTTPS_PROXY``/``NO_PROXY`` through the provider registry, the per-model pool idle time, and the
one retry of a request that met a closed keep-alive socket."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

import orjson
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from gateway.config.providers import UpstreamHTTPSettings
from gateway.config.routing import RoutingConfig
from gateway.providers.base import ModelCall
from gateway.providers.http import UpstreamClients
from gateway.providers.openai_wire import OpenAIWireProvider
from gateway.providers.registry import build_targets
from gateway.providers.transport import EndpointFactory
from gateway.providers.wire_http import Endpoint, WireHTTP, WireHTTPError, encode_headers
from tests.support.http_doubles import COMPLETION, ForwardProxy, MTLSUpstream
from tests.support.pki import PKI, make_pki

pytestmark = pytest.mark.integration

HEADERS = encode_headers({"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def upstream(pki: PKI) -> AsyncIterator[MTLSUpstream]:
    server = MTLSUpstream(pki)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    server = ForwardProxy(credentials=("prism", "s3cret/:@"))
    await server.start()
    yield server
    await server.stop()


def _settings(pki: PKI, **overrides: object) -> UpstreamHTTPSettings:
    options: dict[str, object] = {
        "ca_bundle": pki.ca,
        "client_cert": pki.client_cert,
        "client_key": pki.client_key,
    }
    return UpstreamHTTPSettings.model_validate({**options, **overrides})


async def test_mtls_needs_the_client_certificate_and_the_ca(pki: PKI, upstream: MTLSUpstream) -> None:
    factory = EndpointFactory(env={})
    http = WireHTTP(connect_s=2.0)
    url = upstream.url + "/chat/completions"
    try:
        for _ in range(3):
            response = await http.post(factory.endpoint(url, _settings(pki)), HEADERS, b"{}")
            assert response.status == 200 and orjson.loads(await response.read())["choices"]
        assert upstream.subjects == ["prism-gateway"] * 3
        assert len(set(upstream.peers)) == 1  # one TLS connection, kept alive

        without_cert = factory.endpoint(url, UpstreamHTTPSettings(ca_bundle=pki.ca))
        with pytest.raises(WireHTTPError):  # the server's handshake refuses it (or closes at once)
            response = await http.post(without_cert, HEADERS, b"{}")
            await response.read()
        wrong_ca = factory.endpoint(url, _settings(pki, ca_bundle=pki.other_ca))
        with pytest.raises(WireHTTPError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await http.post(wrong_ca, HEADERS, b"{}")
        assert upstream.subjects == ["prism-gateway"] * 3
    finally:
        await http.aclose()


async def test_https_through_an_authenticated_connect_proxy(
    pki: PKI, upstream: MTLSUpstream, proxy: ForwardProxy
) -> None:
    """TLS runs end to end inside the tunnel (the proxy sees only ``CONNECT host:port``); the tunnel
    is a keep-alive connection like any other."""
    factory = EndpointFactory(env={})
    http = WireHTTP(connect_s=2.0)
    url = upstream.url + "/chat/completions"
    through = factory.endpoint(url, _settings(pki, proxy=proxy.url("prism:s3cret%2F%3A%40")))
    try:
        for _ in range(3):
            response = await http.post(through, HEADERS, b"{}")
            assert response.status == 200 and b"choices" in await response.read()
        assert proxy.seen == [f"CONNECT 127.0.0.1:{upstream.port}"]
        assert upstream.subjects == ["prism-gateway"] * 3

        wrong = factory.endpoint(url, _settings(pki, proxy=proxy.url("prism:wrong")))
        with pytest.raises(WireHTTPError, match=r"proxy refused CONNECT.*407"):
            await http.post(wrong, HEADERS, b"{}")
    finally:
        await http.aclose()


async def test_plain_http_through_the_proxy_uses_the_absolute_form(proxy: ForwardProxy) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Host", ""))
        return web.Response(body=COMPLETION, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://upstream.test:{port}/v1/chat/completions"
    http = WireHTTP(connect_s=2.0)
    env = {"HTTP_PROXY": proxy.url("prism:s3cret%2F%3A%40")}
    try:
        endpoint = EndpointFactory(env).endpoint(url, UpstreamHTTPSettings())
        for _ in range(2):
            response = await http.post(endpoint, HEADERS, b"{}")
            assert response.status == 200
            await response.read()
        assert proxy.seen == [f"POST {url}"]
        assert seen == [f"upstream.test:{port}"] * 2
    finally:
        await http.aclose()
        await runner.cleanup()


async def test_registry_takes_proxy_and_tls_from_config_and_environment(
    pki: PKI, upstream: MTLSUpstream, proxy: ForwardProxy
) -> None:
    """Built from the routing config and an environment: ``HTTPS_PROXY`` applies by default, a
    loopback upstream goes direct, a model's own ``http.proxy`` applies even to loopback, and
    ``NO_PROXY`` exempts hosts."""
    tls = {"ca_bundle": str(pki.ca), "client_cert": str(pki.client_cert), "client_key": str(pki.client_key)}
    remote = f"https://upstream.test:{upstream.port}/v1"
    config = RoutingConfig.model_validate(
        {
            "models": {
                "via-env": {"provider": "openai", "base_url": remote, "http": tls},
                "loopback": {"provider": "openai", "base_url": upstream.url, "http": tls},
                "pinned": {
                    "provider": "openai",
                    "base_url": upstream.url,
                    "http": {**tls, "proxy": proxy.url("prism:s3cret%2F%3A%40")},
                },
            }
        }
    )
    call = ModelCall(model="up", messages=[{"role": "user", "content": "hi"}])
    clients = UpstreamClients(connect_s=2.0)
    env = {"https_proxy": proxy.url("prism:s3cret%2F%3A%40"), "NO_PROXY": "example.internal"}
    try:
        targets = build_targets(config, clients=clients, env=env)
        assert (await targets["via-env"].provider.complete(call)).choices[0].content == "hi"
        assert proxy.seen == [f"CONNECT upstream.test:{upstream.port}"]
        assert (await targets["loopback"].provider.complete(call)).choices[0].content == "hi"
        assert len(proxy.seen) == 1
        assert (await targets["pinned"].provider.complete(call)).choices[0].content == "hi"
        assert proxy.seen[1:] == [f"CONNECT 127.0.0.1:{upstream.port}"]
        assert upstream.subjects == ["prism-gateway"] * 3
    finally:
        await clients.aclose()
    exempt = EndpointFactory({**env, "NO_PROXY": ".test"})
    assert exempt.endpoint(remote, UpstreamHTTPSettings()).proxy is None
    assert EndpointFactory(env).endpoint(remote, UpstreamHTTPSettings()).proxy is not None


async def test_pool_idle_time_is_per_model(pki: PKI, upstream: MTLSUpstream, tmp_path: Path) -> None:
    """A connection idle past its model's ``pool_idle_s`` is not reused, and the pool closes it even
    when no request comes, while another model's idle connection stays open."""
    factory = EndpointFactory(env={})
    http = WireHTTP(connect_s=2.0)
    url = upstream.url + "/chat/completions"
    combined = tmp_path / "client-with-key.pem"  # another TLS profile, the same identity
    combined.write_bytes(pki.client_cert.read_bytes() + pki.client_key.read_bytes())
    never_reused = factory.endpoint(url, _settings(pki, pool_idle_s=1e-9))
    short = factory.endpoint(
        url, UpstreamHTTPSettings(ca_bundle=pki.ca, client_cert=combined, pool_idle_s=0.05)
    )
    long = factory.endpoint(url, _settings(pki, pool_idle_s=60))
    try:
        for _ in range(3):
            response = await http.post(never_reused, HEADERS, b"{}")
            await response.read()
        assert len(set(upstream.peers)) == 3
        await asyncio.sleep(0)  # the expired ones were closed when found; let them report it
        for endpoint in (long, short):
            response = await http.post(endpoint, HEADERS, b"{}")
            await response.read()
        await _until(lambda: http.open_connections <= 1)  # the short one closed by the pool
        assert http.open_connections == 1
        response = await http.post(long, HEADERS, b"{}")  # the long-lived one is still reused
        await response.read()
        assert upstream.peers[-1] == upstream.peers[-3]
    finally:
        await http.aclose()


async def _until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        if condition():
            return
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


class ClosingUpstream:
    """A raw HTTP/1.1 server that answers keep-alive, then misbehaves on the ``fail_at``-th request
    of a connection (or later): ``eof`` closes without answering (an idle-timeout close racing the request),
    ``reset`` sends a TCP RST, ``partial`` sends part of the status line first."""

    def __init__(self, mode: Literal["eof", "reset", "partial"], fail_at: int) -> None:
        self.mode = mode
        self.fail_at = fail_at
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(f"http://127.0.0.1:{self.port}/v1/chat/completions")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
                await reader.readexactly(int(match.group(1)) if match else 0)
                self.requests += 1
                served += 1
                if served >= self.fail_at:
                    if self.mode == "partial":
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
                        await writer.drain()
                    elif self.mode == "reset":
                        raw = writer.get_extra_info("socket")
                        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(COMPLETION), COMPLETION)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@contextlib.asynccontextmanager
async def closing_upstream(
    mode: Literal["eof", "reset", "partial"], fail_at: int
) -> AsyncIterator[ClosingUpstream]:
    server = ClosingUpstream(mode, fail_at)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _stale_retries() -> float:
    return REGISTRY.get_sample_value("prism_upstream_connects_total", {"outcome": "stale_retry"}) or 0.0


async def test_an_upstream_closing_idle_sockets_costs_no_failure() -> None:
    """An upstream with a short keep-alive timeout closes the pooled socket between two requests: the
    pool notices the close and the next request opens a new connection, with no error and no retry."""
    closed = asyncio.Event()
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(0.05):  # the upstream's keep-alive timeout
                        head = await reader.readuntil(b"\r\n\r\n")
                except TimeoutError:
                    return
                match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
                await reader.readexactly(int(match.group(1)) if match else 0)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(COMPLETION), COMPLETION)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            closed.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = Endpoint(f"http://127.0.0.1:{port}/v1/chat/completions")
    http = WireHTTP(connect_s=2.0)
    before = _stale_retries()
    try:
        for _ in range(3):
            closed.clear()
            response = await http.post(endpoint, HEADERS, b"{}")
            assert await response.read() == COMPLETION
            await asyncio.wait_for(closed.wait(), 10)
            await _until(lambda: http.open_connections == 0)  # the client saw the close
        assert connections == 3
        assert _stale_retries() == before
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("mode", ["eof", "reset"])
async def test_a_closed_keep_alive_socket_is_retried_once_on_a_new_connection(
    mode: Literal["eof", "reset"],
) -> None:
    async with closing_upstream(mode, fail_at=2) as server:
        http = WireHTTP(connect_s=2.0)
        before = _stale_retries()
        try:
            for _ in range(4):  # 1 on A; 2 on A fails → retried on B; 3 on B fails → retried on C; ...
                response = await http.post(server.endpoint, HEADERS, b"{}")
                assert response.status == 200 and await response.read() == COMPLETION
            assert server.connections == 4
            assert _stale_retries() - before == 3
        finally:
            await http.aclose()


async def test_a_fresh_connection_or_a_started_answer_is_not_retried() -> None:
    async with closing_upstream("eof", fail_at=1) as server:  # every first request fails
        http = WireHTTP(connect_s=2.0)
        try:
            with pytest.raises(WireHTTPError):
                await http.post(server.endpoint, HEADERS, b"{}")
            assert server.requests == 1
        finally:
            await http.aclose()
    async with closing_upstream("partial", fail_at=2) as server:  # bytes of the answer arrived
        http = WireHTTP(connect_s=2.0)
        try:
            response = await http.post(server.endpoint, HEADERS, b"{}")
            await response.read()
            with pytest.raises(WireHTTPError):
                await http.post(server.endpoint, HEADERS, b"{}")
            assert server.requests == 2 and server.connections == 1
        finally:
            await http.aclose()
    async with closing_upstream("eof", fail_at=2) as server:  # fails on the retry too: once only
        http = WireHTTP(connect_s=2.0)
        try:
            response = await http.post(server.endpoint, HEADERS, b"{}")
            await response.read()
            server.fail_at = 1
            with pytest.raises(WireHTTPError):
                await http.post(server.endpoint, HEADERS, b"{}")
            assert server.requests == 3 and server.connections == 2
        finally:
            await http.aclose()


async def test_the_provider_never_sees_a_stale_socket() -> None:
    """Through the wire adapter: every call succeeds, so neither the provider's failure handling nor
    its circuit breaker ever hears of the closed sockets."""
    async with closing_upstream("reset", fail_at=2) as server:
        clients = UpstreamClients(connect_s=2.0)
        provider = OpenAIWireProvider(
            name="up",
            base_url=f"http://127.0.0.1:{server.port}/v1",
            api_key="sk-test",
            http=clients.wire,
            is_local=True,
            timeout_s=5.0,
            connect_s=2.0,
        )
        call = ModelCall(model="up", messages=[{"role": "user", "content": "hi"}])
        try:
            for _ in range(3):
                assert (await provider.complete(call)).choices[0].content == "hi"
            assert server.connections == 3
        finally:
            await clients.aclose()


def test_settings_refuse_what_the_client_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only http:// proxies"):
        UpstreamHTTPSettings(proxy="https://proxy.example:3128")
    with pytest.raises(ValueError, match="only http:// proxies"):
        UpstreamHTTPSettings(proxy="socks5://proxy.example:1080")
    key = tmp_path / "client.key"
    key.write_text("not used")
    with pytest.raises(ValueError, match="client_key needs client_cert"):
        UpstreamHTTPSettings(client_key=key)
    with pytest.raises(ValueError):  # a missing file is refused when the config is read
        UpstreamHTTPSettings(ca_bundle=tmp_path / "missing.pem")
    assert "s3cret" not in repr(UpstreamHTTPSettings(proxy="http://u:s3cret@proxy:3128"))


def test_tunnel_mtls_and_stale_retry_on_uvloop(pki: PKI) -> None:
    """The gateway runs on uvloop (its transports and socket calls are not asyncio's): the
    ``CONNECT`` tunnel with mTLS inside it, and the stale-socket retry, work there too."""
    import uvloop

    async def scenario() -> None:
        upstream, proxy = MTLSUpstream(pki), ForwardProxy(credentials=("prism", "pw"))
        await upstream.start()
        await proxy.start()
        http = WireHTTP(connect_s=2.0)
        try:
            endpoint = EndpointFactory(env={"HTTPS_PROXY": proxy.url("prism:pw")}).endpoint(
                f"https://upstream.test:{upstream.port}/v1/chat/completions", _settings(pki)
            )
            for _ in range(2):
                response = await http.post(endpoint, HEADERS, b"{}")
                assert response.status == 200 and b"choices" in await response.read()
            assert proxy.seen == [f"CONNECT upstream.test:{upstream.port}"]
            assert upstream.subjects == ["prism-gateway"] * 2
            async with closing_upstream("reset", fail_at=2) as server:
                before = _stale_retries()
                for _ in range(3):
                    response = await http.post(server.endpoint, HEADERS, b"{}")
                    assert await response.read() == COMPLETION
                assert server.connections == 3 and _stale_retries() - before == 2
        finally:
            await http.aclose()
            await proxy.stop()
            await upstream.stop()

    uvloop.run(scenario())
