"""The encoder stage off the event loop, in micro-batches (issue #21: ``model: "auto"`` must not stall it).

``classify_off_loop`` answers on the loop when the classifier's fast first stage is sure (~0.1–0.3 ms);
otherwise the prompt joins a queue served by one daemon thread per process, which embeds every queued
prompt in one encoder pass (``IntentClassifier.classify_many``) and resolves the waiting requests' futures.

Batching is natural: while the thread computes a batch, new prompts queue up and form the next one. Only
when the previous batch had more than one prompt (there is concurrency) does the thread wait up to
``window_s`` (1 ms) for more before starting — at c=1 a prompt never waits for company.

Observability: ``prism_intent_batch_size`` and ``prism_intent_queue_wait_seconds`` histograms,
``prism_intent_stage_total{stage}``; the intent node puts ``intent.stage`` / ``intent.batch_size`` /
``intent.queue_wait_ms`` on its span and in the log context.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.intent.classifier import IntentClassifier, IntentResult
from gateway.intent.features import Signals, analyse
from gateway.observability import metrics

MAX_BATCH: Final = 32
WINDOW_S: Final = 0.001


@dataclass(frozen=True, slots=True)
class Classified:
    result: IntentResult
    batch_size: int = 0  # 0: answered on the loop by the fast stage
    queue_wait_s: float = 0.0


@dataclass(slots=True)
class _Job:
    text: str
    context: tuple[str, ...]
    signals: Signals | None
    future: asyncio.Future[Classified]
    loop: asyncio.AbstractEventLoop
    queued: float


def _resolve(future: asyncio.Future[Classified], value: Classified | BaseException) -> None:
    if future.done():  # the request was cancelled meanwhile
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


class IntentBatcher:
    """One worker thread running the encoder stage for queued prompts, several at a time."""

    def __init__(
        self, classifier: IntentClassifier, *, max_batch: int = MAX_BATCH, window_s: float = WINDOW_S
    ) -> None:
        self._classifier = classifier
        self._max_batch = max_batch
        self._window_s = window_s
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._last_batch = 1

    async def classify(
        self, text: str, context: Sequence[str] = (), *, signals: Signals | None = None
    ) -> Classified:
        loop = asyncio.get_running_loop()
        job = _Job(text, tuple(context), signals, loop.create_future(), loop, time.perf_counter())
        with self._cond:
            self._queue.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="prism-intent", daemon=True)
                self._thread.start()
            self._cond.notify()
        return await job.future

    def _take(self) -> list[_Job]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            if self._last_batch > 1 and len(self._queue) < self._max_batch and self._window_s > 0:
                deadline = time.perf_counter() + self._window_s
                while len(self._queue) < self._max_batch:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            n = min(len(self._queue), self._max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            jobs = self._take()
            started = time.perf_counter()
            self._last_batch = len(jobs)
            results: list[IntentResult] | BaseException
            try:
                results = self._classifier.classify_many(
                    [(j.text, j.context) for j in jobs], [j.signals for j in jobs]
                )
            except Exception as exc:  # delivered to every waiting request, never kills the thread
                results = exc
            for i, job in enumerate(jobs):  # answer first, then the metrics
                wait = started - job.queued
                value: Classified | BaseException = (
                    results if isinstance(results, BaseException) else Classified(results[i], len(jobs), wait)
                )
                try:
                    job.loop.call_soon_threadsafe(_resolve, job.future, value)
                except RuntimeError:  # that event loop is closed (shutdown, a test's loop)
                    pass
            metrics.INTENT_BATCH_SIZE.observe(len(jobs))
            for job in jobs:
                metrics.INTENT_QUEUE_WAIT.observe(started - job.queued)


_BATCHERS: weakref.WeakKeyDictionary[IntentClassifier, IntentBatcher] = weakref.WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


def batcher_for(classifier: IntentClassifier) -> IntentBatcher:
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(classifier)
        if batcher is None:
            batcher = _BATCHERS[classifier] = IntentBatcher(classifier)
        return batcher


async def classify_off_loop(classifier: Any, text: str, *, context: tuple[str, ...] = ()) -> Classified:
    """``classifier.classify`` without stalling the event loop: the fast stage inline, the encoder stage in
    the batching thread. ``classifier`` is an ``IntentClassifier`` or a wrapper holding one in
    ``.classifier`` (``SmartRouting``); anything else (a test double) is called inline."""
    inner = getattr(classifier, "classifier", classifier)
    if not isinstance(inner, IntentClassifier):
        return Classified(classifier.classify(text, context=context))
    signals = analyse(text)  # computed once for both stages
    fast = inner.classify_fast(text, context=context, signals=signals)
    if fast is not None:
        metrics.INTENT_STAGE.labels(stage="fast").inc()
        return Classified(fast)
    metrics.INTENT_STAGE.labels(stage="encoder").inc()
    return await batcher_for(inner).classify(text, context, signals=signals)
