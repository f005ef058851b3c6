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

from gateway.audio import formats as audio_formats
from gateway.audio import service as audio_service
from gateway.config.settings import Settings
from gateway.db.repositories import jobs
from gateway.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    ServiceUnavailable,
)
from gateway.jobs.inspection import count_pages
from gateway.jobs.registry import AUDIO_KEY, INTERNAL_TYPES, OWNER_KEY, JobType
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
        spec = self.types.get(name) if name not in INTERNAL_TYPES else None
        if spec is None:
            available = ", ".join(sorted(set(self.types) - INTERNAL_TYPES))
            raise InvalidRequest(
                f"Unknown job type {name!r}; available: {available}",
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
        job_id = uuid.uuid4().hex
        options = {k: v for k, v in sub.options.items() if k not in (OWNER_KEY, AUDIO_KEY)}
        audio_charged = False
        try:
            spec = self.job_type(sub.job_type)
            head = await asyncio.to_thread(_head, sub.path)
            if not head:
                raise InvalidRequest("The uploaded file is empty", param="file", code="invalid_file")
            if spec.input == "audio":
                kind = audio_formats.check_kind(
                    head, declared=audio_formats.declared_kind(sub.file_name, sub.content_type)
                )
                pages = 0
                await self._charge(principal, pages)
                options[AUDIO_KEY] = await self._admit_audio(principal, sub, kind, options, job_id)
                audio_charged = True
            else:
                kind = check_kind(
                    head,
                    declared=declared_kind(sub.file_name, sub.content_type),
                    accepts_text=spec.accepts_text,
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
            "options": {**options, OWNER_KEY: principal_json(principal)},
            "webhook_url": sub.webhook_url,
        }
        try:
            async with self._engine.begin() as conn:
                await jobs.create(conn, values)
        except jobs.IdempotencyConflict as exc:
            discard(final_path)
            if audio_charged:
                await audio_service.refund(self._engine, f"job-{job_id}")
            return await self.get(principal, exc.job_id), False
        except BaseException:
            discard(final_path)
            if audio_charged:
                await audio_service.refund(self._engine, f"job-{job_id}")
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

    async def _admit_audio(
        self, principal: Principal, sub: Submission, kind: str, options: dict[str, Any], job_id: str
    ) -> dict[str, Any]:
        """Measure the audio (400 when truncated or corrupt, 413 past ``GATEWAY_AUDIO_MAX_SECONDS``),
        resolve the model (404/403), and charge the daily audio quota (429): what the pipeline needs
        is kept in the job's options under ``_audio``."""
        models = audio_service.ACTIVE
        if models is None:
            raise ServiceUnavailable("Speech-to-text is not served by this instance")
        info = await asyncio.to_thread(audio_formats.probe, sub.path, kind)
        limit = self._settings.audio_max_seconds
        if info.duration_s > limit:
            raise PayloadTooLarge(
                f"The audio is {info.duration_s:.0f} s long; a transcription job takes up to {limit:g} s",
                param="file",
                code="audio_too_long",
            )
        fields = {k: str(v) for k, v in options.items() if isinstance(v, str | int | float)}
        if isinstance(options.get("timestamp_granularities"), list):
            fields["timestamp_granularities"] = ",".join(map(str, options["timestamp_granularities"]))
        fields.setdefault("response_format", "verbose_json")
        params = audio_service.parse_params(fields)
        model = options.get("model")
        name, config, _ = models.resolve(
            model if isinstance(model, str) else None, principal, default=self._settings.audio_default_model
        )
        audio_service.check_language(name, config, params)
        price = audio_service.cost(config, info.duration_s)
        await audio_service.charge(
            self._engine,
            self._settings,
            principal,
            request_id=f"job-{job_id}",
            seconds=info.duration_s,
            model=name,
            cost_usd=price,
            job_id=job_id,
        )
        return {
            "model": name,
            "seconds": info.duration_s,
            "cost_usd": price,
            "file_name": sub.file_name or f"audio{audio_formats.KINDS[kind]}",
        }

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
    known = {"image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif", "application/pdf": ".pdf"}
    return known.get(kind) or audio_formats.KINDS.get(kind, ".txt")


def job_view(row: Any) -> dict[str, Any]:
    """The job object of the API (no result: ``GET /v1/jobs/{id}/result``)."""

    def ts(value: datetime | None) -> int | None:
        return int(value.timestamp()) if value is not None else None

    return {
        "id": row.id,
        "object": "job",
        "type": row.type,
        "owner": {"user_id": row.user_id, "api_key_id": row.api_key_id},
        "status": row.status,
        "progress": row.progress or {},
        "created_at": ts(row.created_at),
        "started_at": ts(row.started_at),
        "finished_at": ts(row.finished_at),
        "pages": row.pages,
        "attempts": row.attempts,
        "file": {"name": row.file_name, "content_type": row.content_type, "size_bytes": row.size_bytes},
        "usage": _usage(row),
        "error": row.error,
        "result_url": f"/v1/jobs/{row.id}/result" if row.status == "succeeded" else None,
    }


def _usage(row: Any) -> dict[str, Any]:
    usage: dict[str, Any] = {"pages": row.pages, "tokens": row.tokens}
    audio = (row.options or {}).get(AUDIO_KEY)
    if isinstance(audio, dict):
        usage.update(
            audio_seconds=round(float(audio.get("seconds", 0.0)), 3), cost_usd=audio.get("cost_usd", 0.0)
        )
    return usage
