"""A lean, multiplexed Redis client for the per-request scripts (quota reserve, cache lookup/store).

redis-py costs ~120 µs of CPU per command here (connection checkout, retry wrapper, command
packing, observability hooks); the request path runs three. This client keeps a few long-lived
connections, pipelines every caller's command onto one of them (replies come back in order, so a
FIFO of futures matches them), parses with hiredis, and costs ~20 µs per command. It speaks
only what the hot path needs — ``EVALSHA`` with a ``SCRIPT LOAD`` on ``NOSCRIPT``, and plain
commands — over ``redis://`` or ``rediss://`` (TLS with redis-py's ``ssl_*`` URL options, client
certificate included; RESP2; ``AUTH`` with an ACL user or the default user's password; ``SELECT``)
or ``redis+sentinel://`` (each new connection asks the sentinels for the primary's address and
checks ``ROLE`` before use; a ``READONLY`` reply — the primary was demoted under us — drops the
connection so the next command finds the new one). Everything else (admin reads, pings, circuit
sync) stays on redis-py; ``redis_url.py`` lists the deployments supported.

Failures are the caller's usual ones: ``TimeoutError`` past ``timeout_s`` (the command's reply is
still consumed and dropped when it comes, so the connection stays in step), ``ConnectionError``
when Redis cannot be reached or the connection drops (every waiting command fails, the next one
reconnects), and ``RedisReplyError`` for an error reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

from gateway.cache.redis_url import SENTINEL_SCHEME, SINGLE_SCHEMES, SentinelURL, parse_sentinel, tls_context

Arg = str | bytes | int | float


class RedisReplyError(Exception):
    """An error reply (``-ERR …``, ``-NOSCRIPT …``)."""


@dataclass(frozen=True, slots=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def encode(args: Sequence[Arg]) -> bytes:
    """One command in RESP2 (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = repr(arg).encode() if isinstance(arg, float) else b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        # queued in this loop iteration, not yet written: (command, its waiter, its time limit)
        self.pending: list[tuple[bytes, asyncio.Future[Any], float | None]] = []
        self.wrote = False
        """A command was written at once in this loop iteration (the next ones wait for one flush)."""
        self.lost = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(ConnectionError(f"Redis protocol error: {exc}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is False:
                return
            if not self.waiters:  # a reply nobody asked for: the stream is out of step
                self._fail(ConnectionError("unexpected reply from Redis"))
                if self.transport is not None:
                    self.transport.close()
                return
            waiter = self.waiters.popleft()
            if waiter.done():  # timed out or cancelled: drop the late reply
                continue
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(RedisReplyError(str(reply)))
                if str(reply).startswith("READONLY"):  # a replica now: reconnect to the primary
                    self._fail(ConnectionError("Redis answered READONLY: the primary has moved"))
                    if self.transport is not None:
                        self.transport.close()
                    return
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: Exception) -> None:
        self.lost = True
        queued, self.pending = self.pending, []
        for waiter in (*self.waiters, *(w for _, w, _ in queued)):
            if not waiter.done():
                waiter.set_exception(error)
        self.waiters.clear()

    def send(self, payload: bytes, limit_s: float | None = None) -> asyncio.Future[Any]:
        """Write a command: the first of a loop iteration at once, the ones that follow it in the same
        iteration together in one write at the end of it (``call_soon``).

        At once, because a request's command should be on its way while the request goes on with
        its CPU work (an idle worker would otherwise hold it for a loop iteration); batched after
        that, because a busy worker issues many per iteration and one write serves them all.
        ``limit_s`` counts from the write, not from now: on a loop busy for longer than the limit
        (a saturated worker) a batched command may not even have left yet when the limit is up."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        if self.wrote:  # the flush scheduled with the first one takes this one
            self.pending.append((payload, waiter, limit_s))
            return waiter
        self.wrote = True
        loop.call_soon(self._flush, loop)
        self._write([(payload, waiter, limit_s)], loop)
        return waiter

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self.wrote = False
        queued, self.pending = self.pending, []
        if queued:
            self._write(queued, loop)

    def _write(
        self, queued: list[tuple[bytes, asyncio.Future[Any], float | None]], loop: asyncio.AbstractEventLoop
    ) -> None:
        if self.transport is None or self.lost:
            for _, waiter, _ in queued:
                if not waiter.done():
                    waiter.set_exception(ConnectionError("connection to Redis lost"))
            return
        self.transport.write(b"".join(payload for payload, _, _ in queued))
        for _, waiter, limit_s in queued:
            self.waiters.append(waiter)
            if limit_s is not None and not waiter.done():
                timer = loop.call_later(limit_s, _expire, loop, waiter)
                waiter.add_done_callback(functools.partial(_cancel_timer, timer))


def _cancel_timer(timer: asyncio.TimerHandle, _: asyncio.Future[Any]) -> None:
    timer.cancel()


def _expire(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any]) -> None:
    # The reply may sit unread in the socket of a loop that was busy past the limit. Give it the
    # next socket poll: a 1 ms timer runs after it on both loops (uvloop runs ``call_soon``
    # callbacks *before* its poll, so a ``call_soon`` grace failed commands Redis had answered).
    if not waiter.done():
        loop.call_later(0.001, _fail_late, waiter)


def _fail_late(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("Redis did not answer in time"))


class PipelinedRedis:
    def __init__(self, url: str, *, timeout_s: float, connections: int = 2) -> None:
        parts = urlsplit(url)
        if not PipelinedRedis.supports(url):
            raise ValueError(
                f"PipelinedRedis speaks redis://, rediss:// and redis+sentinel://, not {parts.scheme}://"
            )
        self.ssl = tls_context(url)
        self.sentinel: SentinelURL | None = None
        if parts.scheme == SENTINEL_SCHEME:
            self.sentinel = parse_sentinel(url)
            self.host, self.port = self.sentinel.sentinels[0]  # until a sentinel names the primary
            self.username, self.password = self.sentinel.username, self.sentinel.password
            self.db = self.sentinel.db
        else:
            self.host = parts.hostname or "127.0.0.1"
            self.port = parts.port or 6379
            self.username = unquote(parts.username) if parts.username else None
            self.password = unquote(parts.password) if parts.password else None
            path = parts.path.lstrip("/")
            self.db = int(path) if path else 0
        self.timeout_s = timeout_s
        self._slots: list[_Connection | None] = [None] * max(1, connections)
        self._connecting: list[asyncio.Task[_Connection] | None] = [None] * len(self._slots)
        self._next = itertools.cycle(range(len(self._slots)))

    @staticmethod
    def supports(url: str) -> bool:
        return urlsplit(url).scheme in (*SINGLE_SCHEMES, SENTINEL_SCHEME)

    async def _primary(self, sentinel: SentinelURL) -> tuple[str, int]:
        """The primary's address, from the first sentinel that knows it."""
        problems: list[str] = []
        commands: list[list[Arg]] = []
        if sentinel.sentinel_password is not None:
            user: list[Arg] = [sentinel.sentinel_username] if sentinel.sentinel_username else []
            commands.append(["AUTH", *user, sentinel.sentinel_password])
        commands.append(["SENTINEL", "get-master-addr-by-name", sentinel.service])
        for host, port in sentinel.sentinels:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                problems.append(f"{host}:{port}: {exc}")
                continue
            try:
                writer.write(b"".join(encode(command) for command in commands))
                parser = hiredis.Reader()
                replies: list[Any] = []
                while len(replies) < len(commands):
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError("sentinel closed the connection")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
                answer = replies[-1]
                if isinstance(answer, list) and len(answer) == 2:
                    return answer[0].decode(), int(answer[1])
                problems.append(f"{host}:{port}: {answer!r}")
            except (OSError, ValueError, hiredis.ProtocolError) as exc:
                problems.append(f"{host}:{port}: {exc}")
            finally:
                writer.close()
        raise ConnectionError(f"no sentinel named the primary of {sentinel.service!r}: {'; '.join(problems)}")

    async def _open(self, slot: int) -> _Connection:
        loop = asyncio.get_running_loop()
        if self.sentinel is not None:
            self.host, self.port = await self._primary(self.sentinel)
        _, conn = await loop.create_connection(
            _Connection,
            self.host,
            self.port,
            ssl=self.ssl,
            server_hostname=self.host if self.ssl is not None else None,
        )
        setup: list[list[Arg]] = []
        if self.password is not None:
            setup.append(["AUTH", self.username, self.password] if self.username else ["AUTH", self.password])
        if self.db:
            setup.append(["SELECT", self.db])
        try:
            for command in setup:
                await conn.send(encode(command), self.timeout_s)
            if self.sentinel is not None:  # a sentinel's answer may be stale during a failover
                role = await conn.send(encode(["ROLE"]), self.timeout_s)
                if not role or role[0] != b"master":
                    raise ConnectionError(f"{self.host}:{self.port} is not the primary (yet)")
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            raise
        # stored here, not by the caller: a caller that timed out must not orphan the connection
        self._slots[slot] = conn
        return conn

    async def _connection(self, slot: int) -> _Connection:
        conn = self._slots[slot]
        if conn is not None and not conn.lost:
            return conn
        task = self._connecting[slot]
        if task is None or task.done():
            task = self._connecting[slot] = asyncio.ensure_future(self._open(slot))
        try:
            return await asyncio.shield(task)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from exc

    async def execute(self, *args: Arg, timeout_s: float | None = None) -> Any:
        """One command, bounded by ``timeout_s`` of Redis's own lateness, not of this loop's.

        A plain ``asyncio.timeout`` also fires when the reply is already in the socket but a busy
        event loop has not read it yet (timers run before the loop polls its sockets), so a saturated
        worker failed quotas and cache open although Redis had answered in microseconds. Here the
        expiry only marks the command late; it fails if the reply is still missing once the loop has
        polled its sockets, and the limit starts when the command is written (see ``send``)."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        slot = next(self._next)
        conn = self._slots[slot]
        if conn is None or conn.lost:  # (re)connect first; the common case has no await here
            async with asyncio.timeout(limit):
                conn = await self._connection(slot)
        return await conn.send(encode(args), limit)

    async def evalsha(
        self, script: LuaScript, keys: Sequence[Arg], args: Sequence[Arg], *, timeout_s: float | None = None
    ) -> Any:
        """Run ``script`` by its sha; loads it once if Redis does not know it (new or restarted)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args, timeout_s=timeout_s)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.execute("SCRIPT", "LOAD", script.source, timeout_s=timeout_s)
        return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args, timeout_s=timeout_s)

    async def aclose(self) -> None:
        """Close every connection and wait (≤ 1 s) until their sockets are released, so a loop that
        stops right after never leaves a half-closed transport behind."""
        pending = [task for task in self._connecting if task is not None and not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        closing = []
        for conn in self._slots:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
                closing.append(conn.closed)
        self._slots = [None] * len(self._slots)
        if closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.gather(*closing)
