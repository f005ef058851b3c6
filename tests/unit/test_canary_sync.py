"""Canary decisions shared between workers (``gateway/experiments/canary_sync.py``): two workers'
``Experiments`` on one in-memory store (each ``_round`` is what the 1 s background poll does), the
conflict rules, and the file store's compare-and-set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.config.routing import parse_config
from gateway.errors import Conflict, ServiceUnavailable
from gateway.experiments.canary import CanaryDecision, CanaryState
from gateway.experiments.canary_sync import CanaryStore, CanarySync, FileCanaryStore, LocalCanaryStore
from gateway.experiments.runtime import Experiments

CONFIG = """
models:
  a: {{provider: mock}}
  b: {{provider: mock}}
experiments:
  exp:
    alias: chat
    control: a
    arms: {{a: {{model: a}}, b: {{model: b}}}}
    canary:
      arm: b
      min_samples: 3
      window: 10
      steps:
        - {{percent: {first}, after_requests: 3}}
        - {{percent: 50, after_requests: 1000}}
        - {{percent: 100}}
"""


def _worker(store: CanaryStore, name: str, *, first: int = 10) -> tuple[Experiments, CanarySync]:
    experiments = Experiments()
    experiments.configure(parse_config(CONFIG.format(first=first)))
    sync = CanarySync(experiments, store=store, worker=name, wait_s=0.5)

    async def live() -> list[str]:
        return ["w1", "w2"]

    sync.live_workers = live
    experiments.set_listener(sync._on_auto)
    return experiments, sync


def _canary(experiments: Experiments) -> CanaryState:
    state = experiments.canary("exp")
    assert state is not None
    return state


def _healthy(state: CanaryState, n: int = 3) -> None:
    for _ in range(n):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=True, latency_ms=10)


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_an_admin_rollback_reaches_the_other_worker_and_reports_who_applied_it(
    kind: str, tmp_path: Path
) -> None:
    store: CanaryStore = LocalCanaryStore() if kind == "memory" else FileCanaryStore(tmp_path / "canary")
    (one, s1), (two, s2) = _worker(store, "w1"), _worker(store, "w2")

    async def later() -> None:
        await asyncio.sleep(0.1)
        await s2._round()

    answer, _ = await asyncio.gather(s1.decide("exp", "rollback", reason="bad", actor="admin:u1"), later())
    assert answer is not None
    assert answer["shared"]["status"] == "rolled_back" and answer["shared"]["source"] == "w1"
    assert (answer["workers"], answer["applied"], answer["pending"]) == (2, 2, [])
    for experiments in (one, two):
        assert _canary(experiments).percent == 0.0
        assert _canary(experiments).describe()["decided"]["actor"] == "admin:u1"
    assert _canary(two).history[-1]["source"] == "w1"

    promoted = await s2.decide("exp", "promote", reason="fixed", actor="admin:u1")
    assert promoted is not None and promoted["pending"] == ["w1"]  # w1 never polled (bounded wait)
    await s1._round()
    assert _canary(one).percent == 100.0 and _canary(one).generation == 2
    assert await s1.decide("nope", "reset", reason="x", actor="admin:u1") is None


async def test_an_automatic_rollback_on_one_worker_rolls_every_worker_back() -> None:
    store = LocalCanaryStore()
    (one, s1), (two, s2) = _worker(store, "w1"), _worker(store, "w2")
    state = _canary(one)
    for _ in range(3):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=False, latency_ms=10)
    assert state.status == "rolled_back" and _canary(two).percent == 10.0
    await s1._round()
    await s2._round()
    assert _canary(two).status == "rolled_back" and _canary(two).percent == 0.0
    decided = _canary(two).decided
    assert decided is not None and decided.actor == "auto" and decided.source == "w1"
    assert "error rate" in (decided.reason or "")


async def test_conflicts_admin_wins_stale_advances_drop_and_rollback_beats_an_advance() -> None:
    store = LocalCanaryStore()
    (one, s1), (two, s2) = _worker(store, "w1"), _worker(store, "w2")
    _healthy(_canary(one))
    _healthy(_canary(two))  # both advance to step 1 over generation 0
    await s1._round()
    await s2._round()  # w2's advance is stale: dropped, it runs w1's
    assert (await store.read())["exp"].generation == 1
    decided = _canary(two).decided
    assert decided is not None and decided.source == "w1"

    # w2 rolls back over w1's automatic advance (made after what w2 ran): the rollback is written
    for _ in range(1000):
        _canary(one).observe("b", ok=True, latency_ms=1)
    assert _canary(one).step == 2
    two_state = _canary(two)
    for _ in range(6):
        two_state.observe("b", ok=False, latency_ms=10)
    assert two_state.status == "rolled_back"
    await s1._round()  # w1 writes its advance first
    await s2._round()
    await s1._round()
    assert (await store.read())["exp"].status == "rolled_back"
    assert _canary(one).status == "rolled_back"

    # an admin reset lands, and a rollback decided before it (now stale) does not undo it
    answer = await s2.decide("exp", "reset", reason="new build", actor="admin:u1")
    assert answer is not None and answer["shared"]["generation"] == 4
    await s1._round()
    assert _canary(one).status == "ramping" and _canary(one).step == 0
    state = _canary(one)
    for _ in range(3):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=False, latency_ms=10)
    assert state.status == "rolled_back" and s1._pending  # decided here, not yet written
    await s2.decide("exp", "reset", reason="another build", actor="admin:u2")
    await s1._round()
    assert (await store.read())["exp"].event == "reset"
    assert _canary(one).status == "ramping" and _canary(one).generation == 5


async def test_a_decision_for_another_definition_is_ignored() -> None:
    store = LocalCanaryStore()
    _, s1 = _worker(store, "w1")
    two, s2 = _worker(store, "w2", first=20)  # an edited experiment: another fingerprint
    await s1.decide("exp", "rollback", reason="bad", actor="admin:u1")
    await s2._round()
    assert _canary(two).status == "ramping" and _canary(two).percent == 20.0
    answer = await s2.decide("exp", "promote", reason="x", actor="admin:u1")  # written over it
    assert answer is not None and answer["shared"]["generation"] == 2


async def test_the_file_store_compares_and_sets(tmp_path: Path) -> None:
    store = FileCanaryStore(tmp_path / "canary")
    first = CanaryDecision(
        experiment="exp",
        generation=1,
        fingerprint="f",
        event="rollback",
        step=0,
        status="rolled_back",
        reason="r",
        actor="auto",
        source="w1",
        at="2026-12-07T00:00:00.000+00:00",
    )
    assert await store.read() == {}
    assert await store.write(first)
    assert not await store.write(first)  # generation 1 is taken: the second writer lost
    assert (await store.read())["exp"] == first
    await store.ack("replica:1", {"exp": 1})
    assert await store.acks() == {"replica:1": {"exp": 1}}


class _Down(LocalCanaryStore):
    """A store that stops answering (``down``) or loses every race (``losing``)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.losing = False

    async def read(self) -> dict[str, CanaryDecision]:
        if self.down:
            raise RedisConnectionError("refused")
        return await super().read()

    async def write(self, decision: CanaryDecision) -> bool:
        if self.losing:
            return False
        return await super().write(decision)


async def test_a_store_that_fails_answers_503_or_409_and_keeps_automatic_decisions() -> None:
    store = _Down()
    one, s1 = _worker(store, "w1")
    store.down = True
    with pytest.raises(ServiceUnavailable) as refused:
        await s1.decide("exp", "rollback", reason="bad", actor="admin:u1")
    assert refused.value.code == "canary_store_unavailable"
    assert _canary(one).status == "ramping"  # nothing changed here either
    store.down, store.losing = False, True
    with pytest.raises(Conflict):
        await s1.decide("exp", "rollback", reason="bad", actor="admin:u1")
    store.losing = False

    state = _canary(one)
    for _ in range(3):
        state.observe("a", ok=True, latency_ms=10)
        state.observe("b", ok=False, latency_ms=10)
    store.down = True
    assert not await s1._round()
    assert len(s1._pending) == 1  # kept for the next round
    store.down = False
    assert await s1._round()
    assert not s1._pending and (await store.read())["exp"].status == "rolled_back"
