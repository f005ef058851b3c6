"""Transcription providers (docs/audio.md).

- :class:`OpenAITranscriber`: relays the upload as ``multipart/form-data`` to any OpenAI-compatible
  ``POST {base_url}/audio/transcriptions`` (faster-whisper-server / Speaches, vLLM, OpenAI) and
  returns its answer as is (JSON, or the text of ``text``/``srt``/``vtt``).
- :class:`PocketSphinxTranscriber`: the offline engine, CMU PocketSphinx 5 with the US-English
  acoustic model, dictionary and language model shipped in its PyPI wheel (no model hub).
  English only; measured in docs/audio.md.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from gateway.audio.formats import decode_pcm16
from gateway.config.audio import TranscriptionModelConfig
from gateway.errors import (
    InvalidRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)


@dataclass(frozen=True, slots=True)
class TranscriptionParams:
    language: str | None = None
    prompt: str | None = None
    response_format: str = "json"
    temperature: float | None = None
    timestamp_granularities: tuple[str, ...] = ()


@dataclass(slots=True)
class Transcript:
    """What a provider answered: ``body`` is the JSON object (``json``/``verbose_json``) or the text
    (``text``/``srt``/``vtt``) in the asked format; ``text`` is the plain transcript."""

    text: str
    body: dict[str, Any] | str
    language: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)


class Transcriber(Protocol):
    name: str

    async def transcribe(
        self,
        path: Path,
        *,
        kind: str,
        file_name: str,
        duration_s: float,
        params: TranscriptionParams,
        progress: Callable[[float], None] | None = None,
    ) -> Transcript: ...

    async def aclose(self) -> None: ...


class OpenAITranscriber:
    def __init__(self, name: str, config: TranscriptionModelConfig, *, api_key: str | None) -> None:
        if not config.base_url:
            raise ValueError(f"audio.{name}: provider openai needs base_url")
        self.name = name
        self.model = config.model or name
        self.url = config.base_url.rstrip("/") + "/audio/transcriptions"
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s, connect=5.0))

    async def transcribe(
        self,
        path: Path,
        *,
        kind: str,
        file_name: str,
        duration_s: float,
        params: TranscriptionParams,
        progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        data: list[tuple[str, str]] = [("model", self.model), ("response_format", params.response_format)]
        if params.language:
            data.append(("language", params.language))
        if params.prompt:
            data.append(("prompt", params.prompt))
        if params.temperature is not None:
            data.append(("temperature", repr(params.temperature)))
        data.extend(("timestamp_granularities[]", g) for g in params.timestamp_granularities)
        content = await asyncio.to_thread(path.read_bytes)
        try:
            response = await self._client.post(
                self.url,
                data=dict(data) if not params.timestamp_granularities else _multi(data),
                files={"file": (file_name, content, kind)},
                headers=self._headers,
            )
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self.name}: the transcription server timed out", target=self.name
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"{self.name}: the transcription server is unreachable ({type(exc).__name__})",
                target=self.name,
            ) from exc
        if response.status_code >= 400:
            raise _upstream_error(self.name, response)
        if params.response_format in ("text", "srt", "vtt"):
            text = response.text
            return Transcript(text=text if params.response_format == "text" else "", body=text)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise ProviderBadResponse(f"{self.name}: the answer is not JSON", target=self.name) from exc
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise ProviderBadResponse(f"{self.name}: the answer has no 'text'", target=self.name)
        return Transcript(
            text=body["text"],
            body=body,
            language=body.get("language") if isinstance(body.get("language"), str) else None,
            segments=list(body.get("segments") or []),
            words=list(body.get("words") or []),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _multi(data: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in data:
        out.setdefault(key, []).append(value)
    return out


def _upstream_error(name: str, response: httpx.Response) -> ProviderError:
    message = response.text[:500]
    upstream_type = None
    try:
        error = orjson.loads(response.content).get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            upstream_type = error.get("type") if isinstance(error.get("type"), str) else None
        elif isinstance(error, str):
            message = error
    except (orjson.JSONDecodeError, AttributeError):
        pass
    text = f"{name}: the transcription server answered {response.status_code}: {message}"
    if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 408, 429):
        return ProviderRejected(
            text, target=name, upstream_status=response.status_code, upstream_type=upstream_type
        )
    if response.status_code == 504:
        return ProviderTimeout(text, target=name, upstream_status=response.status_code)
    return ProviderError(text, target=name, upstream_status=response.status_code)


_FRAME_S = 0.01
"""PocketSphinx segments count 10 ms frames."""
_CHUNK_S = 20.0
"""Long audio is decoded in utterances of this length (progress is reported after each)."""


class PocketSphinxTranscriber:
    """In-process, CPU only; one decoder per call (a decoder is not thread-safe), at most
    ``concurrency`` at once."""

    def __init__(self, name: str, config: TranscriptionModelConfig, *, concurrency: int = 1) -> None:
        engine = config.model or "pocketsphinx-en-us"
        if engine != "pocketsphinx-en-us":
            raise ValueError(f"audio.{name}: unknown local engine {engine!r}; available: pocketsphinx-en-us")
        self.name = name
        self.languages = ("en",)
        self._slots = asyncio.Semaphore(concurrency)

    async def transcribe(
        self,
        path: Path,
        *,
        kind: str,
        file_name: str,
        duration_s: float,
        params: TranscriptionParams,
        progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        if params.language and params.language.lower().split("-")[0] != "en":
            raise InvalidRequest(
                f"Model {self.name!r} (PocketSphinx) transcribes English only, not {params.language!r}",
                param="language",
                code="unsupported_language",
            )
        async with self._slots:
            segments = await asyncio.to_thread(_recognise, path, kind, progress)
        text = " ".join(s["text"] for s in segments if s["text"])
        words = [w for s in segments for w in s.pop("words")]
        return Transcript(text=text, body={"text": text}, language="en", segments=segments, words=words)

    async def aclose(self) -> None:
        return None


_DECODER_LOCK = threading.Lock()


def _recognise(path: Path, kind: str, progress: Callable[[float], None] | None) -> list[dict[str, Any]]:
    from pocketsphinx import Decoder

    pcm = decode_pcm16(path, kind)
    with _DECODER_LOCK:  # building a decoder loads ~40 MB of model files; do it one at a time
        decoder = Decoder(samprate=16000, loglevel="FATAL")
    rate = 16000
    step = int(_CHUNK_S * rate)
    segments: list[dict[str, Any]] = []
    for offset in range(0, max(pcm.size, 1), step):
        chunk = pcm[offset : offset + step]
        base = offset / rate
        decoder.start_utt()
        decoder.process_raw(chunk.tobytes(), full_utt=True)
        decoder.end_utt()
        words = [
            {
                "word": seg.word,
                "start": round(base + seg.start_frame * _FRAME_S, 2),
                "end": round(base + seg.end_frame * _FRAME_S, 2),
            }
            for seg in decoder.seg()
            if not seg.word.startswith(("<", "[")) and seg.word != "<sil>"
        ]
        for w in words:
            w["word"] = w["word"].split("(")[0]  # alternative pronunciations: "the(2)"
        if words:
            segments.append(
                {
                    "id": len(segments),
                    "start": round(base, 2),
                    "end": round(base + chunk.size / rate, 2),
                    "text": " ".join(w["word"] for w in words),
                    "words": words,
                }
            )
        if progress is not None:
            progress(min(1.0, (offset + chunk.size) / max(pcm.size, 1)))
    return segments


def build_transcribers(
    models: Mapping[str, TranscriptionModelConfig], env: Mapping[str, str]
) -> dict[str, Transcriber]:
    out: dict[str, Transcriber] = {}
    for name, config in models.items():
        if config.enabled_if_env and not env.get(config.enabled_if_env):
            continue
        if config.provider == "local":
            out[name] = PocketSphinxTranscriber(name, config)
        else:
            api_key = env.get(config.api_key_env) if config.api_key_env else None
            out[name] = OpenAITranscriber(name, config, api_key=api_key)
    return out
