"""The embeddings use case (``POST /v1/embeddings``, docs/embeddings.md), callable over HTTP or
in-process (:meth:`EmbeddingService.embed_texts`, for retrieval).

One request: resolve the model (404 / 403 as for chat) → check ``dimensions`` → decode token arrays
for providers that take text → PII policy of the destination (mask or refuse before an external
provider; prompt-injection scoring does not apply to texts that are only embedded) → reserve the
input tokens' quota → exact-match cache → batched upstream calls → one usage record, metrics and the
access log's fields, and the quota settled, however the request ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.cache import CachedEntry, QuotaLimiter, ResponseCache, cache_key
from gateway.config.routing import RoutingConfig
from gateway.errors import (
    ContextTooLong,
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    UnsupportedParameter,
)
from gateway.observability import metrics
from gateway.providers.embeddings import EmbeddingCall, EmbeddingTarget, build_embedding_targets
from gateway.providers.http import UpstreamClients
from gateway.providers.tokens import count_text, encoding
from gateway.runtime import ConfigHolder, RuntimeSnapshot
from gateway.schemas.embeddings import EmbeddingRequest, embeddings_body, texts_request
from gateway.security.principal import Principal
from gateway.services.accounting import UsageSink
from gateway.services.admission import CachePolicy, cache_tenant
from gateway.services.embedding_books import EmbeddingBooks
from gateway.services.embedding_calls import embed_all
from gateway.services.embedding_guard import guard_inputs, policy_acts
from gateway.usage.record import UsageRecord, UsageStatus

MAX_INPUTS = 100_000
"""Parsing bound; each model's own ``max_inputs`` (default 2048) is the real limit."""
MAX_CHARS = 2_000_000
"""Characters of one in-process request (``GATEWAY_MAX_TOTAL_CHARS``' default bounds HTTP ones)."""
MAX_CACHED_FLOATS = 262_144
"""Answers with more numbers than this (≈ 5 MB of JSON) are not cached."""


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    prompt_tokens: int
    model: str
    """The configured name that answered."""
    response_model: str
    """The ``model`` of the answer: the upstream's own name when it gave one."""
    headers: dict[str, str] = field(default_factory=dict)
    encoding_format: str | None = None
    """The client's: how :meth:`body` writes the vectors."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The upstream's own other top-level fields (a request answered by one upstream call)."""

    def body(self) -> dict[str, Any]:
        """OpenAI's ``list`` of ``embedding`` objects."""
        return embeddings_body(
            self.vectors,
            model=self.response_model,
            prompt_tokens=self.prompt_tokens,
            encoding_format=self.encoding_format,
            extra=self.extra,
        )


@dataclass(frozen=True, slots=True)
class _Models:
    config: RoutingConfig
    targets: Mapping[str, EmbeddingTarget]
    label: metrics.LabelSet


