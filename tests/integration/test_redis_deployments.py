"""The Redis deployments ``GATEWAY_REDIS_URL`` may name, each against real ``redis-server`` processes
on spare loopback ports: TLS with a client certificate (``rediss://``), an ACL user, a Sentinel-managed
primary that fails over, and a Cluster node (refused, as documented in ``redis_url.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError

from gateway.cache import redis_url
from gateway.cache.backends import make_redis, open_backends
from gateway.cache.pipelined import LuaScript, PipelinedRedis, RedisReplyError
from gateway.cache.quota import EffectiveLimits, ScopeLimits
from gateway.cache.store import RedisResponseStore
from gateway.config.settings import get_settings
from gateway.security.principal import Principal
from tests.support.pki import PKI, make_pki
from tests.support.ports import candidate_port
from tests.support.redis_proc import RedisServer as Server
from tests.support.redis_proc import servers

pytestmark = pytest.mark.integration

ECHO = LuaScript("return {KEYS[1], ARGV[1]}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("redis-pki"))


def _tls_url(port: int, pki: PKI, *, cert: bool = True, ca: Path | None = None) -> str:
    query = f"ssl_ca_certs={quote(str(ca or pki.ca))}"
    if cert:
        query += f"&ssl_certfile={quote(str(pki.client_cert))}&ssl_keyfile={quote(str(pki.client_key))}"
    return f"rediss://127.0.0.1:{port}/0?{query}"


async def _reserve_once(url: str, *, expect_fast: bool) -> None:
    """Open the real backends on ``url`` and run one quota reservation and one cache round trip."""
    prefix = f"deploy-{uuid.uuid4().hex[:8]}"
    backends = await open_backends(get_settings(redis_url=url, redis_timeout_ms=2000), prefix=prefix)
    try:
        assert (backends.fast is not None) is expect_fast
        assert await backends.ping()
        limits = EffectiveLimits((ScopeLimits("key:k1", rpm=5),))
        await backends.quotas.check_and_reserve(
            request_id="r1",
            principal=Principal(user_id="u1", api_key_id="k1"),
            estimated_tokens=10,
            estimated_cost_usd=0.0,
            limits=limits,
        )
        assert backends.redis is not None
        assert [key async for key in backends.redis.scan_iter(match=f"{prefix}:*")]  # the reservation
        store = RedisResponseStore(backends.redis, prefix=prefix, fast=backends.fast)
        await store.set("entry", b"answer", 30)
        assert await store.get("entry") == b"answer"
    finally:
        await backends.aclose()


async def test_tls_with_a_client_certificate(tmp_path: Path, pki: PKI) -> None:
    server = Server(
        tmp_path / "tls",
        *("--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key)),
        *("--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes"),
        tls=True,
    ).start()
    with servers(server):
        url = _tls_url(server.port, pki)
        fast = PipelinedRedis(url, timeout_s=2.0)
        try:
            assert await fast.evalsha(ECHO, ["k"], ["v"]) == [b"k", b"v"]
        finally:
            await fast.aclose()
        await _reserve_once(url, expect_fast=True)  # lean client and redis-py on one URL

        no_cert = PipelinedRedis(_tls_url(server.port, pki, cert=False), timeout_s=2.0)
        try:
            with pytest.raises((ConnectionError, OSError)):  # the server requires a client certificate
                await no_cert.execute("PING")
        finally:
            await no_cert.aclose()
        wrong_ca = PipelinedRedis(_tls_url(server.port, pki, ca=pki.other_ca), timeout_s=2.0)
        try:
            with pytest.raises((ConnectionError, OSError)):  # ssl.SSLCertVerificationError is an OSError
                await wrong_ca.execute("PING")
        finally:
            await wrong_ca.aclose()
        plain = PipelinedRedis(f"redis://127.0.0.1:{server.port}/0", timeout_s=1.0)
        try:
            with pytest.raises((ConnectionError, TimeoutError)):
                await plain.execute("PING")
        finally:
            await plain.aclose()


async def test_acl_user_and_password(tmp_path: Path) -> None:
    password = "p@ss:w/rd"
    server = Server(
        tmp_path / "acl",
        *("--user", "default", "off"),
        *("--user", "prism", "on", f">{password}", "~*", "&*", "+@all"),
    ).start()
    with servers(server):
        url = f"redis://prism:{quote(password, safe='')}@127.0.0.1:{server.port}/0"
        await _reserve_once(url, expect_fast=True)

        wrong = f"redis://prism:nope@127.0.0.1:{server.port}/0"
        fast = PipelinedRedis(wrong, timeout_s=2.0)
        try:
            with pytest.raises(RedisReplyError, match="WRONGPASS"):
                await fast.execute("PING")
        finally:
            await fast.aclose()
        slow = make_redis(wrong, timeout_ms=2000)
        try:
            with pytest.raises(AuthenticationError):
                await slow.ping()
        finally:
            await slow.aclose()
        anonymous = PipelinedRedis(f"redis://127.0.0.1:{server.port}/0", timeout_s=2.0)
        try:
            with pytest.raises(RedisReplyError, match="NOAUTH"):  # the default user is off
                await anonymous.execute("GET", "x")
        finally:
            await anonymous.aclose()


async def _until(check: object, deadline_s: float = 30.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + deadline_s
    while True:
        with contextlib.suppress(RedisError, OSError, AssertionError):
            if await check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def sentinel_deployment(tmp_path: Path) -> AsyncIterator[tuple[Server, Server, Server, str]]:
    """A primary, its replica and one sentinel (quorum 1) on loopback; yields them and the URL."""
    primary = Server(tmp_path / "primary").start()
    replica = Server(tmp_path / "replica", "--replicaof", "127.0.0.1", "PRIMARY")
    replica.command[replica.command.index("PRIMARY")] = str(primary.port)
    replica.start()
    sentinel = Server(tmp_path / "sentinel")
    with servers(primary, replica, sentinel):
        probe = Redis(port=primary.port)
        await _until(lambda: _connected_replicas(probe))
        await probe.aclose()
        conf = tmp_path / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"port {sentinel.port}\nbind 127.0.0.1\n"
            f"sentinel monitor prism 127.0.0.1 {primary.port} 1\n"
            "sentinel down-after-milliseconds prism 400\n"
            "sentinel failover-timeout prism 5000\n"
        )
        sentinel.start([sentinel.command[0], str(conf), "--sentinel"])
        yield primary, replica, sentinel, f"redis+sentinel://127.0.0.1:{sentinel.port}/prism/0"


@pytest.mark.slow
async def test_sentinel_primary_and_failover(tmp_path: Path) -> None:
    """The gateway follows Sentinel: backends open on the primary it names (the lean client and
    redis-py both), and after the primary dies both clients reach the replica Sentinel promoted."""
    async with sentinel_deployment(tmp_path) as (primary, replica, _, url):
        assert redis_url.check(url) == "redis+sentinel"
        await _reserve_once(url, expect_fast=True)

        client = make_redis(url, timeout_ms=2000)
        fast = PipelinedRedis(url, timeout_s=2.0)
        try:
            assert await _served_by(fast) == primary.port
            await client.set("before", "1")
            on_replica = Redis(port=replica.port)
            try:  # replicated before the primary dies
                await _until(lambda: _has(on_replica, "before"))
            finally:
                await on_replica.aclose()
            primary.kill()

            async def promoted() -> bool:
                await client.set("after", "1")
                address = await client.connection_pool.get_master_address()  # type: ignore[attr-defined]
                return bool(address[1] == replica.port)

            await _until(promoted)
            assert await client.get("before") == b"1"  # it was replicated before the failover

            async def lean_follows() -> bool:  # the lean client asks the sentinels again
                return await _served_by(fast) == replica.port

            await _until(lean_follows)
            assert await fast.evalsha(ECHO, ["k"], ["v"]) == [b"k", b"v"]
        finally:
            await client.aclose()
            await fast.aclose()

        # the config listener's pub/sub client takes the same URL
        listener = redis_url.client_from_url(url, socket_timeout=2.0)
        try:
            assert await listener.publish("prism-test", "x") == 0
        finally:
            await listener.aclose()


@pytest.mark.slow
async def test_lean_client_follows_a_graceful_failover(tmp_path: Path) -> None:
    """``SENTINEL FAILOVER`` demotes a live primary: the lean client's connection to it either drops
    or answers ``READONLY``; either way the next commands reach the new primary."""
    async with sentinel_deployment(tmp_path) as (primary, replica, sentinel, url):
        fast = PipelinedRedis(url, timeout_s=2.0, connections=1)
        admin = Redis(port=sentinel.port)
        try:
            assert await _served_by(fast) == primary.port
            await _until(lambda: _failover(admin))  # NOGOODSLAVE until Sentinel has seen the replica

            async def lean_follows() -> bool:
                return await _served_by(fast) == replica.port

            await _until(lean_follows)
        finally:
            await fast.aclose()
            await admin.aclose()


async def test_a_readonly_reply_drops_the_connection(tmp_path: Path) -> None:
    """Writing to a replica answers ``READONLY``: the command fails and the connection is replaced
    (behind a Sentinel URL the new one goes to the primary; see the tests above)."""
    primary = Server(tmp_path / "primary").start()
    replica = Server(tmp_path / "replica", "--replicaof", "127.0.0.1", "PRIMARY")
    replica.command[replica.command.index("PRIMARY")] = str(primary.port)
    with servers(primary, replica.start()):
        fast = PipelinedRedis(f"redis://127.0.0.1:{replica.port}/0", timeout_s=2.0, connections=1)
        try:
            before = await fast.execute("CLIENT", "ID")
            with pytest.raises(RedisReplyError, match="READONLY"):
                await fast.execute("SET", "k", "v")
            assert await fast.execute("CLIENT", "ID") != before
        finally:
            await fast.aclose()


async def _failover(admin: Redis) -> bool:
    return bool(await admin.execute_command("SENTINEL", "FAILOVER", "prism"))


async def _served_by(client: PipelinedRedis) -> int:
    """The port of the server that took a write."""
    await client.execute("SET", "lean-probe", "1")
    _, port = await client.execute("CONFIG", "GET", "port")
    return int(port)


async def _has(client: Redis, key: str) -> bool:
    return bool(await client.exists(key))


async def _connected_replicas(client: Redis) -> bool:
    info = await client.info("replication")
    return bool(info.get("connected_slaves"))


async def test_a_cluster_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(redis_url.UnsupportedRedisURL, match="Cluster is not supported"):
        redis_url.check("redis+cluster://127.0.0.1:7000")
    with pytest.raises(redis_url.UnsupportedRedisURL, match="scheme"):
        redis_url.check("memcached://127.0.0.1:11211")
    node = Server(
        tmp_path / "cluster",
        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
        *("--cluster-port", str(candidate_port())),  # the default, port + 10000, may not exist
    ).start()
    with servers(node), pytest.raises(redis_url.UnsupportedRedisURL, match="Cluster node"):
        await open_backends(get_settings(redis_url=f"redis://127.0.0.1:{node.port}/0"))


def test_sentinel_urls() -> None:
    parsed = redis_url.parse_sentinel(
        "redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2/cache/3?sentinel_password=sp"
    )
    assert parsed.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (parsed.service, parsed.db, parsed.username, parsed.password) == ("cache", 3, "app", "s@cret")
    assert parsed.sentinel_password == "sp"
    with pytest.raises(redis_url.UnsupportedRedisURL, match="names its service"):
        redis_url.parse_sentinel("redis+sentinel://10.0.0.1:26379")
    assert PipelinedRedis.supports("redis+sentinel://10.0.0.1:26379/cache")


def test_tls_options_follow_redis_py_names(pki: PKI) -> None:
    assert redis_url.tls_context("redis://127.0.0.1:6379/0") is None
    strict = redis_url.tls_context(_tls_url(6380, pki))
    assert strict is not None and strict.check_hostname and strict.verify_mode == ssl.CERT_REQUIRED
    relaxed = redis_url.tls_context(f"rediss://h:6380/0?ssl_ca_certs={pki.ca}&ssl_check_hostname=false")
    assert relaxed is not None and not relaxed.check_hostname and relaxed.verify_mode == ssl.CERT_REQUIRED
    off = redis_url.tls_context("rediss://h:6380/0?ssl_cert_reqs=none")
    assert off is not None and off.verify_mode == ssl.CERT_NONE
    with pytest.raises(redis_url.UnsupportedRedisURL, match="ssl_cert_reqs"):
        redis_url.tls_context("rediss://h:6380/0?ssl_cert_reqs=sometimes")
