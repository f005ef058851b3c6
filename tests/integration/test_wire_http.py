"""The wire adapter's lean HTTP/1.1 client against a real aiohttp server over loopback (and TLS):
keep-alive reuse, chunked and gzip bodies, streams left at ``[DONE]`` draining back into the pool,
broken and cancelled responses never reused, the connection bound, idle expiry and header safety."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from gateway.observability import metrics
from gateway.providers.wire_http import Endpoint, WireHTTP, WireHTTPError, encode_headers

pytestmark = pytest.mark.integration


class Upstream:
    """An aiohttp server whose handlers note the client port of every request."""

    def __init__(self) -> None:
        self.peers: list[int] = []
        self.active = 0
        self.most_active = 0
        self.release = asyncio.Event()
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_post("/json", self.json)
        app.router.add_post("/gzip", self.gzipped)
        app.router.add_post("/sse", self.sse)
        app.router.add_post("/sse-late-end", self.sse_late_end)
        app.router.add_post("/cut", self.cut)
        app.router.add_post("/hang", self.hang)
        app.router.add_post("/slow", self.slow)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    def _note(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(peer[1] if peer else -1)

    async def json(self, request: web.Request) -> web.Response:
        self._note(request)
        body = await request.read()
        return web.json_response({"echo": body.decode(), "header": request.headers.get("X-Extra")})

    async def gzipped(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(
            body=gzip.compress(b'{"zipped": true}' * 100), headers={"Content-Encoding": "gzip"}
        )

    async def _sse(self, request: web.Request, *, late_end: bool) -> web.StreamResponse:
        self._note(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f'data: {{"n": {i}}}\n\n'.encode())
        await response.write(b"data: [DONE]\n\n")
        if late_end:
            await asyncio.sleep(0.05)  # the chunked body's end arrives after the client stopped reading
        await response.write_eof()
        return response

    async def sse(self, request: web.Request) -> web.StreamResponse:
        return await self._sse(request, late_end=False)

    async def sse_late_end(self, request: web.Request) -> web.StreamResponse:
        return await self._sse(request, late_end=True)

    async def cut(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    async def hang(self, request: web.Request) -> web.Response:
        self._note(request)
        await asyncio.sleep(10)
        return web.json_response({})

    async def slow(self, request: web.Request) -> web.Response:
        self._note(request)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.active -= 1
        return web.json_response({"ok": True})

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[WireHTTP]:
    http = WireHTTP(connect_s=1.0)
    yield http
    await http.aclose()


HEADERS = encode_headers({"Content-Type": "application/json"})


async def _eventually(condition: Callable[[], bool], within_s: float = 2.0) -> None:
    """Wait (bounded) for what the event loop settles in a callback or two."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def test_keep_alive_reuses_one_connection(upstream: Upstream, client: WireHTTP) -> None:
    connects = metrics.UPSTREAM_CONNECTS.labels(outcome="ok")._value.get()
    connections = metrics.UPSTREAM_CONNECTIONS._value.get()
    for i in range(10):
        response = await client.post(Endpoint(upstream.url + "/json"), HEADERS, b'{"i": %d}' % i)
        assert response.status == 200 and response.headers["content-type"].startswith("application/json")
        assert b'"echo": "{\\"i\\": %d}"' % i in await response.read()
        stream = await client.post(Endpoint(upstream.url + "/sse"), HEADERS, b"{}")
        body = b"".join([chunk async for chunk in stream.chunks()])  # chunked, read to its end
        assert body.count(b"data:") == 4
    assert len(set(upstream.peers)) == 1 and client.open_connections == 1
    assert metrics.UPSTREAM_CONNECTS.labels(outcome="ok")._value.get() == connects + 1
    assert metrics.UPSTREAM_CONNECTIONS._value.get() == connections + 1
    await client.aclose()
    assert metrics.UPSTREAM_CONNECTIONS._value.get() == connections


async def test_per_call_headers_and_gzip(upstream: Upstream, client: WireHTTP) -> None:
    extra = HEADERS + encode_headers({"X-Extra": "yes"})
    response = await client.post(Endpoint(upstream.url + "/json"), extra, b"{}")
    assert b'"header": "yes"' in await response.read()
    zipped = await client.post(Endpoint(upstream.url + "/gzip"), HEADERS, b"{}")
    assert await zipped.read() == b'{"zipped": true}' * 100


