"""Per-target circuit breakers: closed → open → half-open probe, and the per-target retry budget.

A circuit opens after ``failure_threshold`` consecutive failures, or when at
least ``min_requests`` requests over ``window_s`` failed at ``failure_rate`` or
more. An open target is skipped until its cooldown passes; then one request at
a time is let through as a probe. A successful probe closes the circuit; a
failed one reopens it with a doubled cooldown (capped).

``CircuitBreakers`` keeps the state in-process; ``SharedCircuitBreakers``
(``gateway.routing.shared_circuit``) shares it between replicas through Redis.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gateway.config.routing import CircuitBreakerConfig, RetryConfig
from gateway.observability import metrics

log = structlog.get_logger("prism.circuit")


class CircuitState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class _Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    cooldown_s: float = 0.0
    probe_in_flight: bool = False
    last_failure_at: float = 0.0
    window: deque[list[int]] = field(default_factory=deque)
    """``[second, successes, failures]`` buckets over the failure-rate window."""

    def count(self, now: float, *, failed: bool, window_s: float) -> tuple[int, int]:
        """Add one outcome; returns (requests, failures) over the window."""
        second = int(now)
        if not self.window or self.window[-1][0] != second:
            self.window.append([second, 0, 0])
        self.window[-1][2 if failed else 1] += 1
        horizon = second - math.ceil(window_s)
        while self.window and self.window[0][0] <= horizon:
            self.window.popleft()
        ok = sum(bucket[1] for bucket in self.window)
        bad = sum(bucket[2] for bucket in self.window)
        return ok + bad, bad


class CircuitBreakers:
    def __init__(self, config: CircuitBreakerConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._label = metrics.LabelSet()
        self.retry_budget = RetryBudget()

    def reconfigure(self, config: CircuitBreakerConfig, *, targets: set[str]) -> None:
        self.config = config
        self._label = metrics.LabelSet(targets)

    def _get(self, target: str) -> _Circuit:
        circuit = self._circuits.get(target)
        if circuit is None:
            circuit = self._circuits[target] = _Circuit()
        return circuit

    def state(self, target: str) -> CircuitState:
        circuit = self._circuits.get(target)
        if circuit is None:
            return CircuitState.CLOSED
        if circuit.state is CircuitState.OPEN and self._clock() - circuit.opened_at >= circuit.cooldown_s:
            return CircuitState.HALF_OPEN
        return circuit.state

    def allow(self, target: str) -> bool:
        """May a request go to ``target`` now? Claims the half-open probe slot when it is free."""
        circuit = self._circuits.get(target)
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return True
        if self.state(target) is CircuitState.OPEN:
            return False
        if circuit.probe_in_flight:
            return False
        circuit.probe_in_flight = True
        self._transition(target, circuit, CircuitState.HALF_OPEN)
        return True

    def record_success(self, target: str) -> None:
        circuit = self._get(target)
        circuit.count(self._clock(), failed=False, window_s=self.config.window_s)
        circuit.failures = 0
        circuit.probe_in_flight = False
        if circuit.state is not CircuitState.CLOSED:
            circuit.cooldown_s = 0.0
            self._transition(target, circuit, CircuitState.CLOSED)

    def record_failure(self, target: str) -> None:
        circuit = self._get(target)
        now = self._clock()
        circuit.failures += 1
        circuit.last_failure_at = now
        total, failed = circuit.count(now, failed=True, window_s=self.config.window_s)
        reopen = circuit.state is CircuitState.HALF_OPEN or circuit.probe_in_flight
        circuit.probe_in_flight = False
        too_many = circuit.failures >= self.config.failure_threshold or (
            total >= self.config.min_requests and failed >= self.config.failure_rate * total
        )
        if reopen or (circuit.state is CircuitState.CLOSED and too_many):
            circuit.window.clear()
            base = self.config.cooldown_s
            circuit.cooldown_s = min(circuit.cooldown_s * 2, self.config.max_cooldown_s) if reopen else base
            circuit.cooldown_s = max(circuit.cooldown_s, base)
            circuit.opened_at = now
            self._transition(target, circuit, CircuitState.OPEN)

    def release_probe(self, target: str) -> None:
        """A probe ended without a verdict on the target (client left, non-retryable client error)."""
        circuit = self._circuits.get(target)
        if circuit is not None:
            circuit.probe_in_flight = False

    def least_recently_failed(self, targets: list[str]) -> str | None:
        """The target to try when every circuit of a chain is open: never failed, else oldest failure."""
        for target in targets:
            circuit = self._circuits.get(target)
            if circuit is None or circuit.last_failure_at == 0.0:
                return target
        known = [(self._circuits[t].last_failure_at, t) for t in targets]
        return min(known)[1] if known else None

    async def shared_snapshot(self) -> dict[str, dict[str, float | int | str]]:
        """``GET /admin/circuits``: the shared state when there is one (overridden), else this process's."""
        return self.snapshot()

    async def shared_reset(self, target: str) -> bool:
        return self.reset(target)

    async def aclose(self) -> None:
        return None

    def snapshot(self) -> dict[str, dict[str, float | int | str]]:
        return {
            target: {
                "state": self.state(target).name.lower(),
                "failures": circuit.failures,
                "cooldown_s": circuit.cooldown_s,
            }
            for target, circuit in self._circuits.items()
        }

    def reset(self, target: str) -> bool:
        circuit = self._circuits.pop(target, None)
        if circuit is not None:
            metrics.CIRCUIT_STATE.labels(target=self._label(target)).set(0)
        return circuit is not None

    def _transition(
        self, target: str, circuit: _Circuit, state: CircuitState, *, adopted: bool = False
    ) -> None:
        """``adopted``: another worker or replica made this change (shared state); the gauge follows
        it but the transition is counted only where it happened, not once per worker."""
        if circuit.state is state:
            return
        circuit.state = state
        label = self._label(target)
        metrics.CIRCUIT_STATE.labels(target=label).set(int(state))
        if not adopted:
            metrics.CIRCUIT_TRANSITIONS.labels(target=label, state=state.name.lower()).inc()
        log.warning("circuit_state", target=target, state=state.name.lower(), cooldown_s=circuit.cooldown_s)


class RetryBudget:
    """Retries to a target are at most ``budget_ratio`` of its requests over a sliding window
    (with a floor of ``budget_min_per_s`` retries per second), so an outage does not multiply load."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[str, deque[list[int]]] = {}
        self._retries: dict[str, deque[list[int]]] = {}

    @staticmethod
    def _add(buckets: deque[list[int]], now: float, horizon: float) -> None:
        second = int(now)
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0])
        buckets[-1][1] += 1
        while buckets and buckets[0][0] <= horizon:
            buckets.popleft()

    @staticmethod
    def _sum(buckets: deque[list[int]] | None, horizon: float) -> int:
        return sum(count for second, count in buckets or () if second > horizon)

    def note_request(self, target: str, config: RetryConfig) -> None:
        now = self._clock()
        self._add(self._requests.setdefault(target, deque()), now, now - config.budget_window_s)

    def try_retry(self, target: str, config: RetryConfig) -> bool:
        """Spend one retry from ``target``'s budget; ``False`` when the budget is used up."""
        now = self._clock()
        horizon = now - config.budget_window_s
        requests = self._sum(self._requests.get(target), horizon)
        retries = self._sum(self._retries.get(target), horizon)
        allowed = max(config.budget_ratio * requests, config.budget_min_per_s * config.budget_window_s)
        if retries + 1 > allowed:
            return False
        self._add(self._retries.setdefault(target, deque()), now, horizon)
        return True
