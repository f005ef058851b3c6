"""Embedding upstreams spoken over the lean wire client (``wire_http.py``): any OpenAI-compatible
server (``POST {base_url}/embeddings``) and Ollama (``POST {base_url}/api/embed``).

The OpenAI body is the client's own request (unknown fields included) with the upstream model id
and this batch's inputs; ``encoding_format`` is forwarded as the client sent it and the answer is
decoded whichever format it is in. Non-2xx answers, cut connections and undecodable bodies become
``ProviderError``s here, with the chat adapter's status mapping (``openai_wire.error_for_status``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from gateway.config.embeddings import EmbeddingTimeouts
from gateway.errors import ProviderBadResponse, ProviderTimeout, ProviderUnavailable
from gateway.providers.embeddings import EmbeddingCall, EmbeddingProvider, Embeddings
from gateway.providers.openai_wire import error_for_status
from gateway.providers.wire_http import Endpoint, WireHTTP, encode_headers
from gateway.schemas.embeddings import decode_vector

_OPENAI_FIELDS = frozenset({"object", "data", "model", "usage"})


class _WireEmbeddings(EmbeddingProvider):
    def __init__(
        self,
        *,
        name: str,
        endpoint: Endpoint,
        http: WireHTTP,
        is_local: bool,
        timeouts: EmbeddingTimeouts,
        supports_dimensions: bool,
        api_key: str | None = None,
    ) -> None:
        super().__init__(name=name, is_local=is_local, supports_dimensions=supports_dimensions)
        self._endpoint = endpoint
        self._http = http
        self._timeouts = timeouts
        fixed = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key is not None or self.kind == "openai":
            fixed["Authorization"] = f"Bearer {api_key or 'not-needed'}"
        self._headers = encode_headers(fixed)

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        payload = orjson.dumps(body)
        extra = encode_headers(headers) if headers else b""
        try:
            async with asyncio.timeout(self._timeouts.total_s):
                response = await self._http.post(
                    self._endpoint, self._headers + extra, payload, connect_s=self._timeouts.connect_s
                )
                raw = await response.read()
        except TimeoutError as exc:
            raise ProviderTimeout(f"{self.name}: upstream timed out", target=self.name) from exc
        except ConnectionError as exc:
            raise ProviderUnavailable(
                f"{self.name}: cannot reach upstream ({exc})", target=self.name
            ) from exc
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = None
        if response.status >= 400:
            raise error_for_status(response.status, data, target=self.name, headers=response.headers)
        if not isinstance(data, dict):
            raise ProviderBadResponse(f"{self.name}: undecodable embeddings answer", target=self.name)
        return data

    def _bad(self, what: str) -> ProviderBadResponse:
        return ProviderBadResponse(f"{self.name}: {what}", target=self.name)


class OpenAIEmbeddings(_WireEmbeddings):
    kind = "openai"
    accepts_token_arrays = True

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        single = call.single and len(call.inputs) == 1
        body: dict[str, Any] = {**call.extra, "input": call.inputs[0] if single else call.inputs}
        body["model"] = call.model
        if call.encoding_format is not None:
            body["encoding_format"] = call.encoding_format
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        if call.user is not None:
            body["user"] = call.user
        data = await self._post(body, call.headers)
        items = data.get("data")
        if not isinstance(items, list) or len(items) != len(call.inputs):
            raise self._bad(f"expected {len(call.inputs)} embeddings")
        vectors: list[list[float] | None] = [None] * len(items)
        for position, item in enumerate(items):
            index = item.get("index", position) if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(items) or vectors[index] is not None:
                raise self._bad("embeddings with missing or repeated indexes")
            vector = decode_vector(item.get("embedding"))
            if vector is None:
                raise self._bad("an embedding is neither a list of numbers nor base64")
            vectors[index] = vector
        usage = data.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        model = data.get("model")
        return Embeddings(
            vectors=[vector for vector in vectors if vector is not None],
            prompt_tokens=tokens if isinstance(tokens, int) and tokens >= 0 else None,
            model=model if isinstance(model, str) else None,
            extra={key: value for key, value in data.items() if key not in _OPENAI_FIELDS},
        )


class OllamaEmbeddings(_WireEmbeddings):
    kind = "ollama"

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        body: dict[str, Any] = {"model": call.model, "input": call.inputs, "truncate": True}
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        data = await self._post(body, call.headers)
        raw = data.get("embeddings")
        if not isinstance(raw, list) or len(raw) != len(call.inputs):
            raise self._bad(f"expected {len(call.inputs)} embeddings")
        vectors = [decode_vector(item) for item in raw]
        if any(vector is None for vector in vectors):
            raise self._bad("an embedding is not a list of numbers")
        tokens = data.get("prompt_eval_count")
        model = data.get("model")
        return Embeddings(
            vectors=[vector for vector in vectors if vector is not None],
            prompt_tokens=tokens if isinstance(tokens, int) and tokens >= 0 else None,
            model=model if isinstance(model, str) else None,
        )
