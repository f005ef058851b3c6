"""Settings of durable flows (LangGraph's runtime with a checkpointer; ``gateway/agent/durable``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from gateway.config.settings import Settings


@dataclass(frozen=True, slots=True)
class DurableConfig:
    database_url: str
    """Where the checkpoints and the run leases live: the application's database."""
    production: bool = False
    worker_id: str = ""
    """This worker's name in the leases (default ``host:pid``)."""
    lease_s: float = 30.0
    """A run whose worker has not renewed its lease for this long is taken over by another worker.
    Longer: a dead worker's runs wait longer; shorter: a worker paused longer than this (GC, swap,
    a saturated event loop) loses its runs and stops them at its next renewal."""
    heartbeat_s: float = 5.0
    """How often a worker renews the leases of the runs it executes (well under ``lease_s``)."""
    recovery_scan_s: float = 5.0
    """How often a worker looks for runs whose worker died (and once at start)."""
    max_recoveries: int = 8
    max_claims: int = 10
    """A run whose execution the database interrupted this many times is failed instead of resumed."""
    """Orphaned runs one worker resumes at a time."""
    pool_size: int = 4
    checkpoint_shards: int = 4
    """Postgres checkpointers per process sharing the pool (see ``open_checkpointers``); at most
    ``pool_size``."""
    connect_timeout_s: float = 10.0
    setup_timeout_s: float = 60.0
    recursion_limit: int = 100
    keep_checkpoints: bool = False
    synchronous_commit: bool = True
    """``False``: checkpoints are committed without waiting for the WAL flush (Postgres
    ``synchronous_commit=off`` on the checkpointer's connections only). A Postgres crash may then
    lose the last few hundred milliseconds of checkpoints — those steps run again (their side
    effects are keyed) — never a run's outcome: the lease rows stay synchronous, and their commit
    flushes the checkpoints written before it."""
    """Keep a succeeded run's checkpoints (default: deleted once its result is recorded; a failed
    run's are always kept)."""

    def __post_init__(self) -> None:
        if self.heartbeat_s * 2 > self.lease_s:
            raise ValueError("durable heartbeat_s must be at most half of lease_s")
        if not 1 <= self.checkpoint_shards <= self.pool_size:
            raise ValueError("durable checkpoint_shards must be between 1 and pool_size")

    @classmethod
    def from_settings(cls, settings: Settings) -> DurableConfig:
        return cls(
            database_url=settings.durable_database_url or settings.database_url,
            production=settings.env == "production",
            worker_id=settings.durable_worker_id or f"{socket.gethostname()}:{os.getpid()}",
            lease_s=settings.durable_lease_s,
            heartbeat_s=settings.durable_heartbeat_s,
            recovery_scan_s=settings.durable_recovery_scan_s,
            max_recoveries=settings.durable_max_recoveries,
            pool_size=settings.durable_pool_size,
            checkpoint_shards=min(settings.durable_checkpoint_shards, settings.durable_pool_size),
            keep_checkpoints=settings.durable_keep_checkpoints,
            synchronous_commit=settings.durable_synchronous_commit,
        )
