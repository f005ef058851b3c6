"""How a model's HTTP requests reach its upstream: proxy, TLS trust and client certificate, pool idle time.

``UpstreamHTTPSettings`` (``gateway/config/providers.py``) is the ``http:`` block of a model in the
routing YAML; this module turns it into the wire client's endpoints. By default a model honours
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` from the environment (lower case
first, as curl, httpx and aiohttp read them; loopback upstreams always go direct) and trusts the
system's CAs; ``proxy`` overrides the environment for one model (``proxy: ""`` or ``trust_env:
false`` means direct), ``ca_bundle`` replaces the trusted CAs (httpx's ``verify=<path>``),
``client_cert``/``client_key`` present a client certificate (mTLS). Only ``http://`` proxies are
supported (``CONNECT`` for ``https`` upstreams): an ``https://`` or SOCKS proxy is refused when the
config is read.

The lean client (``wire_http``) implements all of it; models on ``client: langchain`` or
``provider: ollama`` go through their libraries' own clients, which honour the environment's
proxies but not these per-model settings, so a non-default ``http:`` block is refused for them.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config.providers import UpstreamHTTPSettings
from gateway.providers.wire_http import Endpoint, Proxy


@dataclass(frozen=True, slots=True)
class TLSProfile:
    """The files an upstream's TLS context is built from (its identity in the connection pool)."""

    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client context verifying the server (hostname included) against ``ca_bundle`` or the
        system's CAs, presenting the client certificate if any. Reads the files: call at build time."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)
        if self.client_cert is not None:
            context.load_cert_chain(str(self.client_cert), str(self.client_key) if self.client_key else None)
        return context


def _env(env: Mapping[str, str], name: str) -> str | None:
    for key in (name.lower(), name.upper()):
        value = env.get(key)
        if value is not None:
            return value.strip()
    return None


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """``NO_PROXY`` semantics (curl's, which httpx and aiohttp follow): ``*`` matches every host;
    ``example.com`` and ``.example.com`` match the domain and its subdomains; ``host:port`` only that
    port; an IP address or CIDR block matches the addresses in it (literal IP hosts only)."""
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.count(":") == 1 and not entry.startswith("["):  # name:port or IPv4:port
            name, _, port_text = entry.partition(":")
            if port_text.isdigit():
                entry, entry_port = name, int(port_text)
        elif entry.startswith("[") and "]:" in entry:
            name, _, port_text = entry[1:].partition("]:")
            if port_text.isdigit():
                entry, entry_port = name, int(port_text)
        entry = entry.strip("[]")
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False


def is_loopback(host: str) -> bool:
    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: str, settings: UpstreamHTTPSettings, env: Mapping[str, str]) -> Proxy | None:
    """The proxy a request to ``url`` goes through, or ``None`` for a direct connection. Loopback
    upstreams (``localhost``, ``127.0.0.0/8``, ``::1``) never take the environment's proxy (as Go's
    ``ProxyFromEnvironment``): a proxy cannot reach this host's loopback; ``http.proxy`` still applies."""
    if settings.proxy is not None:
        return Proxy.from_url(settings.proxy) if settings.proxy else None
    if not settings.trust_env:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    no_proxy = _env(env, "NO_PROXY")
    if is_loopback(host) or (no_proxy and bypasses_proxy(host, port, no_proxy)):
        return None
    value = _env(env, "HTTPS_PROXY" if parts.scheme == "https" else "HTTP_PROXY") or _env(env, "ALL_PROXY")
    if not value:
        return None
    try:
        return Proxy.from_url(value)
    except ValueError as exc:
        raise ValueError(f"proxy from the environment for {parts.scheme} URLs: {exc}") from None


class EndpointFactory:
    """Builds the endpoints of every model from their settings, one TLS context per distinct profile
    (the pool keys connections by profile, so models sharing an origin and profile share them)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._contexts: dict[TLSProfile, ssl.SSLContext] = {}

    def endpoint(self, url: str, settings: UpstreamHTTPSettings) -> Endpoint:
        profile = TLSProfile(settings.ca_bundle, settings.client_cert, settings.client_key)
        context = None
        if url.startswith("https:") and profile != TLSProfile():
            context = self._contexts.get(profile)
            if context is None:
                context = self._contexts[profile] = profile.context()
        return Endpoint(
            url,
            ssl_context=context,
            tls_profile=profile,
            proxy=proxy_for(url, settings, self._env),
            idle_s=settings.pool_idle_s,
        )
