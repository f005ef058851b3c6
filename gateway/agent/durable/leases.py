"""The leases this process holds, kept alive by the ``durable_heartbeat`` worker.

Every ``heartbeat_s`` one ``UPDATE`` renews them all (``db/repositories/durable_runs.renew``). A
lease found taken over, or not renewed for 80% of ``lease_s`` because the database is away, is
lost: its ``on_lost`` callback stops the run before another worker can have started it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import psycopg
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.background import BackgroundWorker
from gateway.config.durable import DurableConfig
from gateway.db.repositories import durable_runs as runs

log = structlog.get_logger("gateway.durable")

DATABASE_ERRORS = (SQLAlchemyError, psycopg.OperationalError, sqlite3.OperationalError, OSError)
"""The database (lease rows or checkpoints) went away: a run is not failed but left to its lease."""


class LeaseKeeper:
    def __init__(self, *, engine: AsyncEngine, config: DurableConfig) -> None:
        self._engine = engine
        self._config = config
        self._tokens: dict[str, int] = {}
        self._renewed: dict[str, float] = {}
        self._on_lost: dict[str, Callable[[], object]] = {}
        self.lost: set[str] = set()
        """Runs whose lease was lost (until :meth:`forget`)."""
        self.worker = BackgroundWorker(
            "durable_heartbeat", self._renew, interval_s=config.heartbeat_s, backoff=None
        )

    def hold(self, run_id: str, token: int, on_lost: Callable[[], object]) -> None:
        self._tokens[run_id] = token
        self._renewed[run_id] = time.monotonic()
        self._on_lost[run_id] = on_lost

    def release(self, run_id: str) -> None:
        """Stop renewing (the run is about to write its outcome, or ended)."""
        self._tokens.pop(run_id, None)
        self._renewed.pop(run_id, None)
        self._on_lost.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        self.release(run_id)
        self.lost.discard(run_id)

    async def _renew(self) -> bool:
        leases = dict(self._tokens)
        if not leases:
            return True
        try:
            async with self._engine.begin() as conn:
                held = await runs.renew(
                    conn, owner=self._config.worker_id, leases=leases, lease_s=self._config.lease_s
                )
        except DATABASE_ERRORS as exc:
            log.warning("durable_lease_renewal_failed", error=type(exc).__name__, runs=len(leases))
            # past most of the lease, another worker may take the run: stop before it does
            cutoff = time.monotonic() - self._config.lease_s * 0.8
            for run_id, token in leases.items():
                if self._renewed.get(run_id, cutoff) < cutoff:
                    self._lose(run_id, token)
            return False
        now = time.monotonic()
        for run_id, token in leases.items():
            if run_id in held:
                self._renewed[run_id] = now
            else:
                self._lose(run_id, token)
        return True

    def _lose(self, run_id: str, token: int) -> None:
        if self._tokens.get(run_id) != token:
            return  # the run ended (or was given back) meanwhile
        log.warning("durable_lease_lost", run_id=run_id, durable_worker=self._config.worker_id)
        self.lost.add(run_id)
        on_lost = self._on_lost.get(run_id)
        self.release(run_id)
        if on_lost is not None:
            on_lost()
