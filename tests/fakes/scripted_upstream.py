"""A recording OpenAI-compatible upstream that answers exactly what the test scripted.

The transparency tests (issue #20) need an upstream whose every byte is known: each
``POST /v1/chat/completions`` takes the next scripted answer — a JSON body, a list of stream chunks
(one SSE event each, ``[DONE]`` after them) or an error status with its body — and the request is
recorded as received. Real HTTP on 127.0.0.1 (aiohttp), run in a thread like the other fakes::

    with running_scripted_openai() as fake:
        fake.script(Reply(body={...}))              # or Reply(chunks=[...]), Reply(status=401, body=...)
        ... call the gateway ...
        assert fake.last_request.body["x_unknown"] == 1
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import FakeUpstream, json_response, run_in_thread


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``chunks`` (a stream), else ``body`` with ``status``."""

    body: Any = None
    chunks: list[dict[str, Any]] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedOpenAIUpstream(FakeUpstream):
    kind = "openai-scripted"
    default_models = ("scripted",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._replies: collections.deque[Reply] = collections.deque()
        self._script_lock = threading.Lock()

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self.chat_completions)]

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order (an unscripted request gets a 500)."""
        with self._script_lock:
            self._replies.extend(replies)

    def clear(self) -> None:
        with self._script_lock:
            self._replies.clear()
        self.reset()

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        model = body.get("model") if isinstance(body, dict) else None
        self.record(request, body, model if isinstance(model, str) else None)
        with self._script_lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            error = {"message": "nothing scripted", "type": "server_error", "param": None, "code": None}
            return json_response({"error": error}, status=500)
        if reply.chunks is None:
            return json_response(reply.body, status=reply.status, headers=reply.headers)
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        await response.prepare(request)
        for chunk in reply.chunks:
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@contextlib.contextmanager
def running_scripted_openai(**options: Any) -> Iterator[ScriptedOpenAIUpstream]:
    server = ScriptedOpenAIUpstream(**options)
    with run_in_thread(server):
        yield server
