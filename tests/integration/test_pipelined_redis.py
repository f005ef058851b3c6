"""The multiplexed hot-path Redis client against real Redis: replies matched to callers under
concurrency, scripts loaded on NOSCRIPT, a timed-out command never shifts later replies, and a
lost server fails fast and is reconnected to when it returns."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.cache.pipelined import LuaScript, PipelinedRedis, RedisReplyError, encode
from tests.integration.cache_fixtures import *  # noqa: F403 - fixtures
from tests.integration.cache_fixtures import OwnRedis

pytestmark = pytest.mark.integration

ECHO = LuaScript("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1, false}")


def test_encode_is_resp2() -> None:
    assert encode(["SET", b"k", 12, "é"]) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\xc3\xa9\r\n"


async def test_concurrent_callers_get_their_own_replies(shared_redis_url: str) -> None:
    client = PipelinedRedis(shared_redis_url, timeout_s=2.0, connections=2)
    prefix = f"pipelined-{uuid.uuid4().hex[:8]}"
    try:
        await client.execute("SCRIPT", "FLUSH")  # the first EVALSHA must load the script itself
        replies = await asyncio.gather(
            *(client.evalsha(ECHO, (f"{prefix}:{i}",), (f"v{i}", i)) for i in range(500))
        )
        assert replies == [[f"{prefix}:{i}".encode(), f"v{i}".encode(), i + 1, None] for i in range(500)]
        await client.execute("SET", f"{prefix}:x", b"\x00\xffbinary", "PX", 5000)
        assert await client.execute("GET", f"{prefix}:x") == b"\x00\xffbinary"
        with pytest.raises(RedisReplyError):
            await client.execute("INCR", f"{prefix}:x")  # not an integer
        assert await client.execute("DEL", f"{prefix}:x") == 1
    finally:
        await client.aclose()


async def test_timeout_does_not_shift_later_replies(shared_redis_url: str) -> None:
    client = PipelinedRedis(shared_redis_url, timeout_s=0.1, connections=1)
    try:
        with pytest.raises(TimeoutError):
            await client.execute("BLPOP", f"pipelined-empty-{uuid.uuid4().hex}", "0.4")
        client.timeout_s = 2.0
        # the BLPOP's late nil reply arrives first on this connection and must be dropped
        assert await client.execute("ECHO", "after") == b"after"
    finally:
        await client.aclose()


async def test_lost_server_fails_fast_then_reconnects(own_redis: OwnRedis) -> None:
    client = PipelinedRedis(own_redis.url, timeout_s=1.0)
    try:
        assert await client.execute("PING") == b"PONG"
        own_redis.stop()
        started = asyncio.get_running_loop().time()
        for _ in range(3):
            with pytest.raises(ConnectionError):
                await client.execute("PING")
        assert asyncio.get_running_loop().time() - started < 1.0  # refused at once, not timed out
        own_redis.start()
        assert await client.execute("PING") == b"PONG"
        assert await client.evalsha(ECHO, ("k",), ("v", 1)) == [b"k", b"v", 2, None]  # scripts reloaded
    finally:
        await client.aclose()


def test_only_single_server_urls() -> None:
    assert PipelinedRedis.supports("redis://127.0.0.1:6379/0")
    assert PipelinedRedis.supports("rediss://example:6380/0")
    assert PipelinedRedis.supports("redis+sentinel://example:26379/prism")
    assert not PipelinedRedis.supports("redis+cluster://example:7000")
    with pytest.raises(ValueError):
        PipelinedRedis("unix:///tmp/redis.sock", timeout_s=1)


def test_works_on_uvloop(shared_redis_url: str) -> None:
    """The gateway runs on uvloop, whose transports are not asyncio's classes."""
    import uvloop

    async def roundtrip() -> object:
        client = PipelinedRedis(shared_redis_url, timeout_s=2.0)
        try:
            return await client.evalsha(ECHO, ("k",), ("v", 41))
        finally:
            await client.aclose()

    assert uvloop.run(roundtrip()) == [b"k", b"v", 42, None]


