"""The streamed output guard over upstream chunks: hold whole chunks, not text (issue #20).

The guard releases text a little behind the model (it holds back what may still belong to a match).
Over an OpenAI-compatible upstream's chunks (``Delta.frames``) that would move text between chunks;
instead each chunk waits, whole, until the guard has released all of its text. When the released
text is the chunk's own — the common case — the chunk goes on unchanged, so the client gets the
upstream's chunks as sent, only a word or so later. When the guard changed the text of a choice
(redaction, un-masked PII), that choice falls back to carrying the guard's text in its chunks as it
is released (``frames.patch``): every chunk still goes on, in order, with all its other fields.
Tool-call arguments, guarded per call, always ride the chunks that carried them (``patch``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from gateway.providers.base import Delta
from gateway.providers.frames import patch


def _with_calls(delta: Delta, calls: list[dict[str, Any]] | None) -> Delta:
    return delta if calls == delta.tool_calls else patch(delta, delta.content, calls)


def _split(delta: Delta, cleared: int) -> tuple[Delta | None, Delta]:
    """A text delta of several chunks, cut after the leading chunks whose text fits in ``cleared``
    characters: (those chunks, or ``None``; the rest)."""
    if len(delta.frames) < 2:
        return None, delta
    taken = 0
    cut = 0
    for position, frame in enumerate(delta.frames):
        choices = frame.get("choices") or ()
        body = choices[0].get("delta") if choices and isinstance(choices[0], dict) else None
        piece = body.get("content") if isinstance(body, dict) else None
        size = len(piece) if isinstance(piece, str) else 0
        if taken + size > cleared:
            break
        taken += size
        cut = position + 1
    if cut == 0 or cut == len(delta.frames) or taken == 0:
        return None, delta
    own = delta.content or ""
    ready = Delta(content=own[:taken], index=delta.index, frames=delta.frames[:cut])
    return ready, replace(delta, content=own[taken:], frames=delta.frames[cut:])


class FrameHold:
    """Chunks waiting for the guard, in arrival order (one queue: the chunks' order is kept)."""

    __slots__ = ("closed", "diverged", "queue", "released")

    def __init__(self) -> None:
        self.queue: deque[tuple[Delta, list[dict[str, Any]] | None]] = deque()
        self.released: dict[int, str] = {}
        """Per choice: text the guard released that no held chunk has taken yet."""
        self.diverged: set[int] = set()
        """Choices whose released text is not their chunks' own (then ``patch`` carries it)."""
        self.closed: set[int] = set()
        """Choices whose guard has released everything (finished)."""

    def add_text(self, index: int, text: str | None) -> None:
        if text:
            self.released[index] = self.released.get(index, "") + text

    def push(
        self, delta: Delta, text: str | None, calls: list[dict[str, Any]] | None, *, closed: bool
    ) -> list[Delta]:
        """``delta`` arrived; ``text`` is what the guard released on it (its own and earlier text),
        ``calls`` its guarded tool calls. The chunks that may go on now, in order."""
        self.add_text(delta.index, text)
        if closed:
            self.closed.add(delta.index)
        if not self.queue and not delta.content and not self.released.get(delta.index):
            return [_with_calls(delta, calls)]  # nothing held, no text to wait for (the usual non-text chunk)
        self.queue.append((delta, calls))
        return self.drain()

    def drain(self, *, final: bool = False) -> list[Delta]:
        """The held chunks that may go on; ``final``: all of them (the stream ended), and any text
        left over in chunks of Prism's own."""
        out: list[Delta] = []
        queue, released = self.queue, self.released
        while queue:
            delta, calls = queue[0]
            index = delta.index
            own = delta.content or ""
            pending = released.get(index, "")
            if index not in self.diverged:
                if own and pending.startswith(own):
                    released[index] = pending[len(own) :]
                    queue.popleft()
                    out.append(_with_calls(delta, calls))
                    continue
                if own and own.startswith(pending) and index not in self.closed and not final:
                    ready, rest = _split(delta, len(pending))
                    if ready is not None:  # its leading chunks are cleared: they go on now
                        released[index] = pending[len(ready.content or "") :]
                        queue[0] = (rest, calls)
                        out.append(ready)
                    break  # the guard still holds part of this chunk's text
                if not own and not (pending and (delta.finish_reason is not None or final)):
                    queue.popleft()
                    out.append(_with_calls(delta, calls))
                    continue
                self.diverged.add(index)
            released[index] = ""  # whatever the guard released so far rides this chunk
            queue.popleft()
            out.append(patch(delta, pending or None, calls))
        if final:
            for index, text in sorted(released.items()):
                if text:
                    out.append(Delta(content=text, index=index))
            released.clear()
        return out
