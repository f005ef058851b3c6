"""A lean HTTP/1.1 client for the OpenAI wire adapter: keep-alive pools, one write per request.

aiohttp's client cost about 150 µs of CPU per chat completion here (request and response objects,
multidicts, payload and writer layers, per-request timers), a tenth of a request's whole CPU at
concurrency 1. The wire adapter needs much less: ``POST`` a JSON body to one URL and read the
answer — whole, or as it arrives (SSE). This client does only that:

* the request line, ``Host`` and the adapter's fixed headers are encoded once per endpoint and
  provider; a request is one ``transport.write``;
* responses are parsed by ``httptools`` (the C parser uvicorn already uses) straight from
  ``data_received``: chunked and ``Content-Length`` bodies, ``gzip``/``deflate`` decoded;
* connections are pooled per origin (LIFO, so the warmest is reused), dropped when idle for
  ``idle_s``, when the server closes them or asks to (``Connection: close``), and never reused
  after a response that was not read to its end; at most ``max_connections`` are open, further
  requests wait for one;
* TLS through the standard ``ssl`` module for ``https`` URLs; no proxies, cookies or redirects
  (an OpenAI-compatible API uses none of them, and aiohttp was configured without them too).

Metrics: ``prism_upstream_connections`` (open, busy or idle) and ``prism_upstream_connects_total
{outcome}`` (requests per connect is the keep-alive reuse). Failures raise ``WireHTTPError`` (a
``ConnectionError``): the server could not be reached, closed the connection before the response
ended, or sent something that is not HTTP. Time limits are the caller's (``asyncio.timeout``
around a call), except ``connect_s`` for opening a connection; a request cancelled mid-way closes
its connection.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from gateway.observability import metrics

_PAUSE_AT = 1 << 20
"""Buffered response bytes at which reading pauses until the consumer catches up."""
_DRAIN_S = 1.0
_DRAIN_BYTES = 64 * 1024
"""A response released before its end may finish arriving within this time and size, then its
connection is reused; past either it is closed."""


_CONNECTS = metrics.UPSTREAM_CONNECTS.labels(outcome="ok")
_CONNECT_ERRORS = metrics.UPSTREAM_CONNECTS.labels(outcome="error")


class WireHTTPError(ConnectionError):
    """The upstream could not be reached, closed the connection early or did not speak HTTP."""


class Endpoint:
    """One URL, parsed once: its origin and the pre-encoded request line and ``Host`` header."""

    __slots__ = ("head", "host", "key", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.netloc.rsplit("@", 1)[-1]
        if not authority.isascii():
            authority = self.host.encode("idna").decode("ascii") + (f":{parts.port}" if parts.port else "")
        self.key = (self.tls, self.host, self.port)
        self.head = f"POST {target} HTTP/1.1\r\nHost: {authority}\r\n".encode("latin-1")


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """``Name: value\\r\\n`` lines; refuses a name or value that would split the header block."""
    out = []
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise ValueError(f"invalid header {name!r}")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1")


class Response:
    """Status and headers (lower-case names) at once; the body with :meth:`read` or :meth:`chunks`.

    The connection goes back to the pool when the body has been read to its end; :meth:`close`
    (always safe to call) drops it otherwise."""

    __slots__ = ("_chunks", "_conn", "_decoder", "_done", "_error", "_size", "_waiter", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: Any = None

    # -- fed by the connection ------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as exc:
                self._fail(WireHTTPError(f"undecodable response body: {exc}"))
                return
        if data:
            self._chunks.append(data)
            self._size += len(data)
            if self._size >= _PAUSE_AT and self._conn is not None:
                self._conn.pause()
            self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
        self._done = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._done and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _more(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self) -> bytes:
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._conn is not None:
            self._conn.resume()
        return data

    # -- for the caller -------------------------------------------------------------------------
    async def read(self) -> bytes:
        """The whole body (the connection is then reused)."""
        try:
            while not self._done:
                if self._error is not None:
                    raise self._error
                await self._more()
            return self._take() if self._chunks else b""
        finally:
            self.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each item is everything received since the last one."""
        try:
            while True:
                if self._chunks:
                    yield self._take()
                    continue
                if self._error is not None:
                    raise self._error
                if self._done:
                    return
                await self._more()
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection: to the pool after a complete response; one whose end is still on
        its way (an SSE stream left at ``[DONE]``, before the last chunk) drains into the pool when
        it arrives, within ``_DRAIN_S``; anything else is closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._error is None:
            conn.release(reusable=True)
        elif self._error is None and self.status:
            conn.drain()
        else:
            conn.release(reusable=False)


