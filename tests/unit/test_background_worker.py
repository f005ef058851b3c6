"""The background-worker shape: rounds, wake, backoff, drain on close, metrics. No clocks: every wait
is on an event or a condition with a generous bound."""

from __future__ import annotations

import asyncio

import pytest

from gateway.background import WORKER_NAMES, BackgroundWorker, Backoff
from gateway.observability.metrics import WORKER_FAILURES, WORKER_LAST_SUCCESS, WORKER_RUNS
from tests.support.waiting import eventually

BOUND_S = 10.0


def _value(metric: object, name: str) -> float:
    return float(metric.labels(worker=name)._value.get())  # type: ignore[attr-defined]


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0)
    assert [backoff.delay(n) for n in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff.delay(10_000) == 1.0


async def test_rounds_run_when_woken_and_count() -> None:
    rounds: list[int] = []
    worker = BackgroundWorker("quota_settle", lambda: _append(rounds), interval_s=None)
    before = _value(WORKER_RUNS, "quota_settle")
    worker.start()
    worker.wake()
    await eventually(lambda: len(rounds) == 1, "a wake runs one round")
    worker.wake()
    await eventually(lambda: len(rounds) == 2, "each wake runs a round")
    await worker.aclose()
    assert _value(WORKER_RUNS, "quota_settle") - before == 2
    assert _value(WORKER_LAST_SUCCESS, "quota_settle") > 0
    assert not worker.running


async def _append(rounds: list[int]) -> None:
    rounds.append(len(rounds))


async def test_failures_back_off_and_a_success_resets() -> None:
    outcomes = iter([RuntimeError("down"), False, True, True])
    seen: list[object] = []
    done = asyncio.Event()

    async def step() -> bool:
        outcome = next(outcomes)
        seen.append(outcome)
        if len(seen) == 4:
            done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return bool(outcome)

    worker = BackgroundWorker(
        "shadow_results", step, interval_s=0.001, backoff=Backoff(base_s=0.001, max_s=0.01)
    )
    failures_before = _value(WORKER_FAILURES, "shadow_results")
    delays: list[float | None] = []
    original = worker._delay

    def recording_delay() -> float | None:
        delays.append(original())
        return delays[-1]

    worker._delay = recording_delay  # type: ignore[method-assign]
    worker.start()
    async with asyncio.timeout(BOUND_S):
        await done.wait()
    await worker.aclose()
    assert _value(WORKER_FAILURES, "shadow_results") - failures_before == 2  # a raise and a False
    assert worker.failures == 0
    assert delays[:4] == [0.001, 0.001, 0.002, 0.001]  # interval, backoff(1), backoff(2), interval


async def test_first_runs_before_the_loop_and_close_drains_once() -> None:
    calls: list[str] = []

    async def first() -> None:
        calls.append("first")

    async def step() -> None:
        calls.append("step")

    async def drain() -> None:
        calls.append("drain")

    worker = BackgroundWorker("usage_recorder", step, interval_s=3600, first=first, drain=drain)
    worker.start()
    await eventually(lambda: calls == ["first"], "first runs at start, without waiting for the interval")
    await worker.aclose()
    assert calls == ["first", "drain"]  # a stop is not a round


async def test_stop_lets_the_round_under_way_finish() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    async def step() -> None:
        entered.set()
        await release.wait()
        finished.append(True)

    worker = BackgroundWorker("api_key_last_used", step, interval_s=None, stop_timeout_s=BOUND_S)
    worker.start()
    worker.wake()
    await asyncio.wait_for(entered.wait(), BOUND_S)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, BOUND_S)
    assert finished == [True]


async def test_stop_cancels_a_round_that_overruns() -> None:
    entered = asyncio.Event()
    cancelled: list[bool] = []

    async def step() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    worker = BackgroundWorker("config_listen", step, interval_s=None, stop_timeout_s=0)
    worker.start()
    worker.wake()
    await asyncio.wait_for(entered.wait(), BOUND_S)
    await asyncio.wait_for(worker.stop(), BOUND_S)
    assert cancelled == [True]


async def test_a_failing_drain_is_logged_not_raised() -> None:
    async def drain() -> None:
        raise OSError("disk gone")

    worker = BackgroundWorker("circuit_sync", _noop, interval_s=None, drain=drain)
    worker.start()
    await worker.aclose()


async def _noop() -> None:
    return None


@pytest.mark.parametrize("name", WORKER_NAMES)
def test_every_worker_label_is_created_at_zero(name: str) -> None:
    BackgroundWorker(name, _noop, interval_s=None)  # type: ignore[arg-type]
    assert _value(WORKER_RUNS, name) >= 0


async def test_close_after_the_loop_was_cancelled_from_outside() -> None:
    """Loop shutdown may cancel the task first; closing afterwards still drains, and raises nothing."""
    drained: list[bool] = []

    async def drain() -> None:
        drained.append(True)

    worker = BackgroundWorker("shadow_results", _noop, interval_s=3600, drain=drain)
    worker.start()
    await asyncio.sleep(0)
    assert worker._task is not None
    worker._task.cancel()
    await eventually(lambda: worker._task is not None and worker._task.done(), "the task is cancelled")
    await worker.aclose()
    assert drained == [True]
