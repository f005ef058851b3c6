"""A fake OpenAI-compatible transcription server (what faster-whisper-server / vLLM expose): a real
uvicorn on 127.0.0.1 parsing the real ``multipart/form-data`` wire format of
``POST /v1/audio/transcriptions``; it answers a fixed transcript in the asked ``response_format``
and keeps every request's fields and file bytes for the test to check."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from tests.support.ports import listening_socket

TRANSCRIPT = "the quarterly report is due on friday"


@dataclass
class Seen:
    fields: dict[str, list[str]]
    file_name: str | None
    content_type: str | None
    data: bytes
    authorization: str | None


@dataclass
class FakeTranscriber:
    url: str
    seen: list[Seen] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)


def _app(state: FakeTranscriber) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/audio/transcriptions")
    async def transcribe(request: Request) -> Response:
        form = await request.form()
        fields: dict[str, list[str]] = {}
        upload: Any = None
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                upload = value
            else:
                fields.setdefault(key, []).append(str(value))
        data = await upload.read() if upload is not None else b""
        await form.close()  # the spooled upload files
        state.seen.append(
            Seen(
                fields,
                getattr(upload, "filename", None),
                getattr(upload, "content_type", None),
                data,
                request.headers.get("authorization"),
            )
        )
        if state.fail_next:
            status = state.fail_next.pop(0)
            return JSONResponse(
                {"error": {"message": "upstream says no", "type": "invalid_request_error"}},
                status_code=status,
            )
        if upload is None or not fields.get("model"):
            return JSONResponse({"error": {"message": "file and model are required"}}, status_code=400)
        fmt = fields.get("response_format", ["json"])[-1]
        if fmt == "text":
            return PlainTextResponse(TRANSCRIPT + "\n")
        if fmt in ("srt", "vtt"):
            head = "WEBVTT\n\n" if fmt == "vtt" else "1\n"
            sep = "." if fmt == "vtt" else ","
            return PlainTextResponse(f"{head}00:00:00{sep}000 --> 00:00:02{sep}500\n{TRANSCRIPT}\n")
        if fmt == "verbose_json":
            return JSONResponse(
                {
                    "task": "transcribe",
                    "language": fields.get("language", ["english"])[-1],
                    "duration": 2.5,
                    "text": TRANSCRIPT,
                    "segments": [{"id": 0, "start": 0.0, "end": 2.5, "text": TRANSCRIPT}],
                }
            )
        return JSONResponse({"text": TRANSCRIPT})

    return app


@contextlib.contextmanager
def running_fake_transcriber() -> Iterator[FakeTranscriber]:
    sock = listening_socket(64)
    port = sock.getsockname()[1]
    state = FakeTranscriber(url=f"http://127.0.0.1:{port}/v1")
    server = uvicorn.Server(uvicorn.Config(_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not server.started:
        time.sleep(0.05)
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
