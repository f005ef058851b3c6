"""Per-target circuit breakers: closed → open after consecutive failures → half-open probe.

A target whose circuit is open is skipped until its cooldown passes; then one
request at a time is let through as a probe. A successful probe closes the
circuit; a failed one reopens it with a doubled cooldown (capped). State is
in-process; replicas each keep their own until the resilience work shares it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.observability import metrics
from gateway.routing.config import CircuitBreakerConfig

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


class CircuitBreakers:
    def __init__(self, config: CircuitBreakerConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._label = metrics.LabelSet()

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
        circuit = self._circuits.get(target)
        if circuit is None:
            return
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
        reopen = circuit.state is CircuitState.HALF_OPEN or circuit.probe_in_flight
        circuit.probe_in_flight = False
        if reopen or (
            circuit.state is CircuitState.CLOSED and circuit.failures >= self.config.failure_threshold
        ):
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
        known = [(self._circuits[t].last_failure_at, t) for t in targets if t in self._circuits]
        return min(known)[1] if known else (targets[0] if targets else None)

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

    def _transition(self, target: str, circuit: _Circuit, state: CircuitState) -> None:
        if circuit.state is state:
            return
        circuit.state = state
        label = self._label(target)
        metrics.CIRCUIT_STATE.labels(target=label).set(int(state))
        metrics.CIRCUIT_TRANSITIONS.labels(target=label, state=state.name.lower()).inc()
        log.warning("circuit_state", target=target, state=state.name.lower(), cooldown_s=circuit.cooldown_s)
