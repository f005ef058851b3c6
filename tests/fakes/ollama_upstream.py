"""A fake Ollama server speaking Ollama's native wire protocol (aiohttp).

``POST /api/chat`` streams NDJSON when ``"stream"`` is true or absent (Ollama's default)
and answers one JSON object when ``"stream": false``; ``GET /api/tags``,
``GET /api/version`` and ``GET /`` are there too.  Faults, recording, counters and the
control endpoints are the same as the OpenAI fake (see :mod:`tests.fakes.openai_upstream`).

CLI: ``python -m tests.fakes.ollama_upstream --port 9200 --chunks 20``
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_upstream import (
    STATUS_MODES,
    FakeUpstream,
    ReplyPlan,
    json_response,
    plan_reply,
    run_in_thread,
    serve_cli,
    write_frames,
)

OLLAMA_VERSION = "0.12.6"

_ERRORS: dict[int, str] = {
    400: "invalid request",
    401: "unauthorized",
    404: 'model "{model}" not found, try pulling it first',
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def created_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeOllamaUpstream(FakeUpstream):
    """Fake of an Ollama server — use ``base_url`` as Ollama's host."""

    kind = "ollama"
    default_models = ("llama3.2:latest", "qwen2.5:7b", "fake-hang", "fake-cut", "fake-500")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.root),
            web.post("/api/chat", self.chat),
            web.get("/api/tags", self.tags),
            web.get("/api/version", self.version),
        ]

    def error_response(self, status: int, model: str, message: str | None = None) -> web.Response:
        text = message or _ERRORS.get(status, "upstream error").format(model=model)
        headers = {"Retry-After": f"{self.config.retry_after:g}"} if status == 429 else None
        return json_response({"error": text}, status=status, headers=headers)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version(self, request: web.Request) -> web.Response:
        self.record(request, None, None)
        return json_response({"version": OLLAMA_VERSION})

    async def tags(self, request: web.Request) -> web.Response:
        self.record(request, None, None)
        models = []
        for name in self.config.models:
            full = name if ":" in name else name + ":latest"
            models.append(
                {
                    "name": full,
                    "model": full,
                    "modified_at": "2025-01-01T00:00:00.000000Z",
                    "size": 2_019_393_189,
                    "digest": hashlib.sha256(full.encode()).hexdigest(),
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "llama",
                        "families": ["llama"],
                        "parameter_size": "3.2B",
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        return json_response({"models": models})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.record(request, raw.decode(errors="replace"), None)
            return self.error_response(400, "", "invalid character in request body")
        model = str(body.get("model") or "") if isinstance(body, dict) else ""
        self.record(request, body, model)
        if not self.authorized(request):
            return self.error_response(401, model)
        if not isinstance(body, dict) or not model:
            return self.error_response(400, model, "model is required")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return self.error_response(400, model, "messages is required")
        mode = self.pick_mode(request, model)
        delay, chunk_delay = self.timing(mode)
        if mode in STATUS_MODES:
            if delay:
                await asyncio.sleep(delay)
            return self.error_response(int(mode), model)
        started = time.perf_counter_ns()
        if delay > 0:
            await asyncio.sleep(delay)
        plan = plan_reply(body, self.config)
        stream = body.get("stream", True) is not False
        if not stream:
            message = self.message(plan, plan.text)
            payload = orjson.dumps(
                {"model": model, "created_at": created_at(), "message": message, **self.final(plan, started)}
            )
            if mode == "cut":
                return await self.cut_json(request, payload, "application/json; charset=utf-8")
            return web.Response(body=payload, content_type="application/json")

        lines: list[dict[str, Any]] = []
        if plan.tool_calls:
            lines.append(
                {"model": model, "created_at": created_at(), "message": self.message(plan, ""), "done": False}
            )
        else:
            lines.extend(
                {
                    "model": model,
                    "created_at": created_at(),
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
                for piece in plan.pieces
            )
        lines.append(
            {
                "model": model,
                "created_at": created_at(),
                "message": {"role": "assistant", "content": ""},
                **self.final(plan, started),
            }
        )
        frames = [orjson.dumps(line) + b"\n" for line in lines]
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        return await write_frames(request, resp, frames, mode, chunk_delay, self.config, opening=0)

    @staticmethod
    def message(plan: ReplyPlan, content: str) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if plan.tool_calls:
            msg["content"] = ""
            msg["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in plan.tool_calls
            ]
        return msg

    @staticmethod
    def final(plan: ReplyPlan, started_ns: int) -> dict[str, Any]:
        total = max(time.perf_counter_ns() - started_ns, 1_000)
        eval_count = max(plan.completion_tokens, 1)
        return {
            "done": True,
            "done_reason": "length" if plan.finish_reason == "length" else "stop",
            "total_duration": total + 2_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": plan.prompt_tokens,
            "prompt_eval_duration": 500_000,
            "eval_count": eval_count,
            "eval_duration": total + 500_000,
        }


@contextlib.contextmanager
def running_fake_ollama(
    host: str = "127.0.0.1", port: int = 0, **options: Any
) -> Iterator[FakeOllamaUpstream]:
    """``with running_fake_ollama() as fake: ollama.Client(host=fake.base_url)``."""
    server = FakeOllamaUpstream(**options)
    with run_in_thread(server, host, port):
        yield server


if __name__ == "__main__":
    serve_cli(FakeOllamaUpstream, sys.argv[1:])
