"""The in-process canary state machine (one per replica, driven by request outcomes).

States: ``ramping`` (step i of n) → ``complete`` (last step reached) or ``rolled_back``. Each
outcome of either arm goes into that arm's sliding window; after every outcome, once both windows
hold ``min_samples``, the canary is compared to the control and rolled back (share 0%) when its
error rate or p95 latency is worse by more than the configured margin. Steps advance on the
canary arm's request count at the step or on the time spent at the step — but never before a
health check could be made: while either window holds fewer than ``min_samples`` outcomes the step
is *held* (a ``hold`` event in the history, a ``canary_held`` warning, status stays ``ramping``),
so a first step shorter than the minimum sample cannot push more traffic to an unchecked arm.

Every history event carries its wall-clock time (``at``, ISO 8601 UTC). ``reset`` (the admin route
``POST /admin/experiments/{name}/reset``) starts the roll-out over at step 0 with empty windows and
keeps the history, with a ``reset`` event. ``promote`` and ``rollback`` (the console's buttons,
``POST /admin/experiments/{name}/canary/{action}``) jump to the last step or to 0% by hand.

Shared across workers and replicas (``gateway/experiments/canary_sync.py``): every decision (an
admin's promote/rollback/reset, an automatic advance or rollback) is a ``CanaryDecision`` with a
generation number. Automatic ones are handed to ``listener`` (the worker's ``CanarySync``, which
writes them to the shared store off the request path); ``apply`` adopts a decision made elsewhere.
Health windows and step counters stay per worker.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from gateway.config.experiments import CanaryConfig
from gateway.experiments.stats import percentile

log = structlog.get_logger("prism.experiments")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


Status = Literal["ramping", "complete", "rolled_back"]
DecisionEvent = Literal["reset", "promote", "rollback", "advance"]


@dataclass(frozen=True, slots=True)
class CanaryDecision:
    """One decided canary state, shared by every worker (the store keeps the latest per experiment)."""

    experiment: str
    generation: int
    """Grows by one per decision; a write succeeds only over the generation its writer read."""
    fingerprint: str
    """The experiment definition it applies to: a decision for an older definition is ignored."""
    event: DecisionEvent
    step: int
    status: Status
    reason: str | None
    actor: str
    """``admin:<user id>`` or ``auto`` (a health rollback or a step advance)."""
    source: str
    """The worker that decided (``replica:pid``)."""
    at: str
    """When (ISO 8601 UTC)."""

    def public(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "event": self.event,
            "step": self.step,
            "status": self.status,
            "reason": self.reason,
            "actor": self.actor,
            "source": self.source,
            "at": self.at,
        }


@dataclass(slots=True)
class _Window:
    outcomes: deque[tuple[bool, float]]

    @property
    def n(self) -> int:
        return len(self.outcomes)

    def error_rate(self) -> float:
        return sum(1 for ok, _ in self.outcomes if not ok) / self.n if self.outcomes else 0.0

    def p95(self) -> float:
        latencies = [latency for ok, latency in self.outcomes if ok]
        return percentile(latencies, 95) if latencies else 0.0


class CanaryState:
    def __init__(
        self,
        *,
        experiment: str,
        control: str,
        config: CanaryConfig,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = _utc_now,
    ) -> None:
        self.experiment = experiment
        self.control = control
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.history: list[dict[str, Any]] = []
        self.generation = 0
        """The generation of the last shared decision this worker applied or made (0: none)."""
        self.decided: CanaryDecision | None = None
        self.listener: Callable[[CanaryState, DecisionEvent], None] | None = None
        """Told about every automatic decision (advance, health rollback) made here."""
        self._start("start")

    def _start(self, event: str, **fields: Any) -> None:
        config = self.config
        self.step = 0
        self.step_started = self.clock()
        self.step_requests = 0
        self.status: Status = "ramping" if len(config.steps) > 1 else "complete"
        self.rollback_reason: str | None = None
        self.rolled_back_at: float | None = None
        self.held = False
        self._windows = {name: _Window(deque(maxlen=config.window)) for name in (self.control, config.arm)}
        self._event(event, **fields)

    def _event(self, event: str, **fields: Any) -> None:
        self.history.append(
            {"at": self.wall_clock(), "step": self.step, "percent": self.percent, "event": event, **fields}
        )

    def reset(self, *, reason: str = "admin reset") -> None:
        """Start the roll-out over (step 0, empty windows); the history is kept."""
        self._start("reset", reason=reason)

    def promote(self, *, reason: str = "admin promote") -> None:
        """Jump to the last step (the canary's full share) now; windows and history are kept."""
        self.step = len(self.config.steps) - 1
        self.step_started = self.clock()
        self.step_requests = 0
        self.status = "complete"
        self.held = False
        self.rollback_reason = None
        self.rolled_back_at = None
        self._event("promote", reason=reason)

    def rollback(self, *, reason: str = "admin rollback") -> None:
        """Send the canary's share to 0% now, as an automatic rollback would."""
        self.status = "rolled_back"
        self.rollback_reason = reason
        self.rolled_back_at = self.clock()
        self._event("rollback", reason=reason)

    @property
    def percent(self) -> float:
        if self.status == "rolled_back":
            return 0.0
        return self.config.steps[self.step].percent

    def observe(self, arm: str, *, ok: bool, latency_ms: float) -> None:
        window = self._windows.get(arm)
        if window is None or self.status == "rolled_back":
            return
        window.outcomes.append((ok, latency_ms))
        if arm == self.config.arm:
            self.step_requests += 1
        if self._check_health():
            return
        self._maybe_advance()

    def _check_health(self) -> bool:
        cfg = self.config
        control, canary = self._windows[self.control], self._windows[cfg.arm]
        if control.n < cfg.min_samples or canary.n < cfg.min_samples:
            return False
        reason = None
        c_err, k_err = control.error_rate(), canary.error_rate()
        if k_err > c_err + cfg.max_error_rate_increase:
            reason = f"error rate {k_err:.1%} > control {c_err:.1%} + {cfg.max_error_rate_increase:.1%}"
        else:
            c_p95, k_p95 = control.p95(), canary.p95()
            limit = c_p95 * (1 + cfg.max_p95_latency_increase) + cfg.latency_floor_ms
            if k_p95 > limit:
                reason = f"p95 latency {k_p95:.0f} ms > control {c_p95:.0f} ms limit {limit:.0f} ms"
        if reason is None:
            return False
        self.status = "rolled_back"
        self.rollback_reason = reason
        self.rolled_back_at = self.clock()
        self._event("rollback", reason=reason)
        self._notify("rollback")
        return True

    def _checked(self) -> bool:
        """Both windows hold enough outcomes for a health verdict."""
        n = self.config.min_samples
        return self._windows[self.control].n >= n and self._windows[self.config.arm].n >= n

    def _maybe_advance(self) -> None:
        if self.status != "ramping":
            return
        step = self.config.steps[self.step]
        by_count = step.after_requests is not None and self.step_requests >= step.after_requests
        by_time = step.after_s is not None and self.clock() - self.step_started >= step.after_s
        if not (by_count or by_time):
            return
        if not self._checked():
            if not self.held:
                self.held = True
                windows = {name: w.n for name, w in self._windows.items()}
                self._event(
                    "hold", reason=f"waiting for {self.config.min_samples} samples per arm", samples=windows
                )
                log.warning(
                    "canary_held",
                    experiment=self.experiment,
                    step=self.step,
                    min_samples=self.config.min_samples,
                    samples=windows,
                )
            return
        self.held = False
        self.step += 1
        self.step_started = self.clock()
        self.step_requests = 0
        if self.step == len(self.config.steps) - 1:
            self.status = "complete"
        self._event("advance")
        self._notify("advance")

    def _notify(self, event: DecisionEvent) -> None:
        if self.listener is not None:
            self.listener(self, event)

    def apply(self, decision: CanaryDecision) -> bool:
        """Adopt a decision made by another worker (or by an admin anywhere); False when it is not
        newer than what this worker runs. A ``reset`` also empties this worker's windows."""
        if decision.generation <= self.generation:
            return False
        if decision.event == "reset":
            fields = {"reason": decision.reason, "source": decision.source, "generation": decision.generation}
            self._start("reset", **fields)
        else:
            self.step = min(max(decision.step, 0), len(self.config.steps) - 1)
            self.step_started = self.clock()
            self.step_requests = 0
            self.held = False
            self.status = decision.status
            if decision.status == "rolled_back":
                self.rollback_reason = decision.reason
                self.rolled_back_at = self.clock()
            else:
                self.rollback_reason = None
                self.rolled_back_at = None
            self._event(
                decision.event, reason=decision.reason, source=decision.source, generation=decision.generation
            )
        self.generation = decision.generation
        self.decided = decision
        return True

    def adopt(self, decision: CanaryDecision) -> None:
        """This worker made ``decision`` (already applied here): remember its generation."""
        self.generation = max(self.generation, decision.generation)
        self.decided = decision

    def tick(self) -> None:
        """Time-based advance without traffic (called on assignment)."""
        self._maybe_advance()

    def describe(self) -> dict[str, Any]:
        return {
            "arm": self.config.arm,
            "status": self.status,
            "step": self.step,
            "steps": len(self.config.steps),
            "percent": self.percent,
            "step_requests": self.step_requests,
            "held": self.held,
            "min_samples": self.config.min_samples,
            "rollback_reason": self.rollback_reason,
            "generation": self.generation,
            "decided": self.decided.public() if self.decided is not None else None,
            "windows": {
                name: {"n": w.n, "error_rate": w.error_rate(), "p95_latency_ms": w.p95()}
                for name, w in self._windows.items()
            },
            "history": list(self.history),
        }
