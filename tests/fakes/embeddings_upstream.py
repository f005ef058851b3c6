"""Fake embedding upstreams speaking the real wire protocols: OpenAI's ``POST /v1/embeddings`` (float
or base64, ``dimensions``, token arrays) and Ollama's ``POST /api/embed``. They extend the chat fakes
(:mod:`tests.fakes.openai_upstream`, :mod:`tests.fakes.ollama_upstream`), so recording, fault modes
(``fake-429`` model names, ``fail_next``…) and the control endpoints are theirs.

Vectors are deterministic: a seeded normal vector per input (its text, or its token ids), normalised,
so the same input always gets the same vector and a test can recompute it (:func:`fake_vector`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from tests.fakes.ollama_upstream import FakeOllamaUpstream
from tests.fakes.openai_upstream import STATUS_MODES, FakeOpenAIUpstream, json_response, run_in_thread

NATIVE_DIMENSIONS = 64


def fake_vector(item: str | list[int], dimensions: int = NATIVE_DIMENSIONS) -> list[float]:
    material = item.encode() if isinstance(item, str) else orjson.dumps(item)
    seed = int.from_bytes(hashlib.sha256(material).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(NATIVE_DIMENSIONS)[:dimensions]
    out: list[float] = (vector / np.linalg.norm(vector)).tolist()
    return out


def _tokens(item: str | list[int]) -> int:
    return len(item.split()) if isinstance(item, str) else len(item)


def _valid_input(value: Any) -> list[str | list[int]] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(x, int) for x in value):
            return [value]
        if all(isinstance(x, str) for x in value) or all(isinstance(x, list) for x in value):
            return list(value)
    return None


class FakeOpenAIEmbeddings(FakeOpenAIUpstream):
    """``POST /v1/embeddings`` (and ``/embeddings``) beside the chat fake's routes."""

    default_models = (*FakeOpenAIUpstream.default_models, "text-embedding-3-small", "fake-embed")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.extra_fields: dict[str, Any] = {}
        """Top-level fields added to every answer (a vendor's extensions)."""

    def routes(self) -> list[web.RouteDef]:
        return [
            *super().routes(),
            web.post("/v1/embeddings", self.embeddings),
            web.post("/embeddings", self.embeddings),
        ]

    async def embeddings(self, request: web.Request) -> web.Response:
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
        mode = self.pick_mode(request, model)
        delay, _ = self.timing(mode)
        if delay:
            await asyncio.sleep(delay)
        if mode in STATUS_MODES:
            return self.error_response(int(mode), model)
        inputs = _valid_input(body.get("input"))
        if inputs is None:
            return self.error_response(400, model, "'input' is invalid")
        dimensions = body.get("dimensions") or NATIVE_DIMENSIONS
        if not isinstance(dimensions, int) or not 1 <= dimensions <= NATIVE_DIMENSIONS:
            return self.error_response(400, model, f"dimensions must be at most {NATIVE_DIMENSIONS}")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = fake_vector(item, dimensions)
            embedding: Any = (
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(_tokens(item) for item in inputs)
        return json_response(
            {
                "object": "list",
                "data": data,
                "model": f"{model}-2024",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                **self.extra_fields,
            }
        )


class FakeOllamaEmbeddings(FakeOllamaUpstream):
    """``POST /api/embed`` beside the Ollama fake's routes."""

    default_models = (*FakeOllamaUpstream.default_models, "nomic-embed-text")

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(), web.post("/api/embed", self.embed)]

    async def embed(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error_response(400, "", "invalid character in request body")
        model = str(body.get("model") or "") if isinstance(body, dict) else ""
        self.record(request, body, model)
        mode = self.pick_mode(request, model)
        if mode in STATUS_MODES:
            return self.error_response(int(mode), model)
        inputs = _valid_input(body.get("input"))
        if inputs is None or not all(isinstance(item, str) for item in inputs):
            return self.error_response(400, model, "invalid input type")
        return json_response(
            {
                "model": model,
                "embeddings": [fake_vector(item) for item in inputs],
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": sum(_tokens(item) for item in inputs),
            }
        )


@contextlib.contextmanager
def running_fake_openai_embeddings(**options: Any) -> Iterator[FakeOpenAIEmbeddings]:
    server = FakeOpenAIEmbeddings(**options)
    with run_in_thread(server):
        yield server


@contextlib.contextmanager
def running_fake_ollama_embeddings(**options: Any) -> Iterator[FakeOllamaEmbeddings]:
    server = FakeOllamaEmbeddings(**options)
    with run_in_thread(server):
        yield server
