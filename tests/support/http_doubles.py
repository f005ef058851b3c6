"""HTTP test doubles on 127.0.0.1: an mTLS upstream answering OpenAI completions, and a forward
proxy (``CONNECT`` tunnels and absolute-form requests, Basic credentials)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from tests.support.pki import PKI

COMPLETION = orjson.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "up",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)


class MTLSUpstream:
    """aiohttp over TLS that requires a client certificate signed by the test CA; answers an OpenAI
    completion and notes the client certificate's subject of every request."""

    def __init__(self, pki: PKI) -> None:
        self.pki = pki
        self.subjects: list[str] = []
        self.peers: list[int] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki.ca))
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        context.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.complete)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1"

    async def complete(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        cert = request.transport.get_extra_info("peercert") or {}
        subject = dict(pair[0] for pair in cert.get("subject", ()))
        self.subjects.append(str(subject.get("commonName")))
        self.peers.append(request.transport.get_extra_info("peername")[1])
        await request.read()
        return web.Response(body=COMPLETION, content_type="application/json")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


KNOWN_HOSTS = ("127.0.0.1", "upstream.test")
"""``upstream.test`` (a reserved name) is never resolved: only the test's proxy knows it."""


class ForwardProxy:
    """A small HTTP forward proxy: ``CONNECT host:port`` tunnels and absolute-form requests; every
    host it knows (``127.0.0.1``, ``upstream.test``) is 127.0.0.1, nothing else is reached. With
    ``credentials`` it answers 407 to requests without them."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.expected = None
        if credentials is not None:
            self.expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        self.seen: list[str] = []
        """The first request line of every client connection (``CONNECT 127.0.0.1:123``)."""
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if line)
            self.seen.append(f"{method} {target}")
            if self.expected and headers.get("Proxy-Authorization") != self.expected:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                assert host in KNOWN_HOSTS
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urlsplit(target)
                assert parts.hostname in KNOWN_HOSTS and parts.port
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", parts.port)
                up_writer.write(head)  # origin servers accept the absolute form too
            self.writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
