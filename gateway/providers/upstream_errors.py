"""An OpenAI-compatible upstream's non-2xx answer as a gateway provider error.

The status mapping (docs/api.md, "Transparency"):

* ``400``, ``413``, ``422``: the request itself was refused, so the client gets the same status with
  the upstream's ``message``, ``type``, ``param`` and ``code`` (no retry, no fallback);
  ``context_length_exceeded`` becomes ``ContextTooLong`` as before.
* ``401``, ``403``, ``404`` and any other 4xx: ``502`` — the gateway's credentials or its
  configuration of the upstream model are wrong, not the client's key or request (a ``401`` would make
  an SDK report the *client's* key as invalid) — with the upstream's ``message``, ``type``, ``param``
  and ``code`` inside; a fallback may still answer.
* ``429``, ``408``, ``409`` and ``5xx``: Prism's own retry and fallback decide, so its own codes
  (``upstream_rate_limited``, ``upstream_unavailable``) are kept; ``429`` carries ``Retry-After``.

Anything shaped like an API key in an upstream message is redacted (``sk-***``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import (
    ContextTooLong,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderRejectedTooLarge,
    ProviderRejectedUnprocessable,
    ProviderUnavailable,
)

_KEY = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9*_\-]{3,}")
_REJECTED: dict[int, type[ProviderRejected]] = {
    400: ProviderRejected,
    413: ProviderRejectedTooLarge,
    422: ProviderRejectedUnprocessable,
}


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """``retry-after-ms`` (OpenAI) or ``retry-after`` (seconds) as seconds."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_for_status(
    status: int, body: Any, *, target: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The error to raise for an upstream's ``status`` and decoded ``body`` (raises ``ContextTooLong``
    for that 400)."""
    message = f"{target}: upstream returned {status}"
    if status == 429:
        return ProviderRateLimited(
            message, target=target, upstream_status=status, retry_after=retry_after_s(headers)
        )
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(message, target=target, upstream_status=status)
    error = body.get("error", body) if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    if code == "context_length_exceeded":
        raise ContextTooLong(f"{target}: prompt exceeds the model's context window")
    detail = _text(error.get("message")) or (
        "upstream rejected the request" if status in _REJECTED else f"upstream returned {status}"
    )
    fields: dict[str, Any] = {
        "target": target,
        "upstream_status": status,
        "param": _text(error.get("param")),
        "code": str(code) if code is not None and code != "" else None,
        "upstream_type": _text(error.get("type")),
    }
    cls = _REJECTED.get(status, ProviderBadResponse)
    return cls(_KEY.sub(r"\1-***", detail)[:1000], **fields)
