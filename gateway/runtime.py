"""The live routing configuration: config, providers and router, swapped atomically on reload."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.experiments.runtime import Experiments
from gateway.guardrails import Guardrails
from gateway.observability import metrics
from gateway.providers.http import UpstreamClients
from gateway.providers.registry import Target, build_targets
from gateway.routing.circuit import CircuitBreakers
from gateway.routing.config import ConfigError, RoutingConfig, load_config
from gateway.routing.router import Router

log = structlog.get_logger("prism.config")


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    config: RoutingConfig
    targets: Mapping[str, Target]
    router: Router
    model_label: metrics.LabelSet
    guardrails: Guardrails
    """Compiled from ``config.guardrails`` once per snapshot, so a reload recompiles the policies."""
    max_price_input: float = 0.0
    max_price_output: float = 0.0
    max_output_tokens: int = 4096
    """Worst-case figures over every target, for quota reservations made before routing."""


class ConfigHolder:
    """Owns the current snapshot. Requests take ``current`` once and keep it for their whole life."""

    def __init__(
        self,
        *,
        path: Path,
        clients: UpstreamClients | None,
        circuits: CircuitBreakers,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self._clients = clients
        self._env = env if env is not None else os.environ
        self.circuits = circuits
        self.experiments = Experiments()
        """Experiment assignment and canary state; survives reloads (issue #5)."""
        self._current: RuntimeSnapshot | None = None

    @property
    def current(self) -> RuntimeSnapshot:
        if self._current is None:
            raise RuntimeError("routing config not loaded")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    def build(self, config: RoutingConfig) -> RuntimeSnapshot:
        targets = build_targets(config, clients=self._clients, env=self._env)
        self.circuits.reconfigure(config.circuit_breaker, targets=set(targets))
        router = Router(config=config, targets=targets, circuits=self.circuits, experiments=self.experiments)
        models = [target.config for target in targets.values()]
        return RuntimeSnapshot(
            config=config,
            targets=targets,
            router=router,
            model_label=metrics.LabelSet([*targets, *config.aliases]),
            guardrails=Guardrails(config.guardrails),
            max_price_input=max((m.price_input_per_mtok for m in models), default=0.0),
            max_price_output=max((m.price_output_per_mtok for m in models), default=0.0),
            max_output_tokens=max((m.max_output_tokens for m in models), default=4096),
        )

    async def aclose(self) -> None:
        """Close the providers' own connection pools (the shared HTTP client is closed by the lifespan)."""
        if self._current is not None:
            for target in self._current.targets.values():
                await target.provider.aclose()

    def load(self) -> RuntimeSnapshot:
        """Load the file; raises ``ConfigError`` and keeps the running snapshot when it is invalid."""
        try:
            snapshot = self.build(load_config(self.path))
        except ConfigError:
            metrics.CONFIG_RELOADS.labels(outcome="rejected").inc()
            raise
        self._current = snapshot
        self.experiments.configure(snapshot.config)
        metrics.CONFIG_RELOADS.labels(outcome="ok").inc()
        log.info("config_loaded", path=str(self.path), models=sorted(snapshot.targets))
        return snapshot
