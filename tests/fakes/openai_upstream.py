"""A fake OpenAI upstream speaking the real wire protocol (aiohttp, no FastAPI).

It answers ``POST /v1/chat/completions`` (JSON and SSE) and ``GET /v1/models`` with the
exact shapes of the OpenAI API, can answer with tool calls, records every request it
received and injects faults on demand.  The shared machinery (fault selection,
recording, control endpoints, running in a background thread, the CLI) lives here too
and is reused by :mod:`tests.fakes.ollama_upstream`.

Fault modes (``FAULT_MODES``), chosen per request in this order:

1. ``fail_next`` > 0 on the instance: the request fails with ``fail_status``;
2. the requested model name ``fake-<mode>`` (e.g. ``fake-429``, ``fake-cut``; a
   ``provider/`` prefix is ignored);
3. the request header ``X-Fake-Mode: <mode>``;
4. ``error_rate`` (seeded random) → ``error_status``;
5. the instance ``mode`` (``POST /_control {"mode": ...}`` or ``configure(mode=...)``).

``429``/``500``/``503``/``404``/``401`` answer that status with the provider's error JSON,
``hang`` sleeps ``hang_seconds`` before the first byte, ``slow`` waits ``slow_latency``
before the first byte and ``slow_chunk_delay`` between chunks, ``cut`` sends
``cut_after`` content chunks (or half the JSON body) and closes the connection, ``stall``
sends ``cut_after`` chunks and then sleeps ``hang_seconds`` mid-stream.

CLI (for the benchmark)::

    python -m tests.fakes.openai_upstream --port 9100 --latency 0 --chunks 20 \
        --chunk-delay 0 --error-rate 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import orjson
from aiohttp import web

STATUS_MODES: tuple[str, ...] = ("429", "500", "503", "404", "401", "400")
FAULT_MODES: tuple[str, ...] = ("ok", *STATUS_MODES, "hang", "cut", "stall", "slow")

_LOREM_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat"
)
LOREM = _LOREM_TEXT.split()

_PLACE_NAMES = {"location", "city", "place", "where", "region", "town"}
_PLACE_RE = re.compile(r"\b(?:in|at|for)\s+([A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)")
_WORD_RE = re.compile(r"\S+\s*")


# ---------------------------------------------------------------------------------------------
# configuration, recording


@dataclass
class FakeConfig:
    """Behaviour of one fake server; every field can be changed at run time."""

    mode: str = "ok"
    latency: float = 0.0  # seconds before the first byte
    chunk_delay: float = 0.0  # seconds between streamed chunks
    chunks: int = 0  # 0: echo the last user message; N > 0: a fixed lorem of N tokens
    reply: str | None = None  # fixed answer text (overrides echo / lorem)
    json_reply: str | None = None  # the answer, verbatim, to a JSON-mode request (else {"echo": text})
    max_echo_chars: int = 400
    hang_seconds: float = 30.0
    cut_after: int = 2
    slow_latency: float = 1.0
    slow_chunk_delay: float = 0.05
    error_rate: float = 0.0
    error_status: int = 500
    fail_next: int = 0
    fail_status: int = 500
    retry_after: float = 1.0
    seed: int = 0
    tool_trigger: str = "weather"
    api_key: str | None = None  # when set, requests must carry it (401 otherwise)
    models: list[str] = field(default_factory=list)
    record: bool = True
    max_records: int = 10_000

    def update(self, **changes: Any) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fake option(s): {sorted(unknown)}")
        if "mode" in changes and str(changes["mode"]) not in FAULT_MODES:
            raise ValueError(f"unknown mode {changes['mode']!r}; one of {FAULT_MODES}")
        for key, value in changes.items():
            setattr(self, key, str(value) if key == "mode" else value)


@dataclass
class RecordedRequest:
    """One request as the fake received it. ``headers`` keys are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None
    received_at: float

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


@dataclass
class ReplyPlan:
    """What the fake will answer, independent of the wire format."""

    pieces: list[str]  # content tokens; "".join(pieces) is the full text
    tool_calls: list[ToolCall]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


# ---------------------------------------------------------------------------------------------
# reply planning (shared by the OpenAI and Ollama fakes)


