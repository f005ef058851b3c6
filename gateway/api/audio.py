"""OpenAI-compatible ``POST /v1/audio/transcriptions`` (docs/audio.md): a synchronous transcription of
short audio (up to ``GATEWAY_AUDIO_SYNC_MAX_SECONDS``); longer audio is refused with 413
``audio_too_long`` naming the job to submit instead (``POST /v1/jobs`` with ``type=transcription``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from gateway.audio import formats, metrics
from gateway.audio.service import (
    AudioModels,
    charge,
    check_language,
    cost,
    parse_params,
    refund,
    render,
    transcribe,
)
from gateway.deps import AppStateDep, PrincipalDep
from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge, ServiceUnavailable
from gateway.jobs.uploads import discard, read_multipart
from gateway.lifespan import AppState
from gateway.security.principal import Principal
from gateway.usage.record import UsageRecord, UsageStatus

router = APIRouter(prefix="/v1", tags=["openai"])

_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": formats.ACCEPTED},
                        "model": {"type": "string"},
                        "language": {"type": "string", "description": "ISO-639-1, e.g. en, ko"},
                        "prompt": {"type": "string"},
                        "response_format": {
                            "type": "string",
                            "enum": ["json", "text", "verbose_json", "srt", "vtt"],
                        },
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["word", "segment"]},
                        },
                    },
                }
            }
        },
    }
}


def _models(state: AppState) -> AudioModels:
    models: AudioModels | None = getattr(state, "audio", None)
    if models is None or state.accounts is None:
        raise ServiceUnavailable("Speech-to-text is not served by this instance")
    return models


@router.post("/audio/transcriptions", openapi_extra=_SCHEMA, response_model=None)
async def create_transcription(request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    started = time.perf_counter()
    usage: dict[str, Any] = {}
    try:
        response = await _transcribe(request, state, principal, usage)
    except GatewayError as exc:
        if exc.status_code < 500:
            metrics.AUDIO_REJECTED.labels(reason=str(exc.status_code)).inc()
        _record(state, request, principal, started, usage, error=exc)
        raise
    _record(state, request, principal, started, usage)
    return response


async def _transcribe(
    request: Request, state: AppState, principal: Principal, usage: dict[str, Any]
) -> Response:
    models = _models(state)
    assert state.accounts is not None
    settings = state.settings
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "POST /v1/audio/transcriptions takes multipart/form-data (fields file, model, ...)",
            code="invalid_content_type",
        )
    upload = await read_multipart(
        request.stream(),
        content_type=content_type,
        storage=settings.jobs_storage_dir / "audio",
        max_bytes=settings.audio_max_upload_bytes,
    )
    try:
        if upload.path is None:
            raise InvalidRequest(
                "Missing required field 'file'", param="file", code="missing_required_parameter"
            )
        if not upload.fields.get("model"):
            raise InvalidRequest(
                "Missing required field 'model'", param="model", code="missing_required_parameter"
            )
        params = parse_params({**upload.fields, **upload.repeated})
        usage["model_requested"] = upload.fields["model"][:128]
        name, config, transcriber = models.resolve(upload.fields["model"], principal)
        usage.update(model_served=name, provider=config.provider)
        request.state.metric_model = name
        check_language(name, config, params)
        head = await asyncio.to_thread(_head, upload.path)
        if not head:
            raise InvalidRequest("The uploaded file is empty", param="file", code="invalid_audio")
        kind = formats.check_kind(head, declared=formats.declared_kind(upload.file_name, upload.content_type))
        info = await asyncio.to_thread(formats.probe, upload.path, kind)
        limit = settings.audio_sync_max_seconds
        if info.duration_s > limit:
            raise PayloadTooLarge(
                f"The audio is {info.duration_s:.1f} s long; this endpoint transcribes up to {limit:g} s. "
                "Submit longer audio as a job: POST /v1/jobs with type=transcription and the same file",
                param="file",
                code="audio_too_long",
            )
        price = cost(config, info.duration_s)
        request_id = request.state.request_id
        await charge(
            state.accounts.engine,
            settings,
            principal,
            request_id=request_id,
            seconds=info.duration_s,
            model=name,
            cost_usd=price,
        )
        try:
            transcript = await transcribe(
                name,
                transcriber,
                upload.path,
                kind=kind,
                file_name=upload.file_name or f"audio{formats.KINDS[kind]}",
                duration_s=info.duration_s,
                params=params,
                mode="sync",
            )
        except BaseException:
            await asyncio.shield(refund(state.accounts.engine, request_id))
            raise
        usage["cost_usd"] = price
    finally:
        discard(upload.path)
    body, media_type = render(transcript, params, duration_s=info.duration_s, provider=config.provider)
    headers = {"x-prism-model": name, "x-prism-audio-seconds": f"{info.duration_s:.3f}"}
    if isinstance(body, dict):
        return Response(orjson.dumps(body), media_type=media_type, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _head(path: Any) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


def _record(
    state: AppState,
    request: Request,
    principal: Principal,
    started: float,
    usage: dict[str, Any],
    *,
    error: GatewayError | None = None,
) -> None:
    if state.accounts is None:
        return
    rejected = error is not None and error.status_code < 500
    state.accounts.recorder.record(
        UsageRecord(
            request_id=request.state.request_id,
            client_request_id=getattr(request.state, "client_request_id", None),
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            tier=principal.tier,
            route="audio.transcriptions",
            model_requested=usage.get("model_requested"),
            model_served=usage.get("model_served"),
            provider=usage.get("provider"),
            status=UsageStatus.OK
            if error is None
            else (UsageStatus.REJECTED if rejected else UsageStatus.ERROR),
            http_status=200 if error is None else error.status_code,
            error_type=None if error is None else error.error_type,
            cost_usd=float(usage.get("cost_usd", 0.0)),
            latency_ms=(time.perf_counter() - started) * 1000,
            attempts=1 if usage.get("provider") else 0,
        )
    )
