"""The shadow judge: a configured model scores a sample of finished shadow pairs, asynchronously.

When a pair is complete (both answers, no error) and its alias has a ``shadow_judge``, the pair is
judged if its stable bucket (``blake2b("judge", pair id)``) falls under ``sample_rate``, the judge
is not already running ``max_concurrent`` calls (else dropped, ``reason=busy``) and its spend so
far on this replica is under ``spend_cap_usd`` (else dropped, ``reason=spend_cap``). The judge
model is any configured model, called through its own provider — no retries, no fallbacks, under
``deadline_s`` — with the (guarded) request and both answers, in an order fixed per pair by a
second stable bucket so that position bias averages out. It rates each answer 1–10 as JSON
``{"a": n, "b": n}``; an unparseable answer (``parse_error``), a timeout or a provider error is
counted and stored, never raised. Nothing here runs on a request's path: pairs finish in the
shadow job, after the primary answered.

Observability: ``prism_shadow_judge_calls{model=judge,outcome}``, ``prism_shadow_judge_dropped
{model=shadow,reason}``, ``prism_shadow_judge_score{model=shadow,side}``,
``prism_shadow_judge_duration_seconds{model=judge}``, ``prism_shadow_judge_verdicts{model=shadow,
winner}`` (the win rate on dashboards), a ``shadow_judged`` log line per call and a
``shadow.judge`` span (its own trace) when tracing is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace

from gateway.errors import GatewayError
from gateway.experiments.shadow import ShadowPair
from gateway.experiments.sticky import bucket
from gateway.observability import metrics, tracing
from gateway.providers.base import ModelCall
from gateway.providers.tokens import message_text

if TYPE_CHECKING:
    from gateway.config.routing import RoutingConfig
    from gateway.providers.registry import Target

log = structlog.get_logger("prism.shadow")

Position = Literal["a", "b"]

JUDGE_SYSTEM = (
    "You are an impartial judge. You compare two answers, A and B, to the same request. Rate each "
    "answer from 1 (useless or wrong) to 10 (correct, complete and helpful). Judge the content, not "
    "the length or the style, and ignore the order in which the answers are shown. Reply with JSON "
    'only, in this form: {"a": <1-10>, "b": <1-10>}'
)
_OBJECT = re.compile(r"\{[^{}]*\}")
_LOOSE = {
    "a": re.compile(r"(?i)\b(?:answer\s+)?a\s*[:=]\s*(10|[1-9])\b"),
    "b": re.compile(r"(?i)\b(?:answer\s+)?b\s*[:=]\s*(10|[1-9])\b"),
}


class JudgeParseError(ValueError):
    """The judge's answer holds no pair of scores in 1..10."""


def shadow_position(pair_id: str) -> Position:
    """Where the shadow's answer is shown (A or B), fixed per pair, half of the pairs each."""
    return "a" if bucket("judge-order", pair_id) < 0.5 else "b"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " […]"


