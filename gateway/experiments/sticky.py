"""The sticky ``user`` key of experiments and splits, for a service key that fronts many end users.

Behind one API key every request has the same principal, so keying arm assignment on the principal
puts all of a B2B customer's end users in one arm. The key is, in order:

1. the configured field ``routing.sticky_user_field`` — ``header:<name>`` (e.g.
   ``header:x-end-user``) or ``metadata:<key>`` (the request's ``metadata`` object);
2. the request's OpenAI ``user`` field;
3. the authenticated principal's user id.

The source is returned too, for the route header (``sticky=field|user|principal``) and logs. A
client can choose its own arm by choosing its ``user``; that only moves its own traffic. Values
are clipped to ``MAX_KEY_CHARS`` (they are only hashed).

``bucket`` hashes a key to a stable position and ``pick_weighted`` maps it onto weighted ranges:
experiments and the router's alias splits both assign through them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

MAX_KEY_CHARS = 256

StickySource = Literal["field", "user", "principal", "none"]


def end_user_key(
    field: str | None,
    *,
    headers: Mapping[str, str],
    metadata: Mapping[str, Any] | None,
    user: str | None,
    principal_user: str | None,
) -> tuple[str | None, StickySource]:
    """The end user's sticky key and where it came from (see the module docstring)."""
    if field is not None:
        kind, _, name = field.partition(":")
        value: Any = headers.get(name) if kind == "header" else (metadata or {}).get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:MAX_KEY_CHARS], "field"
    if user:
        return user[:MAX_KEY_CHARS], "user"
    if principal_user:
        return principal_user, "principal"
    return None, "none"


def bucket(*parts: str) -> float:
    """A stable position in [0, 1) for a sticky key: the same key always lands in the same place."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def pick_weighted(weights: Mapping[str, float], position: float) -> str:
    """Bucket ranges in the config's order: changing one weight moves only the users at the boundary."""
    total = sum(weights.values())
    edge = 0.0
    last = next(iter(weights))
    for name, weight in weights.items():
        edge += weight / total
        last = name
        if position < edge:
            return name
    return last
