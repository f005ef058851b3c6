"""Who a tool call is made for: the principal and request id of the request (or ``/mcp`` call) the
tool runs for, in a context variable, so tools that act on the caller's data (``search``: collection
visibility, the embedding model's allow-list, quotas, the usage record) act as that caller. The
tool loop and the ``/mcp`` endpoint wrap their calls in :func:`acting_as`; tasks started inside the
block (``asyncio.gather``) inherit it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from gateway.security.principal import Principal

_caller: ContextVar[tuple[Principal, str] | None] = ContextVar("prism_tool_caller", default=None)


@contextlib.contextmanager
def acting_as(principal: Principal, request_id: str) -> Iterator[None]:
    """Run tool calls inside this block on behalf of ``principal`` (for request ``request_id``)."""
    token = _caller.set((principal, request_id))
    try:
        yield
    finally:
        _caller.reset(token)


def current_caller() -> tuple[Principal, str] | None:
    """The principal and request id the running tool call is made for, if any."""
    return _caller.get()
