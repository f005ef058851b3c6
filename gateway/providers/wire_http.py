"""A lean HTTP/1.1 client for the OpenAI wire adapter: keep-alive pools, one write per request.

aiohttp's client cost about 150 µs of CPU per chat completion here (request and response objects,
multidicts, payload and writer layers, per-request timers), a tenth of a request's whole CPU at
concurrency 1. The wire adapter needs much less: ``POST`` a JSON body to one URL and read the
answer — whole, or as it arrives (SSE). This client does only that:

* the request line, ``Host`` and the adapter's fixed headers are encoded once per endpoint and
  provider; a request is one ``transport.write``;
* responses are parsed by ``httptools`` (the C parser uvicorn already uses) straight from
  ``data_received``: chunked and ``Content-Length`` bodies, ``gzip``/``deflate`` decoded;
* connections are pooled per origin (LIFO, so the warmest is reused), closed when idle for
  ``idle_s`` (the pool's, or the endpoint's: a model's ``http.pool_idle_s``), when the server
  closes them or asks to (``Connection: close``), and never reused after a response that was not
  read to its end; at most ``max_connections`` are open, further requests wait for one;
* TLS through the standard ``ssl`` module for ``https`` URLs, with a per-endpoint context (a
  model's own CA bundle and client certificate, i.e. mTLS: ``gateway/providers/transport.py``);
* an ``http://`` proxy per endpoint: ``CONNECT`` tunnelling for ``https`` targets, absolute-form
  requests for ``http`` ones (with ``Proxy-Authorization`` when the proxy URL has credentials);
  ``https://`` and SOCKS proxies are refused when the config is read. No cookies or redirects (an
  OpenAI-compatible API uses neither);
* a request that meets a reset or EOF on a *reused* keep-alive connection before any byte of its
  answer (the server closed the idle socket as the request left) is sent once more on a new
  connection; the caller never sees that failure, so it counts against neither the provider nor
  its circuit breaker (``prism_upstream_connects_total{outcome="stale_retry"}`` counts them).

Metrics: ``prism_upstream_connections`` (open, busy or idle) and ``prism_upstream_connects_total
{outcome}`` (requests per connect is the keep-alive reuse; ``stale_retry`` the retried resets).
Failures raise ``WireHTTPError`` (a ``ConnectionError``): the server (or proxy) could not be
reached or refused the TLS handshake, closed the connection before the response ended, or sent
something that is not HTTP. Time limits are the caller's (``asyncio.timeout`` around a call),
except ``connect_s`` for opening a connection; a request cancelled mid-way closes its connection.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

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
_STALE_RETRIES = metrics.UPSTREAM_CONNECTS.labels(outcome="stale_retry")
_SWEEP_S = 1.0
"""Longest interval between two checks for connections idle past their limit."""
_TUNNEL_HEAD_MAX = 16 * 1024
"""Bytes of a proxy's answer to ``CONNECT`` read at most before giving up on it."""


class WireHTTPError(ConnectionError):
    """The upstream could not be reached, closed the connection early or did not speak HTTP."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """An ``http://`` forward proxy: where it is and the ``Proxy-Authorization`` value, if any."""

    host: str
    port: int
    authorization: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// proxies are supported, not {parts.scheme}://")
        authorization = None
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(user_pass.encode()).decode("ascii")
        return cls(host=parts.hostname, port=parts.port or 80, authorization=authorization)

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy({self.host}:{self.port}{', authenticated' if self.authorization else ''})"


