"""Exact-match cache keys: canonical JSON of the normalised request, hashed with SHA-256.

Two requests that mean the same thing hash equal: keys are sorted, ``None`` values are
dropped (an explicit ``"temperature": null`` is the same as leaving it out), integral
floats become integers (``0.0`` == ``0``) and the fields that do not change the answer
(``stream``, ``stream_options``, ``user``, ``metadata``) are left out. The client's
``model`` is replaced by the resolved route so aliases that resolve to one model share
entries. Vendor extensions stay in the key: they may change the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel

KEY_VERSION = "v1"

EXCLUDED_FIELDS = frozenset({"model", "stream", "stream_options", "user", "metadata"})
"""Request fields that never change the generated answer (``model`` is replaced by the route)."""


def _normalise(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _normalise(value.model_dump(exclude_none=True, mode="json"))
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # beyond 2**53 it would not fit the 64-bit integers JSON encoders write
    return value


def normalise_request(request: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """The parts of a chat completion request that determine the answer, normalised."""
    raw: Mapping[str, Any] = (
        request.model_dump(exclude_none=True, mode="json") if isinstance(request, BaseModel) else request
    )
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in EXCLUDED_FIELDS or value is None:
            continue
        out[name] = _normalise(value)
    return out


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def cache_key(
    request: Mapping[str, Any] | BaseModel,
    *,
    route: str,
    tenant: str,
    shared: bool = False,
) -> str:
    """The hex SHA-256 cache key. ``shared`` models drop the tenant so every caller shares entries."""
    scope = "*" if shared else f"t:{tenant}"
    material = canonical_json(
        {"v": KEY_VERSION, "scope": scope, "route": route, "req": normalise_request(request)}
    )
    return hashlib.sha256(material).hexdigest()


def _get(request: Mapping[str, Any] | BaseModel, name: str) -> Any:
    if isinstance(request, BaseModel):
        return getattr(request, name, None)
    return request.get(name)


def is_deterministic(request: Mapping[str, Any] | BaseModel) -> bool:
    """Explicitly deterministic: ``temperature: 0`` or a ``seed``. Unset is not (OpenAI's default
    temperature is 1)."""
    temperature = _get(request, "temperature")
    if temperature is not None and float(temperature) == 0.0:
        return True
    return _get(request, "seed") is not None


def cacheable(
    request: Mapping[str, Any] | BaseModel,
    *,
    cache_non_deterministic: bool = False,
    opt_in: bool = False,
) -> bool:
    """Whether a response to ``request`` may be served from / stored in the cache.

    Deterministic requests always are; others only when the model's config allows caching
    non-deterministic answers (``cache_non_deterministic``) or the caller opted in explicitly.
    """
    return is_deterministic(request) or cache_non_deterministic or opt_in