async def test_a_stream_left_at_done_drains_back_into_the_pool(upstream: Upstream, client: WireHTTP) -> None:
    stream = await client.post(Endpoint(upstream.url + "/sse-late-end"), HEADERS, b"{}")
    seen = b""
    async for chunk in stream.chunks():
        seen += chunk
        if b"[DONE]" in seen:
            break  # as the wire adapter does; the chunked body's end is still on its way
    stream.close()
    await _eventually(lambda: sum(len(idle) for idle in client._idle.values()) == 1)  # drained back
    response = await client.post(Endpoint(upstream.url + "/json"), HEADERS, b"{}")
    await response.read()
    assert len(set(upstream.peers)) == 1  # the drained connection was reused


async def test_a_body_cut_short_raises_and_is_not_reused(upstream: Upstream, client: WireHTTP) -> None:
    response = await client.post(Endpoint(upstream.url + "/cut"), HEADERS, b"{}")
    with pytest.raises(WireHTTPError):
        await response.read()
    again = await client.post(Endpoint(upstream.url + "/json"), HEADERS, b"{}")
    await again.read()
    assert len(set(upstream.peers)) == 2


async def test_a_cancelled_request_closes_its_connection(upstream: Upstream, client: WireHTTP) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.post(Endpoint(upstream.url + "/hang"), HEADERS, b"{}")
    await _eventually(lambda: client.open_connections == 0)  # its late answer is never read as the next one's
    response = await client.post(Endpoint(upstream.url + "/json"), HEADERS, b"{}")
    assert response.status == 200
    await response.read()


async def test_connections_are_bounded(upstream: Upstream) -> None:
    http = WireHTTP(connect_s=1.0, max_connections=2)
    try:

        async def one() -> int:
            response = await http.post(Endpoint(upstream.url + "/slow"), HEADERS, b"{}")
            await response.read()
            return response.status

        assert await asyncio.gather(*(one() for _ in range(6))) == [200] * 6
        assert upstream.most_active <= 2 and http.open_connections <= 2
    finally:
        await http.aclose()


async def test_idle_connections_expire(upstream: Upstream) -> None:
    http = WireHTTP(connect_s=1.0, idle_s=0.05)
    try:
        for _ in range(2):
            response = await http.post(Endpoint(upstream.url + "/json"), HEADERS, b"{}")
            await response.read()
            await asyncio.sleep(0.1)
        assert len(set(upstream.peers)) == 2
    finally:
        await http.aclose()


async def test_unreachable_and_unsafe() -> None:
    http = WireHTTP(connect_s=0.5)
    failed = metrics.UPSTREAM_CONNECTS.labels(outcome="error")._value.get()
    try:
        with pytest.raises(WireHTTPError):
            await http.post(Endpoint("http://127.0.0.1:9/v1/chat/completions"), HEADERS, b"{}")
        assert metrics.UPSTREAM_CONNECTS.labels(outcome="error")._value.get() == failed + 1
    finally:
        await http.aclose()
    with pytest.raises(ValueError):
        encode_headers({"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(ValueError):
        Endpoint("ftp://example.com/x")
    assert Endpoint("https://api.example.com/v1/chat/completions?x=1").head == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: api.example.com\r\n"
    )


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_https(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = Upstream()
    await server.start(ssl_context=server_tls)
    trusting = WireHTTP(connect_s=1.0, ssl_context=ssl.create_default_context(cafile=str(cert)))
    default = WireHTTP(connect_s=1.0)  # the system's CAs do not know this certificate
    try:
        for _ in range(3):
            response = await trusting.post(Endpoint(server.url + "/json"), HEADERS, b'{"tls": 1}')
            assert response.status == 200 and b"tls" in await response.read()
        assert len(set(server.peers)) == 1
        with pytest.raises(WireHTTPError):
            await default.post(Endpoint(server.url + "/json"), HEADERS, b"{}")
    finally:
        await trusting.aclose()
        await default.aclose()
        await server.stop()


async def test_a_call_may_set_its_own_connect_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's ``timeouts.connect_s`` reaches the pool: the call's limit, not the pool's default."""
    loop = asyncio.get_running_loop()

    async def never_connects(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(loop, "create_connection", never_connects)
    http = WireHTTP(connect_s=30.0)
    started = loop.time()
    try:
        with pytest.raises(WireHTTPError, match="timed out"):
            endpoint = Endpoint("http://127.0.0.1:9/v1/chat/completions")
            await http.post(endpoint, HEADERS, b"{}", connect_s=0.05)
    finally:
        await http.aclose()
    assert loop.time() - started < 5