class Endpoint:
    """One URL, parsed once: its origin, the pre-encoded request line and ``Host`` header, and how to
    reach it (TLS context, proxy) — connections are pooled per distinct ``key``.

    ``ssl_context``: for an ``https`` URL, instead of the pool's (``tls_profile`` is its hashable
    identity in the pool key, e.g. the CA and certificate paths it was built from); ``proxy``: an
    ``http://`` proxy; ``idle_s``: an idle connection older than this is not reused (the pool's
    ``idle_s`` by default)."""

    __slots__ = ("authority", "head", "host", "idle_s", "key", "port", "proxy", "ssl_context", "tls")

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        tls_profile: Hashable = None,
        proxy: Proxy | None = None,
        idle_s: float | None = None,
    ) -> None:
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
        self.authority = authority
        self.ssl_context = ssl_context if self.tls else None
        self.proxy = proxy
        self.idle_s = idle_s
        self.key: Hashable = (self.tls, self.host, self.port, tls_profile if self.tls else None, proxy)
        head = f"POST {target} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy is not None and not self.tls:  # plain HTTP through a proxy: absolute-form target
            head = f"POST http://{authority}{target} HTTP/1.1\r\nHost: {authority}\r\n"
            if proxy.authorization:
                head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        self.head = head.encode("latin-1")


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
    def __init__(self, pool: WireHTTP, key: Hashable) -> None:
        self.pool = pool
        self.key = key
        self.requests = 0
        """Requests started on this connection (more than one: it is a reused keep-alive socket)."""
        self.received = False
        """A byte of the current request's answer arrived."""
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
        self.idle_s = 0.0
        """Its endpoint's idle limit: idle for longer, it is closed rather than reused."""

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
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
        self.requests += 1
        self.received = False
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

    @property
    def stale(self) -> bool:
        """The current request failed on a reused socket before any byte of its answer: the server
        had closed (or reset) the idle connection, so it cannot have acted on the request."""
        return self.requests > 1 and not self.received


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
        self._idle: dict[Hashable, deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._reserved = 0
        """Connections open or being opened (what ``max_connections`` bounds)."""
        self._slots: deque[asyncio.Future[None]] = deque()
        self._ssl = ssl_context
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def post(
        self, endpoint: Endpoint, headers: bytes, body: bytes, *, connect_s: float | None = None
    ) -> Response:
        """Send ``body`` with the pre-encoded ``headers``; returns once the status and headers are in.
        ``connect_s``: the limit for opening a connection, if one is needed (the pool's by default).

        Cancelled before that, the connection is closed (its answer would be out of step). A reused
        connection found closed before any byte of the answer is replaced once (see the module)."""
        limit = self.connect_s if connect_s is None else connect_s
        request = b"%sContent-Length: %d\r\n%s\r\n%s" % (endpoint.head, len(body), headers, body)
        conn = await self._acquire(endpoint, limit)
        while True:
            response = Response(conn)
            try:
                await conn.start(response, request)
            except WireHTTPError:
                response._conn = None
                conn.release(reusable=False)
                if not conn.stale:
                    raise
                _STALE_RETRIES.inc()
                conn = await self._acquire(endpoint, limit, fresh=True)
                continue
            except BaseException:
                response._conn = None
                conn.release(reusable=False)
                raise
            return response

    async def _acquire(self, endpoint: Endpoint, connect_s: float, *, fresh: bool = False) -> _Connection:
        """An idle connection to ``endpoint`` (unless ``fresh``), else a new one within the bound."""
        idle_s = self.idle_s if endpoint.idle_s is None else endpoint.idle_s
        while True:
            if self._closed:
                raise WireHTTPError("the upstream client is closed")
            idle = None if fresh else self._idle.get(endpoint.key)
            if idle:
                now = asyncio.get_running_loop().time()
                while idle:
                    conn = idle.pop()
                    if conn.usable and now - conn.idle_since < idle_s:
                        conn.idle_s = idle_s
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
            conn = await self._connect(endpoint, connect_s)
            conn.idle_s = idle_s
            return conn
        except BaseException:
            self._reserved -= 1
            self._wake_one()
            raise

    async def _connect(self, endpoint: Endpoint, connect_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        context = (endpoint.ssl_context or self._tls_context()) if endpoint.tls else None
        proxy = endpoint.proxy
        where = f"{endpoint.host}:{endpoint.port}"
        if proxy is not None:
            where += f" via proxy {proxy.host}:{proxy.port}"
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(connect_s):
                if proxy is None:
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(self, endpoint.key),
                        endpoint.host,
                        endpoint.port,
                        ssl=context,
                        server_hostname=endpoint.host if context is not None else None,
                    )
                elif context is None:  # plain HTTP: requests go to the proxy in absolute form
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(self, endpoint.key), proxy.host, proxy.port
                    )
                else:
                    sock = await _tunnel(loop, proxy, endpoint)
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(self, endpoint.key),
                        sock=sock,
                        ssl=context,
                        server_hostname=endpoint.host,
                    )
                    sock = None  # the transport owns it now
        except TimeoutError as exc:
            _CONNECT_ERRORS.inc()
            raise WireHTTPError(f"connect to {where} timed out") from exc
        except OSError as exc:  # ssl.SSLError included: a refused certificate is a failed connect
            _CONNECT_ERRORS.inc()
            raise WireHTTPError(f"cannot connect to {where}: {exc}") from exc
        finally:
            if sock is not None:
                sock.close()
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
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.key, deque()).append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(_SWEEP_S, conn.idle_s), self._sweep)
        if self._slots:
            self._wake_one()

    def _sweep(self) -> None:
        """Close the connections idle past their limit (the coldest of each origin first), so an
        unused pool lets its sockets go before the server closes them; again while any stay idle."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        soonest = _SWEEP_S
        for idle in self._idle.values():
            while idle and now - idle[0].idle_since >= idle[0].idle_s:
                idle.popleft().abort()
            if idle:
                soonest = min(soonest, idle[0].idle_since + idle[0].idle_s - now)
        if any(self._idle.values()) and not self._closed:
            self._sweeper = loop.call_later(max(soonest, 0.01), self._sweep)

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

    def close_idle(self) -> None:
        """Close every idle connection (they reconnect on demand)."""
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()

    async def aclose(self) -> None:
        """Close every connection (graceful shutdown, after the requests are done)."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            idle.clear()
        for conn in list(self._open):
            conn.abort()
        for _ in range(100):  # let the transports report their closing (≤ 1 s)
            if not self._open:
                break
            await asyncio.sleep(0.01)


async def _tunnel(loop: asyncio.AbstractEventLoop, proxy: Proxy, endpoint: Endpoint) -> socket.socket:
    """A socket connected to ``proxy`` and tunnelled (``CONNECT``) to the endpoint's origin; TLS to
    the origin is then started on it end to end (the proxy sees only the host and port)."""
    target = f"{endpoint.host}:{endpoint.port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if proxy.authorization:
        request += f"Proxy-Authorization: {proxy.authorization}\r\n"
    infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve proxy {proxy.host}")
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, (request + "\r\n").encode("latin-1"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise OSError("proxy closed the connection during CONNECT")
                head += chunk
                if len(head) > _TUNNEL_HEAD_MAX:
                    raise OSError("proxy answered CONNECT with an oversized header")
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
            fields = status_line.split(" ", 2)
            if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or fields[1] != "200":
                raise OSError(f"proxy refused CONNECT {target}: {status_line[:100]!r}")
            if not head.endswith(b"\r\n\r\n"):
                raise OSError("proxy sent data after its CONNECT answer")
            return sock
        except BaseException as exc:
            sock.close()
            if not isinstance(exc, OSError):
                raise
            error = exc
    assert error is not None
    raise error
