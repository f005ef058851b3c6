"""Calling an embedding upstream for one request: the inputs split into batches of the model's
``batch_size``, at most ``concurrency`` batches in flight, each retried on retryable failures with
the routing config's backoff (``retry``), each in its own ``gen_ai.embeddings`` client span, all
within the request's one deadline. The vectors come back in input order.

There are no fallbacks or circuit breakers for embeddings: vectors of different models are not
interchangeable (a retrieval index holds one model's vectors), so a failed model is an error.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.config.routing import RetryConfig
from gateway.errors import GatewayError, ProviderError
from gateway.observability import metrics, tracing
from gateway.providers.embeddings import EmbeddingCall, Embeddings, EmbeddingTarget, Inputs


@dataclass(slots=True)
class CallStats:
    """What the calls of one request did (for the usage record and the overhead metric)."""

    attempts: int = 0
    provider_time_s: float = 0.0
    upstream_model: str | None = None
    extra: dict[str, Any] | None = None
    """The upstream's own extra top-level fields, when the request took one call (else not merged)."""
    billed_tokens: int = 0
    """Input tokens of the batches that succeeded: the upstream's count, else the estimate."""


def batches(inputs: Inputs, size: int) -> list[Inputs]:
    return [inputs[start : start + size] for start in range(0, len(inputs), size)]


async def embed_all(
    target: EmbeddingTarget,
    template: EmbeddingCall,
    *,
    counts: list[int],
    retry: RetryConfig,
    model_label: str,
    stats: CallStats,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> list[list[float]]:
    """Every input's vector, in order; raises the first batch's error (the others are cancelled).
    ``counts``: each input's estimated tokens (for batches whose upstream does not count)."""
    size = target.config.batch_size
    parts = batches(template.inputs, size)
    gate = asyncio.Semaphore(target.config.concurrency)

    async def one(inputs: Inputs, estimate: int) -> Embeddings:
        call = EmbeddingCall(
            model=template.model,
            inputs=inputs,
            dimensions=template.dimensions,
            encoding_format=template.encoding_format,
            user=template.user,
            extra=template.extra,
            single=template.single,
        )
        async with gate:
            result = await _with_retries(
                target, call, retry=retry, label=model_label, stats=stats, sleep=sleep
            )
        stats.billed_tokens += result.prompt_tokens if result.prompt_tokens is not None else estimate
        return result

    estimates = [sum(counts[start : start + size]) for start in range(0, len(counts), size)]
    if len(parts) == 1:
        results = [await one(parts[0], estimates[0])]
    else:
        tasks = [asyncio.ensure_future(one(part, n)) for part, n in zip(parts, estimates, strict=True)]
        try:
            results = list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    vectors: list[list[float]] = []
    for result in results:
        vectors.extend(result.vectors)
        stats.upstream_model = stats.upstream_model or result.model
    if len(results) == 1 and results[0].extra:
        stats.extra = results[0].extra
    return vectors


async def _with_retries(
    target: EmbeddingTarget,
    call: EmbeddingCall,
    *,
    retry: RetryConfig,
    label: str,
    stats: CallStats,
    sleep: Callable[[float], Awaitable[Any]],
) -> Embeddings:
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _attempt(target, call, attempt=attempt, label=label, stats=stats)
        except ProviderError as exc:
            if not exc.retryable or attempt >= retry.max_attempts:
                raise
            metrics.RETRIES.labels(target=label).inc()
            delay = min(retry.base_delay_s * 2 ** (attempt - 1), retry.max_delay_s)
            delay *= 1 + random.uniform(-retry.jitter, retry.jitter)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            await sleep(delay)


async def _attempt(
    target: EmbeddingTarget, call: EmbeddingCall, *, attempt: int, label: str, stats: CallStats
) -> Embeddings:
    provider = target.provider
    span = None
    if tracing.enabled():
        span = tracing.tracer().start_span(
            f"gen_ai.embeddings {target.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.system": provider.kind,
                "gen_ai.provider.name": provider.kind,
                "gen_ai.request.model": target.upstream_model,
                "prism.target": target.name,
                "prism.attempt": attempt,
                "prism.embeddings.inputs": len(call.inputs),
            },
        )
    call.headers = {}
    tracing.inject(call.headers, span=span)
    stats.attempts += 1
    metrics.PROVIDER_REQUESTS.labels(provider=provider.kind, model=label).inc()
    started = time.perf_counter()
    try:
        result = await provider.embed(call)
    except BaseException as exc:
        outcome = exc.code if isinstance(exc, GatewayError) and exc.code else type(exc).__name__
        metrics.PROVIDER_ATTEMPTS.labels(target=label, outcome="error").inc()
        if span is not None:
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, outcome))
            span.end()
        raise
    finally:
        stats.provider_time_s += time.perf_counter() - started
    metrics.PROVIDER_ATTEMPTS.labels(target=label, outcome="ok").inc()
    if span is not None:
        if result.model:
            span.set_attribute("gen_ai.response.model", result.model)
        if result.prompt_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", result.prompt_tokens)
        span.end()
    return result
