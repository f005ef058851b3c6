"""Shadow pairs: the primary's and the shadow's answers to one request, compared once both finish.

The shadow node plans one ``ShadowPair`` per shadow model (with the job that will call it) and
hangs it on the request's trace; nothing runs yet. When the primary's books close
(``CompletionService._finish``, for streams at the end of the relay) the primary side is filled in
and the jobs are handed to the ``ShadowDispatcher``, so a shadow never competes with its own
primary for the event loop. The shadow job fills the shadow side; the side that finishes second
(normally the shadow) computes the agreement (ROUGE-L F1, ``agreement.py``), updates the metrics,
hands the row to the batched writer (``shadow_results``) and offers the pair to the judge, if one
is configured. Shadow calls are never billed to the user: no usage record, only this row.
``ShadowBudget`` enforces the per-model spend cap (per replica).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.background import BackgroundWorker
from gateway.db.repositories.experiments import insert_shadow_judgements, insert_shadow_results
from gateway.experiments.agreement import rouge_l_f1
from gateway.observability import metrics

if TYPE_CHECKING:
    from gateway.intent import IntentResult

log = structlog.get_logger("prism.shadow")

ShadowJob = Callable[[], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class ShadowSide:
    model: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    text: str | None = None


class ShadowBudget:
    """Spend per shadow model since start (this replica); a cap stops further shadowing."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def allows(self, model: str, cap: float | None) -> bool:
        return cap is None or self.spent.get(model, 0.0) < cap

    def add(self, model: str, cost: float) -> None:
        self.spent[model] = self.spent.get(model, 0.0) + cost


class ShadowPair:
    def __init__(
        self,
        *,
        pair_id: str,
        request_id: str,
        alias: str,
        shadow_model: str,
        streamed: bool,
        on_done: Callable[[ShadowPair], None],
        label: str | None = None,
    ) -> None:
        self.pair_id = pair_id
        self.request_id = request_id
        self.alias = alias
        self.shadow_model = shadow_model
        self.label = label or shadow_model
        """The shadow model's metric label (a configured name or ``other``)."""
        self.streamed = streamed
        self.created_at = datetime.now(UTC)
        self.primary: ShadowSide | None = None
        self.shadow: ShadowSide | None = None
        self.agreement: float | None = None
        self.job: ShadowJob | None = None
        """The shadow call, planned by the shadow node and started once the primary has finished."""
        self.prompt: list[dict[str, Any]] | None = None
        """The (guarded) messages both models answered; kept for the judge."""
        self.judge: Any = None
        """A ``ShadowJudgeConfig`` for this pair (an application's shadow version); else the alias's."""
        self.intent: IntentResult | None = None
        """The request's classification (label, language, complexity, confidence), recorded with the
        pair so ``make calibrate-routing`` can fit per-intent, per-language thresholds (issue #21)."""
        self._on_done = on_done

    def complete_primary(self, side: ShadowSide) -> None:
        if self.primary is None:
            self.primary = side
            self._maybe_done()

    def complete_shadow(self, side: ShadowSide) -> None:
        if self.shadow is None:
            self.shadow = side
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self.primary is None or self.shadow is None:
            return
        p, s = self.primary, self.shadow
        if p.error is None and s.error is None and p.text is not None and s.text is not None:
            self.agreement = rouge_l_f1(p.text, s.text)
        self._on_done(self)

    def row(self) -> dict[str, Any]:
        p, s = self.primary or ShadowSide(), self.shadow or ShadowSide()
        return {
            "pair_id": self.pair_id,
            "request_id": self.request_id,
            "created_at": self.created_at,
            "alias": self.alias,
            "streamed": self.streamed,
            "primary_model": p.model or "",
            "shadow_model": self.shadow_model,
            "primary_latency_ms": p.latency_ms,
            "shadow_latency_ms": s.latency_ms,
            "primary_ttft_ms": p.ttft_ms,
            "shadow_ttft_ms": s.ttft_ms,
            "primary_prompt_tokens": p.prompt_tokens,
            "primary_completion_tokens": p.completion_tokens,
            "shadow_prompt_tokens": s.prompt_tokens,
            "shadow_completion_tokens": s.completion_tokens,
            "primary_cost_usd": p.cost_usd,
            "shadow_cost_usd": s.cost_usd,
            "primary_error": p.error,
            "shadow_error": s.error,
            "agreement": self.agreement,
            "intent": self.intent.label if self.intent is not None else None,
            "language": self.intent.language if self.intent is not None else None,
            "complexity": self.intent.complexity if self.intent is not None else None,
            "confidence": self.intent.confidence if self.intent is not None else None,
        }


