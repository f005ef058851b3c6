"""``/v1/jobs`` (docs/jobs.md): submit a file for a pipeline (multipart or JSON with base64), poll
it, fetch its result, cancel it, list one's jobs. A thin router over ``gateway/jobs/service.py``."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from gateway.deps import AppStateDep, PrincipalDep
from gateway.errors import Conflict, GatewayError, InvalidRequest, ServiceUnavailable, UnsupportedMediaType
from gateway.jobs.registry import INTERNAL_TYPES
from gateway.jobs.service import JobService, Submission, job_view
from gateway.jobs.uploads import Upload, discard, new_upload_path, read_multipart
from gateway.lifespan import AppState
from gateway.observability.metrics import JOBS_REJECTED
from gateway.security.principal import Principal
from gateway.usage.record import UsageRecord, UsageStatus

router = APIRouter(prefix="/v1", tags=["jobs"])

_SUBMIT_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["type", "file"],
                    "properties": {
                        "type": {"type": "string", "description": "ocr, summarize, document_analysis, ..."},
                        "file": {"type": "string", "format": "binary"},
                        "options": {"type": "string", "description": "a JSON object"},
                        "webhook_url": {"type": "string"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["type", "content"],
                    "properties": {
                        "type": {"type": "string"},
                        "content": {"type": "string", "description": "the file, base64"},
                        "filename": {"type": "string"},
                        "content_type": {"type": "string"},
                        "options": {"type": "object"},
                        "webhook_url": {"type": "string"},
                    },
                }
            },
        },
    }
}


def _service(state: AppState) -> JobService:
    service: JobService | None = getattr(state, "jobs", None)
    if service is None:
        raise ServiceUnavailable("Jobs are not served by this instance")
    return service


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _record(
    state: AppState,
    request: Request,
    principal: Principal,
    route: str,
    started: float,
    *,
    error: GatewayError | None = None,
) -> None:
    if state.accounts is None:
        return
    state.accounts.recorder.record(
        UsageRecord(
            request_id=request.state.request_id,
            client_request_id=getattr(request.state, "client_request_id", None),
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            tier=principal.tier,
            route=route,
            status=UsageStatus.OK if error is None else UsageStatus.REJECTED,
            http_status=200 if error is None else error.status_code,
            error_type=None if error is None else error.error_type,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    )


async def _recorded(
    state: AppState, request: Request, principal: Principal, route: str, call: Callable[[], Any]
) -> Any:
    started = time.perf_counter()
    try:
        result = await call()
    except GatewayError as exc:
        _record(state, request, principal, route, started, error=exc)
        raise
    _record(state, request, principal, route, started)
    return result


def _options(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                "'options' is not valid JSON", param="options", code="invalid_options"
            ) from exc
    if not isinstance(raw, dict):
        raise InvalidRequest("'options' must be a JSON object", param="options", code="invalid_options")
    return raw


def _webhook(raw: Any) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")) or len(raw) > 2000:
        raise InvalidRequest(
            "'webhook_url' must be an http(s) URL", param="webhook_url", code="invalid_webhook_url"
        )
    return raw


async def _read_submission(request: Request, service: JobService, max_bytes: int) -> Upload:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await read_multipart(
            request.stream(), content_type=content_type, storage=service.storage, max_bytes=max_bytes
        )
    if content_type.startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest("The body is not valid JSON", code="invalid_json") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object", code="invalid_json")
        content = body.get("content")
        if not isinstance(content, str) or not content:
            raise InvalidRequest(
                "Missing required field 'content' (the file, base64)",
                param="content",
                code="missing_required_parameter",
            )
        if len(content) > max_bytes * 4 // 3 + 4:
            from gateway.errors import PayloadTooLarge

            raise PayloadTooLarge(f"The file exceeds {max_bytes} bytes", param="content")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(
                "'content' is not valid base64", param="content", code="invalid_base64"
            ) from exc
        path = new_upload_path(service.storage)
        path.write_bytes(data)
        upload = Upload(path=path, size=len(data))
        upload.file_name = body.get("filename") if isinstance(body.get("filename"), str) else None
        upload.content_type = body.get("content_type") if isinstance(body.get("content_type"), str) else None
        upload.fields = {k: v for k, v in body.items() if k in ("type",) and isinstance(v, str)}
        upload.fields["options"] = (
            orjson.dumps(body.get("options")).decode() if body.get("options") is not None else ""
        )
        if body.get("webhook_url") is not None:
            upload.fields["webhook_url"] = (
                body["webhook_url"] if isinstance(body["webhook_url"], str) else "-"
            )
        return upload
    raise UnsupportedMediaType(
        "POST /v1/jobs takes multipart/form-data or application/json", code="unsupported_media_type"
    )


@router.post("/jobs", openapi_extra=_SUBMIT_SCHEMA, status_code=202, response_model=None)
async def submit_job(request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    service = _service(state)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters", param="Idempotency-Key")

    async def submit() -> Response:
        upload = await _read_submission(request, service, state.settings.jobs_max_upload_bytes)
        try:
            if upload.path is None:
                raise InvalidRequest(
                    "Missing required field 'file'", param="file", code="missing_required_parameter"
                )
            service.job_type(upload.fields.get("type"))
            options = _options(upload.fields.get("options"))
            webhook = _webhook(upload.fields.get("webhook_url"))
            replay = await service.existing(principal, key)
            if replay is not None:
                discard(upload.path)
                return _json(
                    job_view(replay),
                    202,
                    {"location": f"/v1/jobs/{replay.id}", "idempotent-replayed": "true"},
                )
        except BaseException:
            discard(upload.path)
            raise
        row, created = await service.submit(
            principal,
            Submission(
                job_type=upload.fields["type"],
                path=upload.path,
                file_name=upload.file_name,
                content_type=upload.content_type,
                size=upload.size,
                options=options,
                webhook_url=webhook,
                idempotency_key=key,
                request_id=request.state.request_id,
            ),
        )
        headers = {"location": f"/v1/jobs/{row.id}"}
        if not created:
            headers["idempotent-replayed"] = "true"
        return _json(job_view(row), 202, headers)

    try:
        return await _recorded(state, request, principal, "jobs.create", submit)  # type: ignore[no-any-return]
    except GatewayError as exc:
        JOBS_REJECTED.labels(status=str(exc.status_code)).inc()
        raise


@router.get("/jobs", response_model=None)
async def list_jobs(
    request: Request,
    state: AppStateDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: Annotated[str | None, Query(pattern="^(queued|running|succeeded|failed|cancelled)$")] = None,
    all: Annotated[bool, Query(description="admins: everyone's jobs")] = False,
) -> Response:
    service = _service(state)

    async def run() -> Response:
        rows = await service.list(principal, limit=limit, status=status, everyone=all or principal.is_admin)
        return _json({"object": "list", "data": [job_view(r) for r in rows], "has_more": len(rows) == limit})

    return await _recorded(state, request, principal, "jobs.list", run)  # type: ignore[no-any-return]


@router.get("/jobs/types", response_model=None)
async def list_job_types(request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    """The job types this gateway accepts on ``POST /v1/jobs`` and what input each takes (the
    built-ins plus ``GATEWAY_JOBS_TYPES``); ``evaluation`` jobs are started by ``/api/evaluations``."""
    service = _service(state)

    async def run() -> Response:
        data = [
            {"type": name, "input": spec.input}
            for name, spec in sorted(service.types.items())
            if name not in INTERNAL_TYPES
        ]
        return _json({"object": "list", "data": data})

    return await _recorded(state, request, principal, "jobs.types", run)  # type: ignore[no-any-return]


@router.get("/jobs/{job_id}", response_model=None)
async def get_job(job_id: str, request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    service = _service(state)

    async def run() -> Response:
        return _json(job_view(await service.get(principal, job_id)))

    return await _recorded(state, request, principal, "jobs.get", run)  # type: ignore[no-any-return]


@router.get("/jobs/{job_id}/result", response_model=None)
async def get_job_result(
    job_id: str, request: Request, state: AppStateDep, principal: PrincipalDep
) -> Response:
    service = _service(state)

    async def run() -> Response:
        row = await service.get(principal, job_id)
        if row.status != "succeeded":
            raise Conflict(f"Job {job_id} has no result: it is {row.status}", code=f"job_{row.status}")
        return _json({"id": row.id, "object": "job.result", "type": row.type, "result": row.result})

    return await _recorded(state, request, principal, "jobs.result", run)  # type: ignore[no-any-return]


@router.delete("/jobs/{job_id}", response_model=None)
async def cancel_job(job_id: str, request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    service = _service(state)

    async def run() -> Response:
        return _json(job_view(await service.cancel(principal, job_id)))

    return await _recorded(state, request, principal, "jobs.cancel", run)  # type: ignore[no-any-return]
