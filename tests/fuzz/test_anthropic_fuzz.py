"""Property-based fuzzing of ``/v1/messages`` and ``/v1/messages/count_tokens`` with bodies that name
real models (schemathesis' bodies mostly stop at an unknown model): random roles, content blocks of
every type with random fields, systems, tools, tool choices and sampling fields. Every answer must be
below 500, every error in Anthropic's envelope, every stream end with ``message_stop`` or ``error``,
and the log must hold no ``unhandled_error``. (It found: ``auto`` with no user turn was a 500 on both
API families; count_tokens re-validated its body as a Messages request.)"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway_proc import GatewayProcess, running_gateway

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_MESSAGES_EXAMPLES", "400"))

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_type = st.sampled_from(
    [
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "x",
    ]
)
_source = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["base64", "url", "text", "file"]),
        "media_type": st.sampled_from(["image/png", "application/pdf", "text/plain"]) | _json,
        "data": _json,
        "url": _json,
    },
)
_block = st.fixed_dictionaries(
    {"type": _type},
    optional={
        "text": _json,
        "source": _source,
        "id": _json,
        "name": _json,
        "input": _json,
        "tool_use_id": _json,
        "content": _json
        | st.lists(st.fixed_dictionaries({"type": _type}, optional={"text": _json}), max_size=2),
        "is_error": _json,
        "cache_control": _json,
    },
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool"]),
        "content": st.text(max_size=20) | st.lists(_block, max_size=4),
    }
)
_tool = st.fixed_dictionaries(
    {"name": st.sampled_from(["get_weather", "bad name", ""])},
    optional={"input_schema": _json, "type": _json, "description": _json},
)
BODIES = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["mock-fast", "auto"]),
        "max_tokens": st.integers(0, 50),
        "messages": st.lists(_message, max_size=4),
    },
    optional={
        "system": _json | st.lists(_block, max_size=2),
        "tools": st.lists(_tool, max_size=2),
        "tool_choice": _json
        | st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none"])},
            optional={"name": _json, "disable_parallel_tool_use": _json},
        ),
        "stop_sequences": _json,
        "stream": st.booleans(),
        "temperature": _json,
        "metadata": _json,
        "thinking": _json,
        "top_k": _json,
    },
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    with tempfile.TemporaryDirectory() as tmp, running_gateway(Path(tmp)) as process:
        yield process


def test_fuzz_messages(gateway: GatewayProcess) -> None:
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=gateway.url, timeout=15) as client:

        @given(body=BODIES)
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(body: dict[str, Any]) -> None:
            for path in ("/v1/messages", "/v1/messages/count_tokens"):
                response = client.post(path, json=body)
                statuses[response.status_code] += 1
                assert response.status_code < 500, (response.status_code, response.text, body)
                if response.status_code >= 400:
                    error = response.json()
                    assert error["type"] == "error" and error["error"]["message"], error
                elif body.get("stream") and path == "/v1/messages":
                    assert "event: message_stop" in response.text or "event: error" in response.text

        call()
    print(f"\nFUZZ /v1/messages: {dict(sorted(statuses.items()))}")
    assert statuses[200] > 0
    assert "unhandled_error" not in gateway.log(), gateway.log()[-3000:]
