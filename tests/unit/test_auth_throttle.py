"""Auth throttling rules (in-process store), the trusted-proxy client address and the headers."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config.settings import get_settings, parse_networks
from gateway.errors import RateLimited
from gateway.security.client_address import ClientAddressResolver, bucket
from gateway.security.headers import SecurityHeadersMiddleware, require_production_surface
from gateway.security.throttle import AuthThrottle, ThrottleLimits


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: _Clock, **limits: float) -> AuthThrottle:
    values: dict[str, float] = {"window_s": 60, "per_account_address": 3, "per_address": 5, "per_account": 8}
    values.update(limits)
    return AuthThrottle(limits=ThrottleLimits(**values), clock=clock)  # type: ignore[arg-type]


async def test_pair_limit_then_retry_after_and_window_slides() -> None:
    clock = _Clock()
    throttle = _throttle(clock)
    for _ in range(3):
        await throttle.login(account="a@x.io", address="1.1.1.1")  # failures: never released
    with pytest.raises(RateLimited) as exc:
        await throttle.login(account="a@x.io", address="1.1.1.1")
    assert exc.value.headers["Retry-After"] == "60" and exc.value.code == "login_throttled"
    await throttle.login(account="a@x.io", address="2.2.2.2")  # the owner elsewhere is not blocked
    clock.now = 61
    await throttle.login(account="a@x.io", address="1.1.1.1")


async def test_success_is_not_counted_and_clears_its_pair() -> None:
    throttle = _throttle(_Clock())
    for _ in range(2):
        await throttle.login(account="a@x.io", address="1.1.1.1")
    ok = await throttle.login(account="a@x.io", address="1.1.1.1")
    await ok.succeeded()
    for _ in range(3):  # the pair starts over after a success
        await throttle.login(account="a@x.io", address="1.1.1.1")
    with pytest.raises(RateLimited):
        await throttle.login(account="a@x.io", address="1.1.1.1")


async def test_address_spraying_many_accounts_is_limited() -> None:
    throttle = _throttle(_Clock())
    for i in range(5):
        await throttle.login(account=f"u{i}@x.io", address="9.9.9.9")
    with pytest.raises(RateLimited):
        await throttle.login(account="fresh@x.io", address="9.9.9.9")


async def test_account_limit_refuses_dirty_addresses_but_never_a_clean_one() -> None:
    throttle = _throttle(_Clock(), per_account=4)
    for i in range(4):  # a distributed run: one failure per address
        await throttle.login(account="victim@x.io", address=f"10.0.0.{i}")
    with pytest.raises(RateLimited):  # an address that already failed is out
        await throttle.login(account="victim@x.io", address="10.0.0.1")
    ok = await throttle.login(account="victim@x.io", address="192.0.2.7")  # the owner, clean address
    await ok.succeeded()
    await (await throttle.login(account="victim@x.io", address="192.0.2.7")).succeeded()


async def test_concurrent_attempts_never_exceed_the_limit() -> None:
    throttle = _throttle(_Clock())
    results = await asyncio.gather(
        *(throttle.login(account="a@x.io", address="1.1.1.1") for _ in range(20)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 3


async def test_ipv6_addresses_share_their_slash_64() -> None:
    throttle = _throttle(_Clock())
    for i in range(3):
        await throttle.login(account="a@x.io", address=f"2001:db8:1:2::{i + 1}")
    with pytest.raises(RateLimited):
        await throttle.login(account="a@x.io", address="2001:db8:1:2:ffff::9")
    assert bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert bucket("::ffff:1.2.3.4") == "1.2.3.4"


async def test_registration_counts_every_attempt() -> None:
    throttle = _throttle(_Clock(), register_per_address=2)
    await throttle.register(address="1.1.1.1")
    await throttle.register(address="1.1.1.1")
    with pytest.raises(RateLimited) as exc:
        await throttle.register(address="1.1.1.1")
    assert exc.value.code == "register_throttled"


def test_forwarded_for_only_from_trusted_proxies() -> None:
    resolver = ClientAddressResolver("10.0.0.0/8, 127.0.0.1")
    # a direct client cannot choose its address
    assert resolver.resolve(peer="203.0.113.5", forwarded_for="1.2.3.4") == "203.0.113.5"
    # behind the proxy: the right-most untrusted hop (a client-written prefix is skipped)
    assert resolver.resolve(peer="10.1.2.3", forwarded_for="6.6.6.6, 198.51.100.7") == "198.51.100.7"
    assert resolver.resolve(peer="10.1.2.3", forwarded_for="198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert resolver.resolve(peer="10.1.2.3", forwarded_for=None) == "10.1.2.3"
    assert resolver.resolve(peer="10.1.2.3", forwarded_for="junk, nonsense") == "10.1.2.3"
    assert ClientAddressResolver("").resolve(peer="10.1.2.3", forwarded_for="1.2.3.4") == "10.1.2.3"
    with pytest.raises(ValueError, match="not-a-cidr"):
        parse_networks("10.0.0.0/8, not-a-cidr")


async def _ok(request: object) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _own_csp(request: object) -> JSONResponse:
    return JSONResponse({"ok": True}, headers={"Content-Security-Policy": "default-src 'self' data:"})


def _client(**overrides: object) -> httpx.AsyncClient:
    routes = [Route(p, _ok) for p in ("/v1/models", "/auth/login", "/metrics", "/ui/")]
    app = Starlette(routes=[*routes, Route("/ui/own", _own_csp)])
    settings = get_settings(**overrides)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=SecurityHeadersMiddleware(app, settings=settings)),
        base_url="http://t",
    )


async def test_security_headers_no_store_and_metrics_token() -> None:
    async with _client(metrics_token="m" * 24, hsts_max_age_s=600) as client:
        r = await client.get("/v1/models")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["strict-transport-security"] == "max-age=600; includeSubDomains"
        assert "cache-control" not in r.headers
        assert (await client.get("/auth/login")).headers["cache-control"] == "no-store"
        refused = await client.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (
            await client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 24})
        ).status_code == 200
        ui = await client.get("/ui/")
        assert "script-src 'self'" in ui.headers["content-security-policy"]
        own = await client.get("/ui/own")  # the console's own policy is kept, not doubled
        assert own.headers.get_list("content-security-policy") == ["default-src 'self' data:"]
    async with _client() as client:  # development: no token, no HSTS
        r = await client.get("/metrics")
        assert r.status_code == 200 and "strict-transport-security" not in r.headers


def test_production_requires_a_metrics_token_and_closes_registration_and_docs() -> None:
    secret = "s" * 40
    with pytest.raises(ValueError, match="GATEWAY_METRICS_TOKEN"):
        require_production_surface(get_settings(env="production", jwt_secret=secret))
    prod = get_settings(env="production", jwt_secret=secret, metrics_token="t" * 20)
    assert not prod.registration_enabled and not prod.docs_served
    assert get_settings(env="production", jwt_secret=secret, metrics_token="t" * 20, registration_open=True)
    dev = get_settings()
    assert dev.registration_enabled and dev.docs_served
