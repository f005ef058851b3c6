"""The tool loop's audit trail: batched, non-blocking inserts into ``tool_calls``.

One row per server tool call the loop ran: tool, caller (user and key), status, guard verdict,
duration, argument and result sizes; the arguments and results themselves only when the operator
enables ``tools.loop.store_payloads`` (docs/tools.md, "Audit"). A full buffer drops rows (counted
and logged) rather than slow requests down.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.background import BackgroundWorker
from gateway.db.models import ToolCallAudit
from gateway.observability import metrics

log = structlog.get_logger("prism.tools")


class ToolAuditWriter:
    def __init__(
        self, engine: AsyncEngine, *, batch_size: int = 200, interval_s: float = 0.5, max_buffer: int = 20_000
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self._buffer: deque[dict[str, Any]] = deque()
        self._worker = BackgroundWorker("tool_audit", self.flush, interval_s=interval_s, drain=self.flush)
        self.dropped = 0

    def record(self, rows: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        for row in rows:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                metrics.TOOL_AUDIT_DROPPED.inc()
                log.warning("tool_audit_dropped", request_id=row.get("request_id"))
                continue
            self._buffer.append({"created_at": now, **row})

    async def start(self) -> None:
        self._worker.start()

    async def flush(self) -> None:
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(insert(ToolCallAudit), batch)
            except BaseException:
                self._buffer.extendleft(reversed(batch))
                log.warning("tool_audit_flush_failed", depth=len(self._buffer), exc_info=True)
                raise

    async def aclose(self) -> None:
        await self._worker.aclose()