class _Connection(asyncio.Protocol):
    def __init__(self, pool: WireHTTP, key: tuple[bool, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.headers_ready: asyncio.Future[None] | None = None
        self.closed = False
        self.paused = False
        self.keep_alive = True
        self.until_eof = False
        """The response has neither a length nor chunks: its body ends when the server closes."""
        self.draining: asyncio.TimerHandle | None = None
        self.drained = 0
        self.idle_since = 0.0

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # nothing was asked: a server out of step
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(WireHTTPError(f"malformed HTTP response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.draining is not None:
            self.draining.cancel()
            self.draining = None
        if self.until_eof and exc is None and self.response is not None:
            self.response._finish()
        self._fail(WireHTTPError(f"upstream closed the connection ({exc or 'EOF'})"))
        self.pool._lost(self)

    # -- httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is None:
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.response.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None:
            return
        response.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.until_eof = (
            "content-length" not in response.headers
            and "chunked" not in response.headers.get("transfer-encoding", "").lower()
            and response.status not in (204, 304)
        )
        if self.until_eof:
            self.keep_alive = False
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate", "x-gzip"):
            response._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
        elif encoding != "identity":
            self._fail(WireHTTPError(f"unsupported content-encoding {encoding!r}"))
            self.abort()
            return
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.draining is not None:
            self.drained += len(body)
            if self.drained > _DRAIN_BYTES:
                self.abort()
        elif self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.draining is not None:
            self.draining.cancel()
            self.draining = None
            self.release(reusable=True)
        elif self.response is not None:
            self.response._finish()

    # -- for the pool and the response ----------------------------------------------------------
    def _fail(self, error: BaseException) -> None:
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        if self.response is not None:
            self.response._fail(error)

    def start(self, response: Response, request: bytes) -> asyncio.Future[None]:
        self.response = response
        self.headers_ready = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.headers_ready

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def drain(self) -> None:
        """Discard the rest of the response, then go back to the pool (closed if it takes too long)."""
        self.resume()
        self.drained = 0
        self.draining = asyncio.get_running_loop().call_later(_DRAIN_S, self.abort)

    def release(self, *, reusable: bool) -> None:
        self.response = None
        self.headers_ready = None
        if reusable and self.keep_alive and not self.closed and not self.paused:
            self.pool._idle_push(self)
        else:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()


class WireHTTP:
    """The pool (one per process, shared by every wire-adapter model)."""

    def __init__(
        self,
        *,
        connect_s: float = 5.0,
        max_connections: int = 1000,
        idle_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context``: for ``https`` URLs; the default trusts the system's CAs (and honours
        ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``)."""
        self.connect_s = connect_s
        self.max_connections = max_connections
        self.idle_s = idle_s
        self._idle: dict[tuple[bool, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._reserved = 0
        """Connections open or being opened (what ``max_connections`` bounds)."""
        self._slots: deque[asyncio.Future[None]] = deque()
        self._ssl = ssl_context
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def post(
        self, endpoint: Endpoint, headers: bytes, body: bytes, *, connect_s: float | None = None
    ) -> Response:
        """Send ``body`` with the pre-encoded ``headers``; returns once the status and headers are in.
        ``connect_s``: the limit for opening a connection, if one is needed (the pool's by default).

        Cancelled before that, the connection is closed (its answer would be out of step)."""
        conn = await self._acquire(endpoint, self.connect_s if connect_s is None else connect_s)
        response = Response(conn)
        request = b"%sContent-Length: %d\r\n%s\r\n%s" % (endpoint.head, len(body), headers, body)
        try:
            await conn.start(response, request)
        except BaseException:
            response._conn = None
            conn.release(reusable=False)
            raise
        return response

    async def _acquire(self, endpoint: Endpoint, connect_s: float) -> _Connection:
        while True:
            if self._closed:
                raise WireHTTPError("the upstream client is closed")
            idle = self._idle.get(endpoint.key)
            if idle:
                now = asyncio.get_running_loop().time()
                while idle:
                    conn = idle.pop()
                    if conn.usable and now - conn.idle_since < self.idle_s:
                        return conn
                    conn.abort()
            if self._reserved < self.max_connections:
                break
            # At the bound: wait for a connection to come back idle or to close (an idle one to
            # another origin gives its place up).
            self._evict_one_idle()
            slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slots.append(slot)
            try:
                await slot
            finally:
                if slot in self._slots:
                    self._slots.remove(slot)
        self._reserved += 1
        try:
            return await self._connect(endpoint, connect_s)
        except BaseException:
            self._reserved -= 1
            self._wake_one()
            raise

    async def _connect(self, endpoint: Endpoint, connect_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        context = self._tls_context() if endpoint.tls else None
        try:
            async with asyncio.timeout(connect_s):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self, endpoint.key),
                    endpoint.host,
                    endpoint.port,
                    ssl=context,
                    server_hostname=endpoint.host if context is not None else None,
                )
        except TimeoutError as exc:
            _CONNECT_ERRORS.inc()
            raise WireHTTPError(f"connect to {endpoint.host}:{endpoint.port} timed out") from exc
        except OSError as exc:
            _CONNECT_ERRORS.inc()
            raise WireHTTPError(f"cannot connect to {endpoint.host}:{endpoint.port}: {exc}") from exc
        _CONNECTS.inc()
        metrics.UPSTREAM_CONNECTIONS.inc()
        self._open.add(protocol)
        return protocol

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _idle_push(self, conn: _Connection) -> None:
        if self._closed:
            conn.abort()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.key, deque()).append(conn)
        if self._slots:
            self._wake_one()

    def _evict_one_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                idle.popleft().abort()  # the coldest; its connection_lost frees the place
                return

    def _lost(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            self._reserved -= 1
            metrics.UPSTREAM_CONNECTIONS.dec()
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._slots:
            slot = self._slots.popleft()
            if not slot.done():
                slot.set_result(None)
                break

    async def aclose(self) -> None:
        """Close every connection (graceful shutdown, after the requests are done)."""
        self._closed = True
        for idle in self._idle.values():
            idle.clear()
        for conn in list(self._open):
            conn.abort()
        for _ in range(100):  # let the transports report their closing (≤ 1 s)
            if not self._open:
                break
            await asyncio.sleep(0.01)