class EmbeddingService:
    def __init__(
        self,
        *,
        holder: ConfigHolder,
        clients: UpstreamClients,
        env: Mapping[str, str],
        usage: UsageSink | None = None,
        quotas: QuotaLimiter | None = None,
        cache: ResponseCache | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.holder = holder
        self._clients = clients
        self._env = env
        self.usage = usage
        self.quotas = quotas
        self.cache = cache
        self._sleep = sleep
        self._models: _Models | None = None

    def models(self, snapshot: RuntimeSnapshot | None = None) -> _Models:
        """The embedding targets of a config snapshot, built once per loaded config."""
        config = (snapshot or self.holder.current).config
        models = self._models
        if models is None or models.config is not config:
            targets = build_embedding_targets(config.embeddings, clients=self._clients, env=self._env)
            models = self._models = _Models(config, targets, metrics.LabelSet(targets))
        return models

    def public_names(self, principal: Principal) -> list[str]:
        return [name for name in self.models().targets if principal.may_use(name)]

    def label(self, name: str | None) -> str:
        """The metric label of a model name: a configured embedding model's, else ``other``."""
        return self.models().label(name)

    async def embed_texts(
        self, texts: list[str], *, model: str, principal: Principal, request_id: str
    ) -> EmbeddingResult:
        """In-process embeddings (retrieval, pipelines): the same checks, policy, quota, cache and usage
        record as ``/v1/embeddings``; raises the same ``GatewayError``s."""
        return await self.embed(
            lambda: texts_request(model, texts, max_chars=MAX_CHARS, max_inputs=MAX_INPUTS),
            principal=principal,
            request_id=request_id,
        )

    async def embed(
        self,
        request: EmbeddingRequest | Callable[[], EmbeddingRequest],
        *,
        principal: Principal,
        request_id: str,
        client_request_id: str | None = None,
        cache_policy: CachePolicy | None = None,
        timeout_s: float | None = None,
    ) -> EmbeddingResult:
        """``request``: parsed, or a parser (its 400 is then recorded like any other failure)."""
        snapshot = self.holder.current
        record = UsageRecord(
            request_id=request_id,
            client_request_id=client_request_id,
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            tier=principal.tier,
            route="embeddings",
        )
        models = self.models(snapshot)
        books = EmbeddingBooks(
            record=record,
            principal=principal,
            snapshot=snapshot,
            usage=self.usage,
            quotas=self.quotas,
            label=models.label,
        )
        try:
            parsed = request() if callable(request) else request
            record.model_requested = parsed.model
            deadline = timeout_s if timeout_s is not None else snapshot.config.retry.deadline_s
            async with asyncio.timeout(min(deadline, snapshot.config.retry.max_deadline_s)):
                result = await self._run(parsed, books, cache_policy or CachePolicy())
            result.encoding_format = parsed.encoding_format
        except TimeoutError as exc:
            error = DeadlineExceeded("The request's deadline passed before the embeddings were ready")
            await books.close(error=error)
            raise error from exc
        except GatewayError as exc:
            if books.target is not None:
                exc.headers.setdefault("x-prism-model", books.target.name)
            await books.close(error=exc)
            raise
        except asyncio.CancelledError:
            await books.close(status=UsageStatus.INCOMPLETE, http_status=499)
            raise
        except BaseException:
            await books.close(status=UsageStatus.ERROR, http_status=500)
            raise
        await books.close()
        return result

    def _resolve(self, snapshot: RuntimeSnapshot, name: str, principal: Principal) -> EmbeddingTarget:
        target = self.models(snapshot).targets.get(name)
        if target is None:
            kind = "a chat model" if name in snapshot.targets or name in snapshot.config.aliases else None
            detail = f"; {name!r} is {kind}, see /v1/models" if kind else ""
            raise ModelNotFound(
                f"The embedding model {name!r} does not exist{detail}", param="model", code="model_not_found"
            )
        if not principal.may_use(name):
            raise PermissionDenied(
                f"this key may not use model {name!r}", param="model", code="model_not_allowed"
            )
        return target

    async def _run(
        self, request: EmbeddingRequest, books: EmbeddingBooks, policy: CachePolicy
    ) -> EmbeddingResult:
        snapshot, principal, record = books.snapshot, books.principal, books.record
        books.inputs = request.count
        target = books.target = self._resolve(snapshot, request.model, principal)
        config, provider = target.config, target.provider
        record.provider = provider.kind
        if request.count > config.max_inputs:
            raise InvalidRequest(
                f"input holds {request.count} items; {target.name} takes at most {config.max_inputs}",
                param="input",
                code="too_many_inputs",
            )
        forward_dimensions = _dimensions(request, target)
        texts, arrays = request.texts, request.token_arrays
        if texts is None and (not provider.accepts_token_arrays or policy_acts(snapshot, target)):
            texts = _decode_tokens(arrays or [])
        counts = [count_text(text) for text in texts] if texts is not None else [len(a) for a in arrays or []]
        _check_lengths(counts, config.max_input_tokens, target.name)
        if texts is not None:
            masked = guard_inputs(snapshot, target, texts, books=books)
            if masked is not texts or not provider.accepts_token_arrays:
                arrays = None
            texts = masked
        tokens = sum(counts)
        record.prompt_tokens = tokens
        await books.reserve(tokens, worst_cost=config.cost(tokens))
        key = self._cache_key(request, target, principal, policy, snapshot)
        if key is not None and policy.read and self.cache is not None:
            entry = await self.cache.get(key)
            if entry is not None and _valid_entry(entry.response):
                books.served(target, cache_hit=True)
                result = _result(entry.response, target)
                books.count(result.prompt_tokens, cost=0.0)  # the tokens the answer counted, free
                result.headers.update(books.headers(cache="hit"))
                return result
        books.served(target, cache_hit=False)
        template = EmbeddingCall(
            model=target.upstream_model,
            inputs=arrays if arrays is not None else texts or [],
            dimensions=forward_dimensions,
            encoding_format=request.encoding_format,
            user=request.user,
            extra=request.extra,
            single=request.single,
        )
        vectors = await embed_all(
            target,
            template,
            counts=counts,
            retry=snapshot.config.retry,
            model_label=books.label,
            stats=books.stats,
            sleep=self._sleep,
        )
        stats = books.stats
        tokens = stats.billed_tokens  # the upstream's own count where it gave one
        books.count(tokens, cost=config.cost(tokens))
        result = EmbeddingResult(
            vectors=vectors,
            prompt_tokens=tokens,
            model=target.name,
            response_model=stats.upstream_model or target.name,
            extra=stats.extra or {},
        )
        if (
            key is not None
            and policy.write
            and self.cache is not None
            and sum(len(vector) for vector in vectors) <= MAX_CACHED_FLOATS
        ):
            entry = CachedEntry(
                response={
                    "vectors": vectors,
                    "prompt_tokens": tokens,
                    "model": result.response_model,
                    "extra": result.extra,
                },
                model_served=target.name,
                provider=provider.kind,
            )
            await self.cache.set_behind(key, entry, config.cache_ttl_s)
        result.headers.update(books.headers(cache="miss" if key is not None and policy.read else "bypass"))
        return result

    def _cache_key(
        self,
        request: EmbeddingRequest,
        target: EmbeddingTarget,
        principal: Principal,
        policy: CachePolicy,
        snapshot: RuntimeSnapshot,
    ) -> str | None:
        if self.cache is None or not snapshot.config.cache.enabled or target.config.cache_ttl_s <= 0:
            return None
        if not policy.read and not policy.write:
            return None
        return cache_key(
            request.cache_material(),
            route=f"embeddings:{target.name}",
            tenant=cache_tenant(principal),
            shared=target.config.shared_cache,
        )


def _dimensions(request: EmbeddingRequest, target: EmbeddingTarget) -> int | None:
    """The ``dimensions`` to forward; a 400 when the model cannot give the size asked for."""
    wanted, provider = request.dimensions, target.provider
    if wanted is None:
        return None
    if provider.supports_dimensions:
        return wanted
    native = provider.native_dimensions
    if native == wanted:
        return None
    size = f" (its vectors have {native} dimensions)" if native else ""
    raise UnsupportedParameter(
        f"The model {target.name!r} does not support dimensions{size}", param="dimensions"
    )


def _decode_tokens(arrays: list[list[int]]) -> list[str]:
    enc = encoding()
    try:
        return [enc.decode(array) for array in arrays]
    except (KeyError, ValueError, OverflowError) as exc:
        raise InvalidRequest(
            "input holds token ids outside cl100k_base", param="input", code="invalid_value"
        ) from exc


def _check_lengths(counts: list[int], limit: int, name: str) -> None:
    for index, count in enumerate(counts):
        if count > limit:
            raise ContextTooLong(
                f"input[{index}] has {count} tokens; {name} takes at most {limit} per input",
                param=f"input[{index}]" if len(counts) > 1 else "input",
            )


def _valid_entry(response: Mapping[str, Any]) -> bool:
    return isinstance(response.get("vectors"), list) and isinstance(response.get("prompt_tokens"), int)


def _result(response: Mapping[str, Any], target: EmbeddingTarget) -> EmbeddingResult:
    return EmbeddingResult(
        vectors=response["vectors"],
        prompt_tokens=response["prompt_tokens"],
        model=target.name,
        response_model=str(response.get("model") or target.name),
        extra=dict(extra) if isinstance(extra := response.get("extra"), dict) else {},
    )