def message_text(content: Any) -> str:
    """Text of an OpenAI/Ollama message ``content`` (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in (None, "text", "input_text"):
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(p for p in parts if p)
    return str(content)


def count_tokens(text: str) -> int:
    """Cheap, deterministic token estimate: one per word, at least 1 for non-empty text."""
    return len(text.split())


def split_tokens(text: str) -> list[str]:
    """Split into word tokens keeping trailing whitespace, so ``"".join`` gives ``text``."""
    pieces = _WORD_RE.findall(text)
    if not pieces:
        return [text] if text else []
    lead = len(text) - len(text.lstrip())
    if lead:
        pieces[0] = text[:lead] + pieces[0]
    return pieces


def _guess_place(text: str) -> str:
    m = _PLACE_RE.search(text)
    return m.group(1) if m else "Seoul"


def fake_arguments(parameters: Any, text: str) -> dict[str, Any]:
    """Arguments satisfying a JSON-schema ``parameters`` object, derived from ``text``."""
    if not isinstance(parameters, dict):
        return {}
    props = parameters.get("properties") or {}
    required = parameters.get("required")
    names = list(required) if isinstance(required, list) and required else list(props)
    out: dict[str, Any] = {}
    for name in names:
        spec = props.get(name) if isinstance(props, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        typ = spec.get("type")
        if isinstance(typ, list):
            typ = next((t for t in typ if t != "null"), "string")
        if spec.get("enum"):
            out[name] = spec["enum"][0]
        elif typ in ("number", "integer"):
            out[name] = 1
        elif typ == "boolean":
            out[name] = True
        elif typ == "array":
            out[name] = []
        elif typ == "object":
            out[name] = {}
        elif name.lower() in _PLACE_NAMES:
            out[name] = _guess_place(text)
        else:
            out[name] = text[:40] if name.lower() in {"query", "q", "text", "prompt"} else "test"
    return out


def _tool_function(tool: Any) -> dict[str, Any] | None:
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict) and fn.get("name"):
            return fn
    return None


def plan_reply(body: dict[str, Any], cfg: FakeConfig) -> ReplyPlan:
    messages = body.get("messages") or []
    prompt_tokens = sum(
        count_tokens(message_text(m.get("content"))) + 3 for m in messages if isinstance(m, dict)
    )
    prompt_tokens = max(prompt_tokens, 1)
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
    user_text = message_text(last_user.get("content"))

    # tool calls
    tools = [fn for fn in (_tool_function(t) for t in (body.get("tools") or [])) if fn]
    choice = body.get("tool_choice")
    call_fn: dict[str, Any] | None = None
    if tools and last.get("role") == "user" and choice != "none":
        if isinstance(choice, dict):
            wanted = (choice.get("function") or {}).get("name")
            call_fn = next((t for t in tools if t["name"] == wanted), tools[0])
        elif choice == "required" or (cfg.tool_trigger and cfg.tool_trigger.lower() in user_text.lower()):
            trig = cfg.tool_trigger.lower()
            call_fn = next(
                (t for t in tools if trig and trig in (t["name"] + str(t.get("description", ""))).lower()),
                tools[0],
            )
    if call_fn is not None:
        call = ToolCall(
            id="call_" + uuid.uuid4().hex[:24],
            name=str(call_fn["name"]),
            arguments=fake_arguments(call_fn.get("parameters"), user_text),
        )
        return ReplyPlan([], [call], "tool_calls", prompt_tokens, count_tokens(call.arguments_json) + 5)

    # text
    if cfg.reply is not None:
        text = cfg.reply
    elif cfg.chunks > 0:
        text = " ".join(LOREM[i % len(LOREM)] for i in range(cfg.chunks))
    elif last.get("role") == "tool":
        text = "tool result: " + message_text(last.get("content"))[: cfg.max_echo_chars]
    else:
        text = "echo: " + user_text[: cfg.max_echo_chars]
    rf = body.get("response_format") or {}
    fmt = body.get("format")
    if (
        (isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"))
        or fmt == "json"
        or (isinstance(fmt, dict))
    ):
        text = cfg.json_reply if cfg.json_reply is not None else orjson.dumps({"echo": text}).decode()
    pieces = split_tokens(text)
    finish = "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    options = body.get("options")
    if limit is None and isinstance(options, dict):
        limit = options.get("num_predict")
    if isinstance(limit, int) and 0 < limit < len(pieces):
        pieces = pieces[:limit]
        finish = "length"
    for stop in _stops(body):
        joined = "".join(pieces)
        idx = joined.find(stop)
        if idx >= 0:
            pieces = split_tokens(joined[:idx])
            finish = "stop"
    return ReplyPlan(pieces, [], finish, prompt_tokens, max(len(pieces), 1) if pieces else 0)


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    options = body.get("options")
    if stop is None and isinstance(options, dict):
        stop = options.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


# ---------------------------------------------------------------------------------------------
# the base server


def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


class FakeUpstream:
    """Base of the fakes: control endpoints, recording, counters, fault selection, lifecycle.

    In-process use::

        async with FakeOpenAIUpstream(chunks=5) as fake:   # or: base_url = await fake.start()
            ... fake.base_url, fake.requests, fake.total_requests, fake.per_model ...
    """

    kind: ClassVar[str] = "fake"
    default_models: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        self.config = FakeConfig()
        if not options.get("models"):
            options["models"] = list(self.default_models)
        self.config.update(**options)
        self._initial = dataclasses.replace(self.config, models=list(self.config.models))
        self.requests: deque[RecordedRequest] = deque(maxlen=self.config.max_records)
        self.total_requests = 0
        self.per_model: Counter[str] = Counter()
        self.per_path: Counter[str] = Counter()
        self.per_outcome: Counter[str] = Counter()
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.port = 0
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.add_routes(
            [
                web.post("/_control", self._h_control),
                web.get("/_control", self._h_control),
                web.get("/_stats", self._h_stats),
                web.post("/_reset", self._h_reset),
                web.get("/_requests", self._h_requests),
                *self.routes(),
            ]
        )

    # -- subclass hooks -----------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return []

    def error_response(self, status: int, model: str) -> web.Response:
        return json_response({"error": f"fake error {status}"}, status=status)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving on ``host:port`` (0 = a free port); returns the base URL."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await runner.setup()
        sock = _free_socket(host, port)
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- control --------------------------------------------------------------------------------
    def configure(self, **changes: Any) -> None:
        """Change behaviour at run time, e.g. ``configure(mode="429")``, ``configure(fail_next=2)``."""
        with self._lock:
            self.config.update(**changes)
            if "seed" in changes:
                self._rng.seed(self.config.seed)
            if "max_records" in changes:
                self.requests = deque(self.requests, maxlen=self.config.max_records)

    def reset(self) -> None:
        """Forget recorded requests and counters and restore the options given at construction."""
        with self._lock:
            self.config = dataclasses.replace(self._initial, models=list(self._initial.models))
            self.requests = deque(maxlen=self.config.max_records)
            self.total_requests = 0
            self.per_model.clear()
            self.per_path.clear()
            self.per_outcome.clear()
            self._rng.seed(self.config.seed)

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "total_requests": self.total_requests,
            "per_model": dict(self.per_model),
            "per_path": dict(self.per_path),
            "per_outcome": dict(self.per_outcome),
            "recorded": len(self.requests),
            "config": dataclasses.asdict(self.config),
        }

    @property
    def last_request(self) -> RecordedRequest | None:
        return self.requests[-1] if self.requests else None

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.path == path]

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in list(self.requests)]

    async def _h_control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = orjson.loads(await request.read() or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("body must be a JSON object")
                if changes.pop("reset", False):
                    self.reset()
                self.configure(**changes)
            except (ValueError, TypeError) as exc:
                return json_response({"error": str(exc)}, status=400)
        return json_response(dataclasses.asdict(self.config))

    async def _h_stats(self, request: web.Request) -> web.Response:
        return json_response(self.stats())

    async def _h_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"ok": True})

    async def _h_requests(self, request: web.Request) -> web.Response:
        return json_response([r.to_json() for r in list(self.requests)])

    # -- per request ----------------------------------------------------------------------------
    def record(self, request: web.Request, body: Any, model: str | None) -> None:
        with self._lock:
            self.total_requests += 1
            self.per_path[request.path] += 1
            if model is not None:
                self.per_model[model] += 1
            if self.config.record:
                self.requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.path,
                        headers={k.lower(): v for k, v in request.headers.items()},
                        body=body,
                        model=model,
                        received_at=time.time(),
                    )
                )

    def pick_mode(self, request: web.Request, model: str) -> str:
        cfg = self.config
        with self._lock:
            if cfg.fail_next > 0:
                cfg.fail_next -= 1
                mode = str(cfg.fail_status)
            else:
                mode = ""
        if not mode:
            name = model.rsplit("/", 1)[-1]
            if name.startswith("fake-") and name[5:] in FAULT_MODES:
                mode = name[5:]
        if not mode:
            hdr = request.headers.get("x-fake-mode", "")
            if hdr in FAULT_MODES:
                mode = hdr
        if not mode and cfg.error_rate > 0:
            with self._lock:
                hit = self._rng.random() < cfg.error_rate
            if hit:
                mode = str(cfg.error_status)
        mode = mode or cfg.mode
        self.per_outcome[mode] += 1
        return mode

    def authorized(self, request: web.Request) -> bool:
        key = self.config.api_key
        return key is None or request.headers.get("authorization", "") == f"Bearer {key}"

    def timing(self, mode: str) -> tuple[float, float]:
        """(delay before the first byte, delay between chunks) for this mode."""
        cfg = self.config
        delay, chunk_delay = cfg.latency, cfg.chunk_delay
        if mode == "slow":
            delay, chunk_delay = max(delay, cfg.slow_latency), max(chunk_delay, cfg.slow_chunk_delay)
        elif mode == "hang":
            delay = max(delay, cfg.hang_seconds)
        return delay, chunk_delay

    @staticmethod
    async def cut_json(request: web.Request, payload: bytes, content_type: str) -> web.StreamResponse:
        """Announce the full body length, send half of it, then drop the connection."""
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        resp.content_length = len(payload)
        await resp.prepare(request)
        await resp.write(payload[: max(1, len(payload) // 2)])
        drop_connection(request)
        return resp


def drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def request_id() -> str:
    return "req_" + uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# OpenAI


def _fingerprint(model: str) -> str:
    return "fp_" + hashlib.sha1(model.encode()).hexdigest()[:10]


_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: (
        "Rate limit reached for {model}: Limit 3, Used 3, Requested 1. Please try again in 1s.",
        "rate_limit_error",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        "service_unavailable",
    ),
}


def openai_error(status: int, model: str = "", message: str | None = None) -> dict[str, Any]:
    msg, typ, code = _ERRORS.get(status, ("Upstream error.", "server_error", None))
    return {
        "error": {"message": message or msg.format(model=model), "type": typ, "param": None, "code": code}
    }


class FakeOpenAIUpstream(FakeUpstream):
    """Fake of ``https://api.openai.com`` — use ``base_url + "/v1"`` as the OpenAI base URL."""

    kind = "openai"
    default_models = ("fake-gpt", "gpt-4o-mini", "gpt-4o", *(f"fake-{m}" for m in FAULT_MODES[1:]))

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/chat/completions", self.chat_completions),
            web.get("/v1/models", self.list_models),
            web.get("/models", self.list_models),
        ]

    def error_response(self, status: int, model: str, message: str | None = None) -> web.Response:
        headers = {"x-request-id": request_id()}
        if status == 429:
            headers["retry-after"] = f"{self.config.retry_after:g}"
            headers["retry-after-ms"] = str(int(self.config.retry_after * 1000))
            headers["x-ratelimit-limit-requests"] = "3"
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = f"{self.config.retry_after:g}s"
        return json_response(openai_error(status, model, message), status=status, headers=headers)

    async def list_models(self, request: web.Request) -> web.Response:
        self.record(request, None, None)
        if not self.authorized(request):
            return self.error_response(401, "")
        return json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
                    for m in self.config.models
                ],
            }
        )

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.record(request, raw.decode(errors="replace"), None)
            return self.error_response(400, "", "We could not parse the JSON body of your request.")
        model = str(body.get("model") or "") if isinstance(body, dict) else ""
        self.record(request, body, model)
        if not self.authorized(request):
            return self.error_response(401, model)
        if not isinstance(body, dict) or not model:
            return self.error_response(400, model, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_response(400, model, "'messages' must be a non-empty array")
        mode = self.pick_mode(request, model)
        delay, chunk_delay = self.timing(mode)
        if mode in STATUS_MODES:
            if delay:
                await asyncio.sleep(delay)
            return self.error_response(int(mode), model)
        if delay > 0:
            await asyncio.sleep(delay)
        plan = self.plan(body)
        ident = "chatcmpl-" + uuid.uuid4().hex[:29]
        created = int(time.time())
        if body.get("stream"):
            return await self._stream(request, body, plan, mode, chunk_delay, ident, created, model)
        payload = orjson.dumps(self.completion(plan, ident, created, model))
        if mode == "cut":
            return await self.cut_json(request, payload, "application/json")
        return web.Response(
            body=payload, content_type="application/json", headers={"x-request-id": request_id()}
        )

    def plan(self, body: dict[str, Any]) -> ReplyPlan:
        """What to answer (a subclass plays another model: ``tests/fakes/tool_model.py``)."""
        return plan_reply(body, self.config)

    @staticmethod
    def usage(plan: ReplyPlan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def completion(self, plan: ReplyPlan, ident: str, created: int, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if plan.tool_calls else plan.text,
            "refusal": None,
            "annotations": [],
        }
        if plan.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                for c in plan.tool_calls
            ]
        return {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
            ],
            "usage": self.usage(plan),
            "service_tier": "default",
            "system_fingerprint": _fingerprint(model),
        }

    def chunks(
        self, plan: ReplyPlan, ident: str, created: int, model: str, include_usage: bool
    ) -> list[dict[str, Any]]:
        fp = _fingerprint(model)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            c: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fp,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                c["usage"] = None
            return c

        out: list[dict[str, Any]] = []
        if plan.tool_calls:
            for i, call in enumerate(plan.tool_calls):
                head = {
                    "index": i,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                if i == 0:
                    out.append(
                        chunk({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None})
                    )
                else:
                    out.append(chunk({"tool_calls": [head]}))
                args = call.arguments_json
                for j in range(0, len(args), 8):
                    out.append(
                        chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 8]}}]})
                    )
        else:
            out.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            out.extend(chunk({"content": piece}) for piece in plan.pieces)
        out.append(chunk({}, plan.finish_reason))
        if include_usage:
            out.append(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "service_tier": "default",
                    "system_fingerprint": fp,
                    "choices": [],
                    "usage": self.usage(plan),
                }
            )
        return out

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        plan: ReplyPlan,
        mode: str,
        chunk_delay: float,
        ident: str,
        created: int,
        model: str,
    ) -> web.StreamResponse:
        opts = body.get("stream_options")
        include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
        frames = [
            b"data: " + orjson.dumps(c) + b"\n\n"
            for c in self.chunks(plan, ident, created, model, include_usage)
        ]
        frames.append(b"data: [DONE]\n\n")
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": request_id(),
            },
        )
        await resp.prepare(request)
        return await write_frames(request, resp, frames, mode, chunk_delay, self.config)