def judge_messages(
    *, request: Sequence[Mapping[str, Any]], answer_a: str, answer_b: str, max_chars: int
) -> list[dict[str, Any]]:
    """The judge's prompt: the request (its last user message) and the two answers, each clipped."""
    users = [message_text(m) for m in request if m.get("role") == "user"]
    question = _clip(users[-1] if users else "", max_chars)
    body = (
        f"Request:\n<<<\n{question}\n>>>\n\n"
        f"Answer A:\n<<<\n{_clip(answer_a, max_chars)}\n>>>\n\n"
        f"Answer B:\n<<<\n{_clip(answer_b, max_chars)}\n>>>\n\n"
        'Which answer is better? Rate both, JSON only: {"a": <1-10>, "b": <1-10>}'
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": body}]


def _score(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() and 1 <= number <= 10 else None


def parse_scores(text: str) -> tuple[int, int]:
    """``(score of A, score of B)`` from the judge's answer: a JSON object ``{"a": n, "b": n}``
    (anywhere in the text, keys in any case), else ``A: n`` / ``B: n``; scores are integers 1..10."""
    for match in _OBJECT.finditer(text):
        try:
            data = orjson.loads(match.group(0))
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        keys = {str(key).strip().lower(): value for key, value in data.items()}
        a, b = _score(keys.get("a")), _score(keys.get("b"))
        if a is not None and b is not None:
            return a, b
    found = [_LOOSE[side].search(text) for side in ("a", "b")]
    if found[0] is not None and found[1] is not None:
        return int(found[0].group(1)), int(found[1].group(1))
    raise JudgeParseError(f"no scores in the judge's answer: {text[:120]!r}")


def winner(primary: int, shadow: int) -> Literal["shadow", "primary", "tie"]:
    return "shadow" if shadow > primary else "primary" if primary > shadow else "tie"


class JudgementSink(Protocol):
    def add_judgement(self, row: dict[str, Any]) -> None: ...


class JudgeSnapshot(Protocol):
    """What the judge reads of the live config: ``gateway.runtime.RuntimeSnapshot`` (named by shape,
    so ``experiments`` does not import the runtime that imports it)."""

    @property
    def config(self) -> RoutingConfig: ...
    @property
    def targets(self) -> Mapping[str, Target]: ...
    @property
    def model_label(self) -> metrics.LabelSet: ...


class ShadowJudge:
    """Scores sampled shadow pairs in background tasks, within each alias's judge budget."""

    def __init__(self, snapshot: Callable[[], JudgeSnapshot], *, writer: JudgementSink | None = None) -> None:
        self._snapshot = snapshot
        self.writer = writer
        self.spent: dict[str, float] = {}
        """Judge spend per alias on this replica since start (USD)."""
        self._running: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def consider(self, pair: ShadowPair) -> None:
        """Called when a pair is complete; starts a judge call if the pair is sampled and in budget."""
        if self._closed:
            return
        p, s = pair.primary, pair.shadow
        if p is None or s is None or p.error or s.error or p.text is None or s.text is None:
            return
        snapshot = self._snapshot()
        alias = snapshot.config.aliases.get(pair.alias)
        config = pair.judge or (alias.shadow_judge if alias is not None else None)
        if config is None or bucket("judge", pair.pair_id) >= config.sample_rate:
            return
        target = snapshot.targets.get(config.model)
        reason = (
            "no_model"
            if target is None
            else "spend_cap"
            if config.spend_cap_usd is not None and self.spent.get(pair.alias, 0.0) >= config.spend_cap_usd
            else "busy"
            if self._running.get(pair.alias, 0) >= config.max_concurrent
            else None
        )
        if reason is not None or target is None:
            metrics.SHADOW_JUDGE_DROPPED.labels(model=pair.label, reason=reason or "no_model").inc()
            return
        position = shadow_position(pair.pair_id)
        answer_a, answer_b = (s.text, p.text) if position == "a" else (p.text, s.text)
        call = ModelCall(
            model=target.upstream_model,
            messages=judge_messages(
                request=pair.prompt or [], answer_a=answer_a, answer_b=answer_b, max_chars=config.max_chars
            ),
            params={"temperature": 0, "max_tokens": 32},
        )
        self._running[pair.alias] = self._running.get(pair.alias, 0) + 1
        task = asyncio.get_running_loop().create_task(
            self._judge(pair, target=target, call=call, position=position, deadline_s=config.deadline_s)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _judge(
        self, pair: ShadowPair, *, target: Any, call: ModelCall, position: Position, deadline_s: float
    ) -> None:
        judge_label = self._snapshot().model_label(target.name)
        started = time.perf_counter()
        scores: tuple[int, int] | None = None
        cost = 0.0
        error: str | None = None
        try:
            with _judge_span(judge_label, pair) as span:
                try:
                    async with asyncio.timeout(deadline_s):
                        completion = await target.provider.complete(call)
                    cost = target.config.cost(
                        completion.usage.prompt_tokens, completion.usage.completion_tokens
                    )
                    text = completion.choices[0].content or "" if completion.choices else ""
                    a, b = parse_scores(text)
                    scores = (a, b) if position == "b" else (b, a)  # (primary, shadow)
                except TimeoutError:
                    error = "timeout"
                except JudgeParseError:
                    error = "parse_error"
                except GatewayError as exc:
                    error = exc.code
                if span.is_recording():
                    span.set_attribute("prism.judge.outcome", error or "ok")
                    if scores is not None:
                        span.set_attribute("prism.judge.primary_score", scores[0])
                        span.set_attribute("prism.judge.shadow_score", scores[1])
        finally:
            self._running[pair.alias] -= 1
            self.spent[pair.alias] = self.spent.get(pair.alias, 0.0) + cost
        self._record(
            pair,
            judge=target.name,
            judge_label=judge_label,
            scores=scores,
            error=error,
            position=position,
            cost=cost,
            latency_s=time.perf_counter() - started,
        )

    def _record(
        self,
        pair: ShadowPair,
        *,
        judge: str,
        judge_label: str,
        scores: tuple[int, int] | None,
        error: str | None,
        position: Position,
        cost: float,
        latency_s: float,
    ) -> None:
        metrics.SHADOW_JUDGE_CALLS.labels(model=judge_label, outcome=error or "ok").inc()
        metrics.SHADOW_JUDGE_DURATION.labels(model=judge_label).observe(latency_s)
        verdict = winner(*scores) if scores is not None else None
        if verdict is not None:
            metrics.SHADOW_JUDGE_VERDICTS.labels(model=pair.label, winner=verdict).inc()
        if scores is not None:
            metrics.SHADOW_JUDGE_SCORE.labels(model=pair.label, side="primary").observe(scores[0])
            metrics.SHADOW_JUDGE_SCORE.labels(model=pair.label, side="shadow").observe(scores[1])
        row = {
            "pair_id": pair.pair_id,
            "created_at": datetime.now(UTC),
            "alias": pair.alias,
            "shadow_model": pair.shadow_model,
            "judge_model": judge,
            "primary_score": scores[0] if scores else None,
            "shadow_score": scores[1] if scores else None,
            "winner": verdict,
            "shadow_position": position,
            "error": error,
            "latency_ms": round(latency_s * 1000, 3),
            "cost_usd": cost,
        }
        log.info(
            "shadow_judged",
            pair_id=pair.pair_id,
            alias=pair.alias,
            shadow_model=pair.shadow_model,
            judge_model=judge,
            outcome=error or "ok",
            primary_score=row["primary_score"],
            shadow_score=row["shadow_score"],
            winner=verdict,
            latency_ms=row["latency_ms"],
            cost_usd=cost,
        )
        if self.writer is not None:
            self.writer.add_judgement(row)

    async def aclose(self, *, timeout_s: float = 5.0) -> None:
        self._closed = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)


@contextlib.contextmanager
def _judge_span(judge: str, pair: ShadowPair) -> Iterator[trace.Span]:
    """A root span for one judge call (its own trace: it runs long after the request)."""
    if not tracing.enabled():
        yield trace.INVALID_SPAN
        return
    with tracing.tracer().start_as_current_span(
        f"shadow.judge {judge}",
        context=otel_context.Context(),
        kind=trace.SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": judge,
            "prism.shadow.pair_id": pair.pair_id,
            "prism.shadow.alias": pair.alias,
            "prism.shadow.model": pair.shadow_model,
        },
    ) as span:
        yield span
