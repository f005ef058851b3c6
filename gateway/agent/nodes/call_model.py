"""One attempt against the current target; the graph loops back here for retries and fallbacks.

Streams are opened here and held until their first delta arrives, so a
failure before the first token can still be retried or fall back before the
client sees a 200. Every attempt shares the request's one deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from langgraph.runtime import Runtime

from gateway.agent.state import Attempt, PipelineContext, PipelineState, StreamHandle
from gateway.config.routing import RetryConfig
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    PermissionDenied,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.observability import metrics, tracing
from gateway.providers.base import Delta, ModelCall, Timeouts, aclose_quietly

EXHAUSTED = 1_000_000
"""``attempt`` value meaning: do not retry this target (circuit open, no time left, fallback preferred)."""

MIN_ATTEMPT_S = 0.005
"""Less time than this left on the deadline: do not start another attempt."""


def deadline_error(ctx: PipelineContext) -> DeadlineExceeded:
    """504 ``deadline_exceeded`` naming every attempt made (target and outcome)."""
    trace = ctx.trace
    tried = ", ".join(
        f"{a.target}: {a.error or a.outcome}" + (f" after {a.duration_s:.2f}s" if a.duration_s else "")
        for a in trace.attempts
    )
    spent = time.perf_counter() - trace.started_at
    return DeadlineExceeded(
        f"The request's deadline was exceeded after {spent:.2f}s; tried: {tried or 'nothing'}"
    )


def backoff_delay(
    retry: RetryConfig, attempt: int, *, retry_after: float | None, rng: random.Random
) -> float:
    """Exponential backoff with jitter, never shorter than the upstream's Retry-After."""
    delay = min(retry.base_delay_s * 2 ** (attempt - 1), retry.max_delay_s)
    delay *= 1 + retry.jitter * (2 * rng.random() - 1)
    return float(max(delay, retry_after or 0.0))


_rng = random.Random()