class ShadowResultWriter:
    """Batched, non-blocking inserts into ``shadow_results`` and ``shadow_judgements`` (bounded
    buffers; overflow is logged)."""

    def __init__(
        self, engine: AsyncEngine, *, batch_size: int = 200, interval_s: float = 0.5, max_buffer: int = 20_000
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_buffer = max_buffer
        self._buffer: deque[dict[str, Any]] = deque()
        self._judgements: deque[dict[str, Any]] = deque()
        self._worker = BackgroundWorker("shadow_results", self.flush, interval_s=interval_s, drain=self.flush)
        self.dropped = 0

    def add(self, row: dict[str, Any]) -> None:
        self._append(self._buffer, row)

    def add_judgement(self, row: dict[str, Any]) -> None:
        self._append(self._judgements, row)

    def _append(self, buffer: deque[dict[str, Any]], row: dict[str, Any]) -> None:
        if len(buffer) >= self.max_buffer:
            self.dropped += 1
            metrics.SHADOW_DROPPED.labels(model=str(row.get("shadow_model")), reason="writer_full").inc()
            log.warning("shadow_result_dropped", pair_id=row["pair_id"])
            return
        buffer.append(row)

    async def start(self) -> None:
        self._worker.start()

    async def flush(self) -> None:
        for buffer, insert in (
            (self._buffer, insert_shadow_results),
            (self._judgements, insert_shadow_judgements),
        ):
            while buffer:
                batch = [buffer.popleft() for _ in range(min(self.batch_size, len(buffer)))]
                try:
                    async with self.engine.begin() as conn:
                        await insert(conn, batch)
                except BaseException:
                    buffer.extendleft(reversed(batch))
                    log.warning("shadow_results_flush_failed", depth=len(buffer), exc_info=True)
                    raise

    async def aclose(self) -> None:
        """Let a flush under way finish (bounded), then write what the buffers still hold."""
        await self._worker.aclose()


class PairSink(Protocol):
    """Where finished pairs go besides the writer: the judge (``gateway/experiments/judge.py``)."""

    def consider(self, pair: ShadowPair) -> None: ...


class ShadowResults:
    """What the shadow node and the completion service share: pairs, budget, writer and judge."""

    def __init__(self, writer: ShadowResultWriter | None = None) -> None:
        self.writer = writer
        self.judge: PairSink | None = None
        self.budget = ShadowBudget()
        # Pair ids: a random prefix per process and a counter (no entropy syscall per request).
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    def new_pair(
        self, *, request_id: str, alias: str, shadow_model: str, streamed: bool, label: str | None = None
    ) -> ShadowPair:
        return ShadowPair(
            pair_id=f"{self._prefix}{next(self._counter):016x}",
            request_id=request_id,
            alias=alias,
            shadow_model=shadow_model,
            label=label,
            streamed=streamed,
            on_done=self._done,
        )

    def dropped(self, pair: ShadowPair, reason: str) -> None:
        """A planned pair that will never run (``queue_full``, ``spend_cap``): it still leaves a row
        (``shadow_error = "dropped:<reason>"``, no agreement) so reports count the gap."""
        if pair.shadow is not None:
            return
        pair.shadow = ShadowSide(model=pair.shadow_model, error=f"dropped:{reason}")
        log.info(
            "shadow_pair_dropped",
            pair_id=pair.pair_id,
            request_id=pair.request_id,
            alias=pair.alias,
            shadow_model=pair.shadow_model,
            reason=reason,
        )
        if self.writer is not None:
            self.writer.add(pair.row())

    def drop_planned(
        self, *, request_id: str, alias: str, shadow_model: str, streamed: bool, label: str, reason: str
    ) -> None:
        """A shadow call refused before it was planned (spend cap, queue full at planning time)."""
        pair = self.new_pair(
            request_id=request_id, alias=alias, shadow_model=shadow_model, streamed=streamed, label=label
        )
        self.dropped(pair, reason)

    def _done(self, pair: ShadowPair) -> None:
        shadow = pair.shadow or ShadowSide()
        if pair.agreement is not None:
            metrics.SHADOW_AGREEMENT.labels(model=pair.label).observe(pair.agreement)
        log.info(
            "shadow_pair",
            pair_id=pair.pair_id,
            request_id=pair.request_id,
            alias=pair.alias,
            shadow_model=pair.shadow_model,
            agreement=pair.agreement,
            shadow_error=shadow.error,
            shadow_latency_ms=shadow.latency_ms,
            shadow_ttft_ms=shadow.ttft_ms,
        )
        if self.writer is not None:
            self.writer.add(pair.row())
        if self.judge is not None:
            self.judge.consider(pair)


def monotonic_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
