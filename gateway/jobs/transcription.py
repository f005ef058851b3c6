"""The ``transcription`` job (docs/audio.md): one durable step that transcribes the uploaded audio
with the model chosen at submit, reporting progress in audio seconds. The result is the
``verbose_json`` transcript (text, language, duration, segments, words when asked), plus ``srt`` or
``vtt`` when ``options.response_format`` asked for subtitles, and the audio usage."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

from gateway.agent.durable.definitions import DurableGraph
from gateway.agent.durable.pipeline import Step, StepContext, build_pipeline
from gateway.audio import service
from gateway.config.routing import load_config
from gateway.jobs.registry import AUDIO_KEY, PipelineContext
from gateway.pipelines.llm import principal_from


def _models(context: PipelineContext) -> service.AudioModels:
    if service.ACTIVE is not None:  # the gateway's own (in-process worker)
        return service.ACTIVE
    import os

    config = load_config(context.settings.config).audio  # a Celery worker: the routing file
    service.ACTIVE = service.AudioModels(lambda: config, os.environ)
    return service.ACTIVE


def transcription_pipeline(context: PipelineContext) -> DurableGraph:
    async def transcribe(value: dict[str, Any], step: StepContext) -> dict[str, Any]:
        options = dict(value.get("options") or {})
        audio = options.get(AUDIO_KEY) or {}
        fields = {k: str(v) for k, v in options.items() if isinstance(v, str | int | float)}
        if isinstance(options.get("timestamp_granularities"), list):
            fields["timestamp_granularities"] = ",".join(map(str, options["timestamp_granularities"]))
        asked = fields.get("response_format", "verbose_json")
        fields["response_format"] = "verbose_json"
        params = service.parse_params(fields)
        name, config, transcriber = _models(context).resolve(
            audio.get("model"), principal_from(value.get("principal"))
        )
        seconds = float(audio.get("seconds", 0.0))
        report = _progress_reporter(step, seconds)
        transcript = await service.transcribe(
            name,
            transcriber,
            Path(value["path"]),
            kind=value["content_type"],
            file_name=str(audio.get("file_name") or "audio"),
            duration_s=seconds,
            params=params,
            mode="job",
            progress=report,
        )
        body, _ = service.render(transcript, params, duration_s=seconds, provider=config.provider)
        result: dict[str, Any] = dict(body) if isinstance(body, dict) else {"text": transcript.text}
        result["model"] = name
        result["usage"] = {
            "type": "duration",
            "seconds": round(seconds, 3),
            "cost_usd": audio.get("cost_usd", 0.0),
        }
        if asked in ("srt", "vtt"):
            result[asked] = service.subtitles(_segments(result, transcript.segments), vtt=asked == "vtt")
        return result

    return build_pipeline("transcription", [Step("transcribe", transcribe)])


def _segments(result: dict[str, Any], fallback: list[dict[str, Any]]) -> list[dict[str, Any]]:
    segments = result.get("segments")
    if isinstance(segments, list) and segments:
        return [s for s in segments if isinstance(s, dict) and {"start", "end", "text"} <= s.keys()]
    return fallback


def _progress_reporter(step: StepContext, total_s: float) -> Any:
    """A callback the engine may call from its thread: it emits ``{"done", "of", "unit": "seconds"}``
    through the node's stream writer on the event loop (LangGraph's writer is a context variable)."""
    from langgraph.config import get_stream_writer

    try:
        writer = get_stream_writer()
    except RuntimeError:
        return None
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()

    def report(fraction: float) -> None:
        data = {
            "step": step.step,
            "done": round(fraction * total_s, 1),
            "of": round(total_s, 1),
            "unit": "seconds",
        }
        loop.call_soon_threadsafe(writer, data, context=context)

    return report