async def _reply_on_a_busy_loop(url: str) -> None:
    client = PipelinedRedis(url, timeout_s=0.05, connections=1)
    try:
        assert await client.execute("PING") == b"PONG"  # connected
        task = asyncio.ensure_future(client.execute("ECHO", "busy"))
        for _ in range(3):
            await asyncio.sleep(0)  # the command leaves (its write is flushed with call_soon)
        time.sleep(0.2)  # noqa: ASYNC251 - the loop is blocked on purpose: Redis answers long before
        assert await task == b"busy"
        # queued but not yet written when the loop blocks: Redis's time starts at the write
        task = asyncio.ensure_future(client.execute("ECHO", "queued"))
        await asyncio.sleep(0)  # execute has queued the command; the flush is still to come
        time.sleep(0.2)  # noqa: ASYNC251
        assert await task == b"queued"
        # and a Redis that really is late still times out
        with pytest.raises(TimeoutError):
            await client.execute("BLPOP", f"pipelined-late-{uuid.uuid4().hex}", "0.3")
    finally:
        await client.aclose()


async def test_a_reply_that_waited_on_a_busy_loop_is_not_a_timeout(shared_redis_url: str) -> None:
    """The reply is in the socket before the limit; the loop is busy past it (a saturated worker).
    Only Redis's own lateness counts: the command succeeds."""
    await _reply_on_a_busy_loop(shared_redis_url)


def test_a_reply_that_waited_on_a_busy_uvloop_is_not_a_timeout(shared_redis_url: str) -> None:
    """The same on uvloop, whose iteration runs timers, then ``call_soon`` callbacks, then polls
    sockets: a grace of one ``call_soon`` failed the command before its reply was read (three
    cache-lock timeouts when the classifier held the loop at ``auto`` c=64)."""
    import uvloop

    uvloop.run(_reply_on_a_busy_loop(shared_redis_url))


async def test_aclose_releases_sockets_and_no_connection_is_orphaned(shared_redis_url: str) -> None:
    """A caller whose wait for the connection timed out must not orphan it (the finished connect
    fills its slot), and ``aclose`` returns only once every socket is released: a loop closed right
    after must not leave an unclosed socket for the garbage collector (an unraisable warning)."""
    client = PipelinedRedis(shared_redis_url, timeout_s=2.0, connections=1)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await client._connection(0)
        task = client._connecting[0]
        assert task is not None
        await task
        conn = client._slots[0]
        assert conn is not None and not conn.lost
        assert await client.execute("PING") == b"PONG"
        assert client._slots[0] is conn  # the connection the timed-out caller started, reused
    finally:
        await client.aclose()
    assert conn.lost and conn.closed.done()


async def test_first_command_of_an_iteration_leaves_at_once_the_rest_in_one_write(
    shared_redis_url: str,
) -> None:
    """A request's command is on the wire before the request goes on with its CPU work (the service
    overlaps the quota and cache round trip with routing and guards); a burst shares one write."""
    client = PipelinedRedis(shared_redis_url, timeout_s=2.0, connections=1)
    try:
        assert await client.execute("PING") == b"PONG"  # connected
        conn = client._slots[0]
        assert conn is not None and conn.transport is not None
        writes: list[bytes] = []
        real_write = conn.transport.write

        def counting_write(data: bytes) -> None:
            writes.append(bytes(data))
            real_write(data)

        conn.transport.write = counting_write  # type: ignore[method-assign]
        first = asyncio.ensure_future(client.execute("ECHO", "a"))
        await asyncio.sleep(0)  # the task ran up to its await: nothing else yielded since
        assert len(writes) == 1 and b"ECHO" in writes[0]
        await asyncio.sleep(0)  # a new iteration: "a"'s was the last one's first
        burst = [asyncio.ensure_future(client.execute("ECHO", f"b{i}")) for i in range(5)]
        assert await asyncio.gather(first, *burst) == [b"a", *(f"b{i}".encode() for i in range(5))]
        # the five ran in one iteration: the first of them at once, the other four in one write
        assert [w.count(b"ECHO") for w in writes] == [1, 1, 4]
        assert b"b0" in writes[1] and all(f"b{i}".encode() in writes[2] for i in range(1, 5))
    finally:
        await client.aclose()