async def write_frames(
    request: web.Request,
    resp: web.StreamResponse,
    frames: Sequence[bytes],
    mode: str,
    chunk_delay: float,
    cfg: FakeConfig,
    opening: int = 1,
) -> web.StreamResponse:
    """Write stream frames honouring ``cut``/``stall`` and the per-chunk delay.

    The first ``opening`` frames (OpenAI's role chunk) are not counted: ``cut`` drops the
    connection and ``stall`` sleeps ``hang_seconds`` after ``opening + cut_after`` frames.
    """
    limit = opening + max(cfg.cut_after, 0) if mode in ("cut", "stall") else len(frames)
    if chunk_delay <= 0 and mode not in ("cut", "stall"):
        await resp.write(b"".join(frames))
        await resp.write_eof()
        return resp
    for i, frame in enumerate(frames):
        if i == limit:
            if mode == "cut":
                drop_connection(request)
                return resp
            await asyncio.sleep(cfg.hang_seconds)
        if i and chunk_delay > 0:
            await asyncio.sleep(chunk_delay)
        await resp.write(frame)
    await resp.write_eof()
    return resp


# ---------------------------------------------------------------------------------------------
# running in a background thread, CLI


@contextlib.contextmanager
def run_in_thread(server: FakeUpstream, host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeUpstream]:
    """Serve ``server`` from a daemon thread with its own event loop (for sync and async tests)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"fake-{server.kind}", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(host, port), loop).result(10)
        yield server
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@contextlib.contextmanager
def running_fake_openai(
    host: str = "127.0.0.1", port: int = 0, **options: Any
) -> Iterator[FakeOpenAIUpstream]:
    """``with running_fake_openai(chunks=5) as fake: OpenAI(base_url=fake.openai_base_url, ...)``."""
    server = FakeOpenAIUpstream(**options)
    with run_in_thread(server, host, port):
        yield server


def build_arg_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Fake LLM upstream for tests and benchmarks")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--mode", default="ok", choices=FAULT_MODES)
    p.add_argument("--latency", type=float, default=0.0, help="seconds before the first byte")
    p.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    p.add_argument("--chunks", type=int, default=0, help="answer with N lorem tokens (0: echo)")
    p.add_argument("--error-rate", type=float, default=0.0, help="probability of an error answer")
    p.add_argument("--error-status", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hang-seconds", type=float, default=30.0)
    p.add_argument("--cut-after", type=int, default=2)
    p.add_argument("--api-key", default=None)
    p.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="keep requests in memory (off by default for benchmarks)",
    )
    return p


def serve_cli(cls: type[FakeUpstream], argv: Sequence[str] | None = None) -> None:
    args = build_arg_parser(f"python -m tests.fakes.{cls.kind}_upstream").parse_args(argv)
    server = cls(
        mode=args.mode,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        chunks=args.chunks,
        error_rate=args.error_rate,
        error_status=args.error_status,
        seed=args.seed,
        hang_seconds=args.hang_seconds,
        cut_after=args.cut_after,
        api_key=args.api_key,
        record=args.record,
        max_records=1000,
    )

    async def main() -> None:
        url = await server.start(args.host, args.port)
        print(f"READY {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(main())


if __name__ == "__main__":
    serve_cli(FakeOpenAIUpstream, sys.argv[1:])