async def call_model(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    trace = ctx.trace
    route = state["route"]
    index = state.get("target_index", 0)
    attempt = state.get("attempt", 0)
    name = route.targets[index]
    if not ctx.principal.may_use(name):  # the router filters the chain; this guards any other path
        return {
            "error": PermissionDenied(
                "this principal's allowed_models policy does not allow the routed model",
                param="model",
                code="model_not_allowed",
            ),
            "attempt": EXHAUSTED,
        }
    target = ctx.snapshot.targets[name]
    config = ctx.snapshot.config
    circuits = ctx.snapshot.router.circuits
    label = ctx.snapshot.model_label(name)
    has_fallback = index + 1 < len(route.targets)
    loop = asyncio.get_running_loop()

    if trace.deadline - loop.time() < MIN_ATTEMPT_S:
        return {"error": deadline_error(ctx), "attempt": EXHAUSTED}
    if attempt > 0:
        previous = state.get("error")
        retry_after = previous.retry_after if isinstance(previous, ProviderError) else None
        delay = backoff_delay(config.retry, attempt, retry_after=retry_after, rng=_rng)
        if delay >= trace.deadline - loop.time() - MIN_ATTEMPT_S:
            if has_fallback:
                return {"attempt": EXHAUSTED}
            return {"error": deadline_error(ctx), "attempt": EXHAUSTED}
        if has_fallback and isinstance(previous, ProviderRateLimited):
            return {"attempt": EXHAUSTED}
        if not circuits.retry_budget.try_retry(name, config.retry):
            metrics.PROVIDER_ATTEMPTS.labels(target=label, outcome="retry_budget").inc()
            return {"attempt": EXHAUSTED}
        metrics.RETRIES.labels(target=label).inc()
        await ctx.sleep(delay)
    else:
        circuits.retry_budget.note_request(name, config.retry)

    if not circuits.allow(name):
        trace.attempts.append(Attempt(target=name, outcome="circuit_open", duration_s=0.0))
        metrics.PROVIDER_ATTEMPTS.labels(target=label, outcome="circuit_open").inc()
        chain = route.targets
        if has_fallback or any(a.outcome != "circuit_open" for a in trace.attempts):
            return {"error": ProviderUnavailable(f"{name}: circuit open", target=name), "attempt": EXHAUSTED}
        # Every target of the chain is open: rather than failing at once, try the one whose
        # last failure is oldest (it is the likeliest to have recovered).
        forced = circuits.least_recently_failed(list(chain)) or name
        name, target, label = forced, ctx.snapshot.targets[forced], ctx.snapshot.model_label(forced)
        has_fallback = False

    remaining = trace.deadline - loop.time()
    deadline_bound = False
    timeouts = target.config.timeouts
    call = ModelCall(
        model=target.upstream_model,
        messages=state["messages"],
        params=state["request"].params,
        timeouts=Timeouts(
            connect_s=timeouts.connect_s,
            first_token_s=timeouts.first_token_s,
            total_s=timeouts.total_s,
            idle_s=timeouts.idle_s,
        ),
    )
    span = tracing.start_attempt(
        model=name,
        provider=target.provider.kind,
        upstream_model=target.upstream_model,
        target=name,
        attempt=attempt + 1,
        params=call.params,
    )
    tracing.inject(call.headers, span=span)
    if span.is_recording():  # shadow spans link to the attempt that answered (the last one)
        ctx.trace.primary_span = span.get_span_context()
    metrics.PROVIDER_REQUESTS.labels(provider=target.provider.kind, model=label).inc()
    started = time.perf_counter()
    try:
        if state["request"].stream:
            deadline_bound = remaining < timeouts.first_token_s
            handle = await _open_stream(target.provider, call, name, min(timeouts.first_token_s, remaining))
            if span.is_recording():
                handle.rest = _traced_rest(handle.first, handle.rest, span, handle.model)
            result: dict[str, Any] = {"stream": handle, "error": None}
        else:
            deadline_bound = remaining < timeouts.total_s
            async with asyncio.timeout(min(timeouts.total_s, remaining)):
                completion = await target.provider.complete(call)
            tracing.end_attempt(
                span,
                response_model=completion.model,
                input_tokens=completion.usage.prompt_tokens,
                output_tokens=completion.usage.completion_tokens,
            )
            result = {"completion": completion, "usage": completion.usage, "error": None}
    except TimeoutError:
        error: GatewayError = ProviderTimeout(f"{name}: no answer within the time limit", target=name)
        tracing.end_attempt(span, error_type=error.code or type(error).__name__)
        failed = _failed(ctx, state, name, label, error, started, attempt)
        if deadline_bound:  # the request's deadline, not the attempt's limit, cut it short
            return {**failed, "error": deadline_error(ctx), "attempt": EXHAUSTED}
        return failed
    except ProviderError as exc:
        tracing.end_attempt(span, error_type=exc.code or type(exc).__name__)
        return _failed(ctx, state, name, label, exc, started, attempt)
    except GatewayError as exc:
        tracing.end_attempt(span, error_type=exc.code or type(exc).__name__)
        circuits.release_probe(name)
        trace.attempts.append(
            Attempt(target=name, outcome="rejected", duration_s=time.perf_counter() - started, error=exc.code)
        )
        return {"error": exc, "attempt": EXHAUSTED}
    except asyncio.CancelledError:
        tracing.end_attempt(span, error_type="cancelled")
        circuits.release_probe(name)
        raise
    elapsed = time.perf_counter() - started
    trace.provider_time_s += elapsed
    trace.attempts.append(Attempt(target=name, outcome="ok", duration_s=elapsed))
    metrics.PROVIDER_ATTEMPTS.labels(target=label, outcome="ok").inc()
    circuits.record_success(name)
    return result


def _failed(
    ctx: PipelineContext,
    state: PipelineState,
    name: str,
    label: str,
    error: GatewayError,
    started: float,
    attempt: int,
) -> dict[str, Any]:
    elapsed = time.perf_counter() - started
    ctx.trace.provider_time_s += elapsed
    ctx.trace.attempts.append(Attempt(target=name, outcome="error", duration_s=elapsed, error=error.code))
    metrics.PROVIDER_ATTEMPTS.labels(target=label, outcome="error").inc()
    if error.retryable:
        ctx.snapshot.router.circuits.record_failure(name)
    else:
        ctx.snapshot.router.circuits.release_probe(name)
    return {"error": error, "attempt": attempt + 1, "stream": None, "completion": None}


async def _open_stream(provider: Any, call: ModelCall, name: str, first_token_s: float) -> StreamHandle:
    iterator = provider.stream(call).__aiter__()
    opened = time.perf_counter()
    try:
        async with asyncio.timeout(first_token_s):
            first = await iterator.__anext__()
    except StopAsyncIteration as exc:
        raise ProviderUnavailable(f"{name}: empty stream", target=name) from exc
    except BaseException:
        await aclose_quietly(iterator)
        raise
    return StreamHandle(
        target=name,
        model=call.model,
        first=first,
        rest=iterator,
        opened_at=opened,
        first_at=time.perf_counter(),
    )


async def _traced_rest(
    first: Delta, rest: AsyncIterator[Delta], span: Any, model: str
) -> AsyncIterator[Delta]:
    """The stream after its first delta; ends the attempt's span with the usage when the stream ends."""
    usage = first.usage
    error: str | None = None
    try:
        async for delta in rest:
            if delta.usage is not None:
                usage = delta.usage
            yield delta
    except GatewayError as exc:
        error = exc.code or type(exc).__name__
        raise
    except (asyncio.CancelledError, TimeoutError):
        error = "cancelled"
        raise
    finally:
        await aclose_quietly(rest)
        tracing.end_attempt(
            span,
            response_model=model,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            error_type=error,
        )
