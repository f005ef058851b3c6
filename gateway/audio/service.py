"""The speech-to-text use case (docs/audio.md), shared by ``POST /v1/audio/transcriptions`` and the
``transcription`` job: resolve the model (404 / 403 as for chat), measure the audio, charge the
daily audio-seconds quota, call the provider inside a span, and render the answer.

The daily quota (``GATEWAY_AUDIO_SECONDS_PER_DAY``, per key, or per user without a key, per UTC
day) counts the ``audio_usage`` table, written when a transcription is admitted: synchronous ones
and jobs draw on the same allowance, and every replica sees it. A synchronous transcription whose
provider fails is refunded (its row deleted); a job is charged at submit, like its pages.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audio import metrics
from gateway.audio.providers import Transcriber, Transcript, TranscriptionParams, build_transcribers
from gateway.config.audio import TranscriptionModelConfig
from gateway.config.settings import Settings
from gateway.db.models import AudioUsage
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    QuotaExceeded,
)
from gateway.observability import tracing
from gateway.security.principal import Principal

log = structlog.get_logger("gateway.audio")

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
GRANULARITIES = ("word", "segment")
LANGUAGE_NAMES = {
    "en": "english",
    "ko": "korean",
    "ja": "japanese",
    "zh": "chinese",
    "de": "german",
    "fr": "french",
    "es": "spanish",
}


class AudioModels:
    """The configured transcription models, rebuilt when the routing config changes."""

    def __init__(
        self, config: Callable[[], Mapping[str, TranscriptionModelConfig]], env: Mapping[str, str]
    ) -> None:
        self._config = config
        self._env = env
        self._seen: Mapping[str, TranscriptionModelConfig] | None = None
        self._built: dict[str, Transcriber] = {}
        self._retired: list[Transcriber] = []

    def current(self) -> tuple[Mapping[str, TranscriptionModelConfig], dict[str, Transcriber]]:
        config = self._config()
        if config is not self._seen:
            self._retired.extend(self._built.values())
            self._built = build_transcribers(config, self._env)
            self._seen = config
        return config, self._built

    def resolve(
        self, name: str | None, principal: Principal, *, default: str | None = None
    ) -> tuple[str, TranscriptionModelConfig, Transcriber]:
        config, built = self.current()
        chosen = name or default or next(iter(built), None)
        if not chosen:
            raise InvalidRequest(
                "Missing required field 'model'", param="model", code="missing_required_parameter"
            )
        if chosen not in built:
            raise ModelNotFound(
                f"The model {chosen!r} does not exist or is not a transcription model"
                + (f"; available: {', '.join(sorted(built))}" if built else "; none is configured"),
                param="model",
                code="model_not_found",
            )
        if not principal.may_use(chosen):
            raise PermissionDenied(
                f"This key may not use the model {chosen!r}", param="model", code="model_not_allowed"
            )
        return chosen, config[chosen], built[chosen]

    async def aclose(self) -> None:
        for transcriber in [*self._built.values(), *self._retired]:
            await transcriber.aclose()
        self._built, self._retired, self._seen = {}, [], None


ACTIVE: AudioModels | None = None
"""The gateway's models, set by its lifespan: the in-process job worker uses them (a Celery worker
builds its own from the routing file)."""


def parse_params(fields: Mapping[str, str | list[str]]) -> TranscriptionParams:
    def one(name: str) -> str | None:
        value = fields.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        return value or None

    response_format = one("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"'response_format' must be one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
            code="invalid_value",
        )
    temperature: float | None = None
    raw_temperature = one("temperature")
    if raw_temperature is not None:
        try:
            temperature = float(raw_temperature)
        except ValueError:
            temperature = -1.0
        if not 0.0 <= temperature <= 1.0 or math.isnan(temperature):
            raise InvalidRequest(
                "'temperature' must be a number from 0 to 1", param="temperature", code="invalid_value"
            )
    granularities: list[str] = []
    for name in ("timestamp_granularities[]", "timestamp_granularities"):
        raw = fields.get(name)
        values = raw if isinstance(raw, list) else ([raw] if raw else [])
        for value in values:
            granularities.extend(v.strip() for v in value.split(",") if v.strip())
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad:
        raise InvalidRequest(
            f"'timestamp_granularities' takes word and segment, not {bad[0]!r}",
            param="timestamp_granularities",
            code="invalid_value",
        )
    if granularities and response_format != "verbose_json":
        raise InvalidRequest(
            "'timestamp_granularities' needs response_format verbose_json",
            param="timestamp_granularities",
            code="invalid_value",
        )
    language = one("language")
    if language is not None and not (2 <= len(language) <= 8 and language.replace("-", "").isalpha()):
        raise InvalidRequest(
            "'language' must be an ISO-639-1 code such as en or ko", param="language", code="invalid_value"
        )
    prompt = one("prompt")
    if prompt is not None and len(prompt) > 4000:
        raise InvalidRequest("'prompt' is longer than 4000 characters", param="prompt", code="invalid_value")
    return TranscriptionParams(
        language=language.lower() if language else None,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        timestamp_granularities=tuple(dict.fromkeys(granularities)),
    )


def check_language(name: str, config: TranscriptionModelConfig, params: TranscriptionParams) -> None:
    languages = config.languages or (("en",) if config.provider == "local" else ())
    if params.language and languages and params.language.split("-")[0] not in languages:
        raise InvalidRequest(
            f"Model {name!r} transcribes {', '.join(languages)}, not {params.language!r}",
            param="language",
            code="unsupported_language",
        )


def _owner(principal_key: str | None, user_id: str | None) -> Any:
    if principal_key:
        return AudioUsage.api_key_id == principal_key
    return AudioUsage.user_id.is_(None) if user_id is None else AudioUsage.user_id == user_id


async def charge(
    engine: AsyncEngine,
    settings: Settings,
    principal: Principal,
    *,
    request_id: str,
    seconds: float,
    model: str,
    cost_usd: float,
    job_id: str | None = None,
) -> None:
    """Count ``seconds`` against the key's daily audio quota (429 ``audio_quota_exceeded`` when
    they would pass it) and write the ``audio_usage`` row."""
    limit = settings.audio_seconds_per_day
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with engine.begin() as conn:
        if limit is not None:
            used = (
                await conn.execute(
                    select(func.coalesce(func.sum(AudioUsage.seconds), 0.0)).where(
                        _owner(principal.api_key_id, principal.user_id), AudioUsage.created_at >= since
                    )
                )
            ).scalar_one()
            if float(used) + seconds > limit:
                metrics.AUDIO_REJECTED.labels(reason="quota").inc()
                raise QuotaExceeded(
                    f"This audio's {seconds:.1f} s would exceed the daily audio quota "
                    f"({float(used):.1f} of {limit:g} s used)",
                    code="audio_quota_exceeded",
                )
        await conn.execute(
            insert(AudioUsage).values(
                request_id=request_id,
                user_id=principal.user_id,
                api_key_id=principal.api_key_id,
                model=model,
                seconds=seconds,
                cost_usd=cost_usd,
                job_id=job_id,
                created_at=datetime.now(UTC),
            )
        )


async def refund(engine: AsyncEngine, request_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(AudioUsage).where(AudioUsage.request_id == request_id))


def cost(config: TranscriptionModelConfig, seconds: float) -> float:
    return round(config.price_per_minute * seconds / 60.0, 8)


async def transcribe(
    name: str,
    transcriber: Transcriber,
    path: Path,
    *,
    kind: str,
    file_name: str,
    duration_s: float,
    params: TranscriptionParams,
    mode: str,
    progress: Callable[[float], None] | None = None,
) -> Transcript:
    """One provider call inside a span ``audio.transcription``, with its metrics."""
    started = time.perf_counter()
    outcome = "ok"
    with tracing.tracer().start_as_current_span(
        "audio.transcription",
        attributes={
            "prism.audio.model": name,
            "prism.audio.mode": mode,
            "prism.audio.format": kind,
            "prism.audio.duration_s": round(duration_s, 3),
            "prism.audio.response_format": params.response_format,
        },
    ) as span:
        try:
            return await transcriber.transcribe(
                path, kind=kind, file_name=file_name, duration_s=duration_s, params=params, progress=progress
            )
        except GatewayError as exc:
            outcome = exc.code or type(exc).__name__
            span.set_attribute("prism.audio.error", outcome)
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.AUDIO_TRANSCRIPTIONS.labels(
                model=name, mode=mode, outcome="ok" if outcome == "ok" else "error"
            ).inc()
            metrics.AUDIO_LATENCY.labels(model=name, mode=mode).observe(elapsed)
            if outcome == "ok":
                metrics.AUDIO_SECONDS.labels(model=name, mode=mode).inc(duration_s)
            log.info(
                "audio_transcribed",
                model=name,
                mode=mode,
                audio_s=round(duration_s, 2),
                latency_s=round(elapsed, 3),
                outcome=outcome,
            )


def render(
    transcript: Transcript, params: TranscriptionParams, *, duration_s: float, provider: str
) -> tuple[bytes | dict[str, Any], str]:
    """The answer in the asked ``response_format``: a JSON object, or text (``text``, ``srt``,
    ``vtt``) with its media type. An OpenAI-compatible upstream's own answer is kept as is."""
    usage = {"type": "duration", "seconds": math.ceil(duration_s)}
    fmt = params.response_format
    if provider == "openai":
        if isinstance(transcript.body, str):
            return transcript.body.encode(), "text/plain; charset=utf-8"
        relayed = dict(transcript.body)
        relayed.setdefault("usage", usage)
        return relayed, "application/json"
    if fmt == "text":
        return (transcript.text + "\n").encode(), "text/plain; charset=utf-8"
    if fmt == "json":
        return {"text": transcript.text, "usage": usage}, "application/json"
    if fmt == "verbose_json":
        language = transcript.language or params.language or "en"
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": LANGUAGE_NAMES.get(language, language),
            "duration": round(duration_s, 3),
            "text": transcript.text,
            "usage": usage,
        }
        if not params.timestamp_granularities or "segment" in params.timestamp_granularities:
            body["segments"] = [
                {
                    "id": s["id"],
                    "seek": 0,
                    "start": s["start"],
                    "end": s["end"],
                    "text": s["text"],
                    "tokens": [],
                    "temperature": params.temperature or 0.0,
                    "avg_logprob": 0.0,
                    "compression_ratio": 0.0,
                    "no_speech_prob": 0.0,
                }
                for s in transcript.segments
            ]
        if "word" in params.timestamp_granularities:
            body["words"] = transcript.words
        return body, "application/json"
    return subtitles(transcript.segments, vtt=fmt == "vtt").encode(), "text/plain; charset=utf-8"


def subtitles(segments: list[dict[str, Any]], *, vtt: bool) -> str:
    def stamp(seconds: float) -> str:
        ms = round(seconds * 1000)
        h, rest = divmod(ms, 3_600_000)
        m, rest = divmod(rest, 60_000)
        s, ms = divmod(rest, 1000)
        return f"{h:02d}:{m:02d}:{s:02d}{'.' if vtt else ','}{ms:03d}"

    blocks = []
    for i, segment in enumerate(segments, 1):
        timing = f"{stamp(segment['start'])} --> {stamp(segment['end'])}"
        blocks.append(f"{timing}\n{segment['text']}\n" if vtt else f"{i}\n{timing}\n{segment['text']}\n")
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(blocks)
