"""The live experiments of one replica: sticky assignment, canary states and outcome metrics.

Owned by the ``ConfigHolder`` (it survives reloads): ``configure`` is called with every new
config and keeps a canary's state while its experiment's definition is unchanged. The router asks
``assign``; ``CompletionService._finish`` reports every finished request to ``observe``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from gateway.config.experiments import ExperimentConfig
from gateway.config.routing import RoutingConfig
from gateway.experiments.canary import CanaryState, DecisionEvent
from gateway.observability import metrics
from gateway.usage.record import UsageRecord, UsageStatus

log = structlog.get_logger("prism.experiments")


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    arm: str
    chain: tuple[str, ...]


class Experiments:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.configs: dict[str, ExperimentConfig] = {}
        self._by_alias: dict[str, str] = {}
        self._canaries: dict[str, CanaryState] = {}
        self._arms: dict[str, frozenset[str]] = {}
        """Known (experiment → arms) for metric labels, including legacy ``split`` aliases."""
        self._listener: Callable[[CanaryState, DecisionEvent], None] | None = None
        """Told about automatic canary decisions (``CanarySync`` shares them with every worker)."""

    def configure(self, config: RoutingConfig) -> None:
        canaries: dict[str, CanaryState] = {}
        for name, exp in config.experiments.items():
            if exp.canary is None:
                continue
            old_config = self.configs.get(name)
            old = self._canaries.get(name)
            if old is not None and old_config == exp:
                canaries[name] = old
            else:
                canaries[name] = CanaryState(
                    experiment=name, control=exp.control, config=exp.canary, clock=self.clock
                )
                canaries[name].listener = self._listener
        self.configs = dict(config.experiments)
        self._canaries = canaries
        self._by_alias = {exp.alias: name for name, exp in config.experiments.items() if exp.enabled}
        arms = {name: frozenset(exp.arms) for name, exp in config.experiments.items()}
        for alias, alias_config in config.aliases.items():
            if alias_config.split is not None and alias not in arms:
                arms[alias] = frozenset(alias_config.split)
        self._arms = arms
        for name, state in canaries.items():
            metrics.CANARY_PERCENT.labels(experiment=name).set(state.percent)
            metrics.CANARY_ROLLBACKS.labels(experiment=name)
        metrics.zero_experiment_series(arms)
        metrics.zero_config_series(config)  # called on every config load: new models' series at 0

    def covers(self, requested: str) -> bool:
        return requested in self._by_alias

    @property
    def aliases(self) -> list[str]:
        return list(self._by_alias)

    def canary(self, name: str) -> CanaryState | None:
        return self._canaries.get(name)

    def canaries(self) -> dict[str, CanaryState]:
        return dict(self._canaries)

    def set_listener(self, listener: Callable[[CanaryState, DecisionEvent], None] | None) -> None:
        self._listener = listener
        for state in self._canaries.values():
            state.listener = listener

    def reset(self, name: str, *, reason: str = "admin reset") -> CanaryState | None:
        """Start a canary roll-out over on this process (``POST /admin/experiments/{name}/reset``)."""
        state = self._canaries.get(name)
        if state is not None:
            state.reset(reason=reason)
            metrics.CANARY_PERCENT.labels(experiment=name).set(state.percent)
            log.info("canary_reset", experiment=name, reason=reason, percent=state.percent)
        return state

    def act(self, name: str, action: str, *, reason: str) -> CanaryState | None:
        """``promote`` or ``rollback`` this process's canary by hand (the console's buttons)."""
        state = self._canaries.get(name)
        if state is not None:
            if action == "promote":
                state.promote(reason=reason)
            else:
                state.rollback(reason=reason)
            metrics.CANARY_PERCENT.labels(experiment=name).set(state.percent)
            log.info("canary_" + action, experiment=name, reason=reason, percent=state.percent)
        return state

    def assign(
        self, requested: str, *, sticky: Mapping[str, str | None], request_id: str
    ) -> Assignment | None:
        from gateway.experiments.sticky import bucket, pick_weighted

        name = self._by_alias.get(requested)
        if name is None:
            return None
        exp = self.configs[name]
        key = sticky.get(exp.sticky) or sticky.get("request") or request_id
        position = bucket("experiment", name, key)
        state = self._canaries.get(name)
        if state is not None and exp.canary is not None:
            state.tick()
            arm = exp.canary.arm if position < state.percent / 100.0 else exp.control
        else:
            weights = exp.weights
            arm = pick_weighted(weights, position)
        return Assignment(experiment=name, arm=arm, chain=exp.arms[arm].chain)

    def observe(self, record: UsageRecord) -> None:
        """One finished request: metrics for every experiment arm, health input for canaries."""
        experiment, arm = record.experiment, record.arm
        if experiment is None or arm is None or arm not in self._arms.get(experiment, ()):
            return
        status = record.status.value
        metrics.EXPERIMENT_REQUESTS.labels(experiment=experiment, arm=arm, status=status).inc()
        metrics.EXPERIMENT_DURATION.labels(experiment=experiment, arm=arm).observe(record.latency_ms / 1000)
        if record.cost_usd:
            metrics.EXPERIMENT_COST.labels(experiment=experiment, arm=arm).inc(record.cost_usd)
        if record.attempts:
            attempts = metrics.EXPERIMENT_ATTEMPTS
            attempts.labels(experiment=experiment, arm=arm, kind="attempt").inc(record.attempts)
            if record.attempts > 1:
                attempts.labels(experiment=experiment, arm=arm, kind="retry_or_fallback").inc(
                    record.attempts - 1
                )
            if record.fallback_used:
                attempts.labels(experiment=experiment, arm=arm, kind="fallback").inc()
        metrics.EXPERIMENT_TOKENS.labels(experiment=experiment, arm=arm, direction="input").inc(
            record.prompt_tokens
        )
        metrics.EXPERIMENT_TOKENS.labels(experiment=experiment, arm=arm, direction="output").inc(
            record.completion_tokens
        )
        state = self._canaries.get(experiment)
        if state is None or record.cache_hit or record.status is UsageStatus.REJECTED:
            return
        before = state.status
        state.observe(arm, ok=record.status is UsageStatus.OK, latency_ms=record.latency_ms)
        metrics.CANARY_PERCENT.labels(experiment=experiment).set(state.percent)
        if state.status != before:
            if state.status == "rolled_back":
                metrics.CANARY_ROLLBACKS.labels(experiment=experiment).inc()
                log.warning("canary_rolled_back", experiment=experiment, reason=state.rollback_reason)
            else:
                log.info("canary_status", experiment=experiment, status=state.status, percent=state.percent)
