"""The Redis deployments the gateway connects to, named by ``GATEWAY_REDIS_URL``.

* ``redis://[user:password@]host:port/db`` — one server; ``user`` is an ACL user (``AUTH user
  password``), without it the password is the ``default`` user's.
* ``rediss://…?ssl_ca_certs=ca.pem&ssl_certfile=client.pem&ssl_keyfile=client.key`` — the same over
  TLS; the query names are redis-py's (``ssl_cert_reqs=required|optional|none``,
  ``ssl_check_hostname=false``), so both clients read one URL. The server's certificate is verified
  against ``ssl_ca_certs`` (else the system's CAs), host name included.
* ``redis+sentinel://[user:password@]host1:26379,host2:26379/service[/db]?sentinel_password=…`` —
  a Sentinel-managed primary: the sentinels are asked for the primary of ``service``, and asked
  again after a failover. ``user:password`` are the data nodes' credentials;
  ``sentinel_username``/``sentinel_password`` the sentinels' own, if they require them.

The lean pipelined client (``pipelined.py``, the per-request scripts) speaks all three: behind a
Sentinel URL each new connection asks the sentinels for the primary and checks ``ROLE``, and a
``READONLY`` reply drops the connection. The rest of the gateway uses redis-py, with its Sentinel
client for a Sentinel URL (``make_redis``, ``client_from_url``). ``rediss+sentinel://`` is not
supported.

Redis Cluster is refused (a ``redis+cluster://`` URL here, a cluster node behind ``redis://`` when
the backends open): the quota reservation is one atomic script over every scope of a request (key,
user, tier, budget), whose keys it derives itself; in a Cluster they would all have to share one
hash tag, i.e. live on one shard, which is a single primary with extra steps. High availability is
Sentinel's job; the gateway's Redis load (three small commands per request) fits one primary.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SINGLE_SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "redis+sentinel"


class UnsupportedRedisURL(ValueError):
    """A Redis URL (or deployment) the gateway does not support; the message says why and what to use."""


@dataclass(frozen=True, slots=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None


def check(url: str) -> str:
    """The URL's scheme when the gateway supports it; :class:`UnsupportedRedisURL` otherwise."""
    scheme = urlsplit(url).scheme
    if scheme in SINGLE_SCHEMES:
        return scheme
    if scheme == SENTINEL_SCHEME:
        parse_sentinel(url)
        return scheme
    if "cluster" in scheme:
        raise UnsupportedRedisURL(
            "Redis Cluster is not supported (the quota script spans keys of several scopes); "
            "use one primary, with Sentinel for failover (redis+sentinel://), see docs/cache-and-quotas.md"
        )
    raise UnsupportedRedisURL(
        f"unsupported Redis URL scheme {scheme!r}: use redis://, rediss:// or redis+sentinel://"
    )


def _query(url: str) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(url).query).items()}


def parse_sentinel(url: str) -> SentinelURL:
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise UnsupportedRedisURL(f"not a {SENTINEL_SCHEME}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "26379")
        if not host or not port.isdigit():
            raise UnsupportedRedisURL(f"bad sentinel address {item!r} (host:port)")
        sentinels.append((host.strip("[]"), int(port)))
    path = [piece for piece in parts.path.split("/") if piece]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise UnsupportedRedisURL(
            "a sentinel URL names its service: redis+sentinel://host:26379/service[/db]"
        )
    username, password = None, None
    if userinfo:
        name, has_password, secret = userinfo.partition(":")
        username = unquote(name) or None
        password = unquote(secret) if has_password else None
    query = _query(url)
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
    )


def tls_context(url: str) -> ssl.SSLContext | None:
    """For a ``rediss://`` URL: the client context its query describes (redis-py's names)."""
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    query = _query(url)
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in ("required", "optional", "none"):
        raise UnsupportedRedisURL(f"ssl_cert_reqs must be required, optional or none, not {reqs!r}")
    check_hostname = query.get("ssl_check_hostname", "true").lower() not in ("false", "0", "no")
    context.check_hostname = check_hostname and reqs != "none"
    context.verify_mode = {
        "required": ssl.CERT_REQUIRED,
        "optional": ssl.CERT_OPTIONAL,
        "none": ssl.CERT_NONE,
    }[reqs]
    if query.get("ssl_certfile"):
        context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    return context


class SentinelRedis(Redis):
    """The primary's client; closing it closes the sentinel connections too."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for node in self.sentinel_manager.sentinels:
                await node.aclose()


def sentinel_client(url: str, **connection: Any) -> Redis:
    """A redis-py client of the Sentinel-managed primary (it re-asks the sentinels after a failover)."""
    target = parse_sentinel(url)
    sentinel_kwargs: dict[str, Any] = {
        key: value for key, value in connection.items() if key.startswith("socket_")
    }
    if target.sentinel_password is not None:
        sentinel_kwargs["password"] = target.sentinel_password
    if target.sentinel_username is not None:
        sentinel_kwargs["username"] = target.sentinel_username
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: SentinelRedis = sentinel.master_for(
        target.service,
        redis_class=SentinelRedis,
        db=target.db,
        username=target.username,
        password=target.password,
        **connection,
    )
    client.sentinel_manager = sentinel
    return client


def client_from_url(url: str, **connection: Any) -> Redis:
    """``Redis.from_url`` for every supported URL, Sentinel's included."""
    if check(url) == SENTINEL_SCHEME:
        return sentinel_client(url, **connection)
    return Redis.from_url(url, **connection)
