"""The jobs use cases behind ``/v1/jobs``: submit (check the file, count its pages, charge the
quota, store, queue), read, list, cancel — with object-level authorization: a job is visible to
the user who submitted it (and to admins); anyone else gets 404, as for a job that does not exist.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config.settings import Settings
from gateway.db.repositories import jobs
from gateway.errors import Conflict, InvalidRequest, NotFound, QuotaExceeded, ServiceUnavailable
from gateway.jobs.inspection import count_pages
from gateway.jobs.registry import OWNER_KEY, JobType
from gateway.jobs.uploads import check_kind, declared_kind, discard
from gateway.observability.metrics import JOBS_SUBMITTED
from gateway.pipelines.llm import principal_json
from gateway.security.principal import Principal

log = structlog.get_logger("gateway.jobs")


class Dispatcher(Protocol):
    async def enqueue(self, job_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Submission:
    job_type: str
    path: Path
    file_name: str | None
    content_type: str | None
    size: int
    options: dict[str, Any]
    webhook_url: str | None
    idempotency_key: str | None
    request_id: str | None


class JobService:
    def __init__(
        self, *, engine: AsyncEngine, settings: Settings, types: Mapping[str, JobType], dispatcher: Dispatcher
    ) -> None:
        self._engine = engine
        self._settings = settings
        self.types = types
        self.dispatcher = dispatcher
        self.storage = Path(settings.jobs_storage_dir)

    def job_type(self, name: str | None) -> JobType:
        if not name:
            raise InvalidRequest(
                "Missing required field 'type'", param="type", code="missing_required_parameter"
            )
        spec = self.types.get(name)
        if spec is None:
            raise InvalidRequest(
                f"Unknown job type {name!r}; available: {', '.join(sorted(self.types))}",
                param="type",
                code="invalid_job_type",
            )
        return spec

    async def existing(self, principal: Principal, key: str | None) -> Any:
        if key is None:
            return None
        async with self._engine.connect() as conn:
            return await jobs.find_by_idempotency_key(conn, user_id=principal.user_id, key=key)

    async def submit(self, principal: Principal, sub: Submission) -> tuple[Any, bool]:
        """The job (created, or the one this idempotency key already made) and whether it is new.
        The file at ``sub.path`` becomes the job's, or is deleted when the submission is refused."""
        try:
            spec = self.job_type(sub.job_type)
            head = await asyncio.to_thread(_head, sub.path)
            if not head:
                raise InvalidRequest("The uploaded file is empty", param="file", code="invalid_file")
            kind = check_kind(
                head, declared=declared_kind(sub.file_name, sub.content_type), accepts_text=spec.accepts_text
            )
            pages = await asyncio.to_thread(
                count_pages,
                sub.path,
                kind,
                max_pages=self._settings.jobs_max_pages,
                max_pixels=self._settings.jobs_max_pixels,
            )
            await self._charge(principal, pages)
        except BaseException:
            discard(sub.path)
            raise
        job_id = uuid.uuid4().hex
        final_path = self.storage / f"{job_id}{_suffix(kind)}"
        os.replace(sub.path, final_path)
        values = {
            "id": job_id,
            "type": spec.name,
            "user_id": principal.user_id,
            "api_key_id": principal.api_key_id,
            "tier": principal.tier,
            "request_id": sub.request_id,
            "idempotency_key": sub.idempotency_key,
            "file_path": str(final_path.resolve()),
            "file_name": sub.file_name,
            "content_type": kind,
            "size_bytes": sub.size,
            "pages": pages,
            "options": {
                **{k: v for k, v in sub.options.items() if k != OWNER_KEY},
                OWNER_KEY: principal_json(principal),
            },
            "webhook_url": sub.webhook_url,
        }
        try:
            async with self._engine.begin() as conn:
                await jobs.create(conn, values)
        except jobs.IdempotencyConflict as exc:
            discard(final_path)
            return await self.get(principal, exc.job_id), False
        except BaseException:
            discard(final_path)
            raise
        try:
            await self.dispatcher.enqueue(job_id)
        except Exception as exc:
            async with self._engine.begin() as conn:
                await jobs.fail_unclaimed(
                    conn,
                    job_id=job_id,
                    error={"message": "the task queue is unavailable", "type": "queue_unavailable"},
                )
            discard(final_path)
            log.warning("job_enqueue_failed", job_id=job_id, error=type(exc).__name__)
            raise ServiceUnavailable(
                "The task queue is unavailable; the job was not queued", code="queue_unavailable"
            ) from exc
        JOBS_SUBMITTED.labels(type=spec.name).inc()
        log.info("job_submitted", job_id=job_id, job_type=spec.name, pages=pages, size_bytes=sub.size)
        return await self.get(principal, job_id), True

    async def _charge(self, principal: Principal, pages: int) -> None:
        pages_limit = self._settings.jobs_pages_per_day
        tokens_limit = self._settings.jobs_tokens_per_day
        if pages_limit is None and tokens_limit is None:
            return
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self._engine.connect() as conn:
            used_pages, used_tokens = await jobs.usage_since(
                conn, api_key_id=principal.api_key_id, user_id=principal.user_id, since=since
            )
        if pages_limit is not None and used_pages + pages > pages_limit:
            raise QuotaExceeded(
                f"This job's {pages} pages would exceed the daily page quota "
                f"({used_pages} of {pages_limit} used)",
                code="page_quota_exceeded",
            )
        if tokens_limit is not None and used_tokens >= tokens_limit:
            raise QuotaExceeded(
                f"The daily LLM token quota of jobs is spent ({used_tokens} of {tokens_limit})",
                code="token_quota_exceeded",
            )

    async def get(self, principal: Principal, job_id: str) -> Any:
        async with self._engine.connect() as conn:
            row = await jobs.get(conn, job_id)
        if row is None or not (principal.is_admin or row.user_id == principal.user_id):
            raise NotFound(f"No job with id {job_id!r}", param="id", code="job_not_found")
        return row

    async def list(
        self, principal: Principal, *, limit: int, status: str | None, everyone: bool
    ) -> list[Any]:
        async with self._engine.connect() as conn:
            return list(
                await jobs.list_jobs(
                    conn,
                    user_id=principal.user_id,
                    everyone=everyone and principal.is_admin,
                    limit=limit,
                    status=status,
                )
            )

    async def cancel(self, principal: Principal, job_id: str) -> Any:
        row = await self.get(principal, job_id)
        async with self._engine.begin() as conn:
            cancelled = await jobs.cancel(conn, job_id=job_id)
        if not cancelled:
            raise Conflict(f"Job {job_id} already ended ({row.status})", code="job_finished")
        discard(Path(row.file_path) if row.file_path else None)
        log.info("job_cancelled", job_id=job_id)
        return await self.get(principal, job_id)


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4096)


def _suffix(kind: str) -> str:
    return {"image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif", "application/pdf": ".pdf"}.get(
        kind, ".txt"
    )


def job_view(row: Any) -> dict[str, Any]:
    """The job object of the API (no result: ``GET /v1/jobs/{id}/result``)."""

    def ts(value: datetime | None) -> int | None:
        return int(value.timestamp()) if value is not None else None

    return {
        "id": row.id,
        "object": "job",
        "type": row.type,
        "status": row.status,
        "progress": row.progress or {},
        "created_at": ts(row.created_at),
        "started_at": ts(row.started_at),
        "finished_at": ts(row.finished_at),
        "pages": row.pages,
        "attempts": row.attempts,
        "file": {"name": row.file_name, "content_type": row.content_type, "size_bytes": row.size_bytes},
        "usage": {"pages": row.pages, "tokens": row.tokens},
        "error": row.error,
        "result_url": f"/v1/jobs/{row.id}/result" if row.status == "succeeded" else None,
    }
