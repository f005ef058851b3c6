"""The client's address, as throttling and logs must see it.

``X-Forwarded-For`` is believed only when the direct peer is a configured trusted proxy
(``GATEWAY_TRUSTED_PROXIES``); then the header is read right to left and the first address that
is not itself a trusted proxy is the client. Anything else a client writes into the header is
ignored, so a direct caller cannot pick its own throttling bucket. uvicorn's own proxy-header
rewriting is switched off in ``gateway.__main__`` so that this is the one place that decides.

IPv6 clients are bucketed by their /64: one host usually holds a whole /64 and could otherwise
rotate through addresses for free.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from gateway.config.settings import parse_networks

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    value = text.strip()
    if value.startswith("[") and "]" in value:  # "[v6]:port"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "v4:port"
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def bucket(address: str) -> str:
    """The throttling bucket of an address: itself for IPv4, its /64 for IPv6."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address[:64]


class ClientAddressResolver:
    def __init__(self, trusted: str | Iterable[str] = "") -> None:
        self.trusted = parse_networks(trusted)

    def _is_trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.trusted)

    def resolve(self, *, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client address for a request from ``peer`` carrying ``X-Forwarded-For``."""
        if peer is None:
            return None
        if not self.trusted or not forwarded_for or not self._is_trusted(_address(peer)):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return peer  # a malformed hop: do not guess past it, bucket on the proxy we know
            if not self._is_trusted(address):
                return str(address)
        return str(_address(hops[0])) if hops else peer
