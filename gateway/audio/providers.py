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
import multiprocessing
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
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
    """Runs in a child process (PocketSphinx holds the GIL while it decodes: in a thread it would
    stall the gateway's event loop for seconds), ``concurrency`` processes at most; the audio is
    decoded there too and recognised in utterances of ``_CHUNK_S``, progress reported after each."""

    def __init__(self, name: str, config: TranscriptionModelConfig, *, concurrency: int = 1) -> None:
        engine = config.model or "pocketsphinx-en-us"
        if engine != "pocketsphinx-en-us":
            raise ValueError(f"audio.{name}: unknown local engine {engine!r}; available: pocketsphinx-en-us")
        self.name = name
        self.languages = ("en",)
        self._concurrency = concurrency
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(concurrency)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._concurrency, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

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
        segments: list[dict[str, Any]] = []

        def add(base: float, seconds: float, words: list[dict[str, Any]], done: int, of: int) -> None:
            if words:
                segments.append(
                    {
                        "id": len(segments),
                        "start": round(base, 2),
                        "end": round(base + seconds, 2),
                        "text": " ".join(w["word"] for w in words),
                        "words": words,
                    }
                )
            if progress is not None:
                progress(done / of)

        async with self._slots:
            if multiprocessing.current_process().daemon:
                await _recognise_in_subprocess(path, kind, add)
            else:
                loop = asyncio.get_running_loop()
                pool = self._executor()
                chunks = await loop.run_in_executor(pool, _decode_chunks, str(path), kind)
                for index, (base, pcm) in enumerate(chunks):
                    words = await loop.run_in_executor(pool, _recognise_chunk, pcm, base, index == 0)
                    add(base, len(pcm) / 2 / 16000, words, index + 1, len(chunks))
        text = " ".join(s["text"] for s in segments if s["text"])
        all_words = [w for s in segments for w in s.pop("words")]
        return Transcript(text=text, body={"text": text}, language="en", segments=segments, words=all_words)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


async def _recognise_in_subprocess(
    path: Path, kind: str, add: Callable[[float, float, list[dict[str, Any]], int, int], None]
) -> None:
    """The engine in a plain child process (``python -m gateway.audio.providers``), one JSON line per
    utterance. A Celery prefork worker's process is daemonic: ``multiprocessing`` refuses it children
    (and billiard's authentication key cannot be pickled for a spawned pool), so the pool is not an
    option there; a ``transcription`` job on Celery failed at its first chunk before this."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.audio.providers",
        str(path),
        kind,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        async for line in child.stdout:
            item = orjson.loads(line)
            add(
                float(item["base"]),
                float(item["seconds"]),
                list(item["words"]),
                int(item["done"]),
                int(item["of"]),
            )
        err = await child.stderr.read() if child.stderr is not None else b""
        if await child.wait() != 0:
            raise ProviderError(
                f"the speech engine's process failed: {err.decode(errors='replace')[-300:]}",
                target="pocketsphinx",
            )
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


def _recognise_file(path: str, kind: str) -> None:
    """``python -m gateway.audio.providers PATH KIND``: each utterance's words as a JSON line."""
    chunks = _decode_chunks(path, kind)
    for index, (base, pcm) in enumerate(chunks):
        words = _recognise_chunk(pcm, base, index == 0)
        row = {
            "base": base,
            "seconds": len(pcm) / 2 / 16000,
            "words": words,
            "done": index + 1,
            "of": len(chunks),
        }
        sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
        sys.stdout.buffer.flush()


_DECODER: Any = None
_INITIAL_CMN: str = ""


def _decode_chunks(path: str, kind: str) -> list[tuple[float, bytes]]:
    """In the engine's process: the file as 16 kHz mono PCM cut into utterances."""
    pcm = decode_pcm16(Path(path), kind)
    step = int(_CHUNK_S * 16000)
    return [
        (offset / 16000, pcm[offset : offset + step].tobytes()) for offset in range(0, max(pcm.size, 1), step)
    ]


def _recognise_chunk(pcm: bytes, base: float, first: bool) -> list[dict[str, Any]]:
    """In the engine's process: one utterance's words with their times (the decoder is built once
    per process; ``first`` starts a new audio file)."""
    global _DECODER, _INITIAL_CMN
    from pocketsphinx import Decoder

    if _DECODER is None:
        # dither: digital silence (exact zeros, as in synthesized or gated audio) wrecks the energy
        # features without it (measured: 0.88 → 0.38 WER on one sentence)
        _DECODER = Decoder(samprate=16000, loglevel="FATAL", dither=True, seed=1)
        _INITIAL_CMN = _DECODER.get_cmn()
    elif first:  # a new file: forget the previous file's cepstral mean (built once: ~1 s saved)
        _DECODER.set_cmn(_INITIAL_CMN)
    decoder = _DECODER
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [
        {
            "word": seg.word.split("(")[0],  # alternative pronunciations: "the(2)"
            "start": round(base + seg.start_frame * _FRAME_S, 2),
            "end": round(base + seg.end_frame * _FRAME_S, 2),
        }
        for seg in decoder.seg()
        if not seg.word.startswith(("<", "["))
    ]


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


if __name__ == "__main__":
    _recognise_file(sys.argv[1], sys.argv[2])
