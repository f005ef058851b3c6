"""The live routing configuration: config, providers and router, swapped atomically on reload."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from gateway.config.routing import ConfigError, RoutingConfig, parse_config
from gateway.experiments.runtime import Experiments
from gateway.guardrails import Guardrails
from gateway.observability import metrics
from gateway.providers.http import UpstreamClients
from gateway.providers.registry import Target, build_targets
from gateway.routing.circuit import CircuitBreakers
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
    config_hash: str = ""
    """The first 16 hex digits of the file's sha256: what ``/readyz`` and the admin reload report."""


ReloadOutcome = Literal["ok", "unchanged", "rejected"]


def config_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


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
        self.loaded_at: float | None = None
        """Wall-clock time the running snapshot was loaded."""
        self.last_error: str | None = None
        """Why the last reload was refused (None after a successful one)."""

    @property
    def current(self) -> RuntimeSnapshot:
        if self._current is None:
            raise RuntimeError("routing config not loaded")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def config_hash(self) -> str | None:
        return self._current.config_hash if self._current is not None else None

    def build(self, config: RoutingConfig, *, digest: str = "") -> RuntimeSnapshot:
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
            config_hash=digest,
        )

    async def aclose(self) -> None:
        """Close the providers' own connection pools (the shared HTTP client is closed by the lifespan)."""
        if self._current is not None:
            for target in self._current.targets.values():
                await target.provider.aclose()

    def load(self) -> RuntimeSnapshot:
        """Load the file at start-up; raises ``ConfigError`` when it is invalid."""
        snapshot, _ = self._load(startup=True)
        return snapshot

    def file_changed(self) -> bool:
        """Does the file on disk differ from the running config? (An unreadable file: no.)"""
        try:
            return config_hash(self.path.read_bytes()) != self.config_hash
        except OSError:
            return False

    def reload(self) -> tuple[RuntimeSnapshot, ReloadOutcome]:
        """Re-read the file; ``unchanged`` (nothing rebuilt) when its hash is the running one. Raises
        ``ConfigError`` and keeps the running snapshot when the file is invalid."""
        return self._load(startup=False)

    def _load(self, *, startup: bool) -> tuple[RuntimeSnapshot, ReloadOutcome]:
        try:
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read routing config {self.path}: {exc.strerror}") from exc
            digest = config_hash(data)
            if not startup and self._current is not None and digest == self._current.config_hash:
                self.last_error = None
                metrics.CONFIG_RELOADS.labels(outcome="unchanged").inc()
                return self._current, "unchanged"
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{self.path.name}: not UTF-8 text") from exc
            snapshot = self.build(parse_config(text, source=self.path.name), digest=digest)
        except ConfigError as exc:
            if not startup:
                self.last_error = " ".join(str(exc).split())[:300]
                metrics.CONFIG_RELOADS.labels(outcome="rejected").inc()
            raise
        previous = self._current
        self._current = snapshot
        self.loaded_at = time.time()
        self.last_error = None
        self.experiments.configure(snapshot.config)
        if previous is not None and previous.config_hash != digest:
            metrics.CONFIG_INFO.labels(hash=previous.config_hash).set(0)
        metrics.CONFIG_INFO.labels(hash=digest).set(1)
        if not startup:
            metrics.CONFIG_RELOADS.labels(outcome="ok").inc()
        log.info("config_loaded", path=str(self.path), models=sorted(snapshot.targets), hash=digest)
        return snapshot, "ok"
