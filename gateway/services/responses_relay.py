"""The chat flow's SSE relay, re-framed as the Responses API's event stream.

``translate`` reads the chat relay's bytes (``services/delivery.py``: guard filters applied, usage
record on disk before its last frame, an error frame on a failure), splits them into frames and
feeds ``ResponsesStream`` (the event state machine, ``responses_stream.py``); one write out per
write in. It always closes the relay, so the relay's own accounting runs however the client leaves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from gateway.services.responses_stream import ResponsesStream


def chat_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete ``data:`` payloads in ``buffer`` and the incomplete rest."""
    frames: list[bytes] = []
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return frames, buffer
        block, buffer = buffer[:end], buffer[end + 2 :]
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                frames.append(line[5:].strip())


async def translate(chat: AsyncIterator[bytes], stream: ResponsesStream) -> AsyncIterator[bytes]:
    """Chat SSE bytes → Responses SSE bytes; one write per chat write (frames are batched as read)."""
    started = False
    buffer = b""
    done = False
    try:  # the relay's own ``finally`` (usage record, metrics) always runs: it is closed below
        async for data in chat:
            frames, buffer = chat_frames(buffer + data)
            events: list[bytes] = []
            for frame in frames:
                if frame == b"[DONE]":
                    done = True
                    events += await stream.finished()
                    continue
                payload = orjson.loads(frame)
                if not isinstance(payload, dict):
                    continue
                if not started:
                    started = True
                    stream.model = str(payload.get("model") or stream.model)
                    events.append(stream.event("response.created", response=stream.snapshot("in_progress")))
                    events.append(
                        stream.event("response.in_progress", response=stream.snapshot("in_progress"))
                    )
                if isinstance(payload.get("error"), dict):
                    done = True
                    events += stream.failed(payload["error"])
                    continue
                events += stream.on_chunk(payload)
            if events:
                yield b"".join(events)
        if not done:
            failure = {"code": "stream_incomplete", "message": "The model's stream ended before it finished"}
            prefix = (
                [] if started else [stream.event("response.created", response=stream.snapshot("in_progress"))]
            )
            yield b"".join([*prefix, *stream.failed(failure)])
    finally:
        close = getattr(chat, "aclose", None)
        if close is not None:
            await close()
