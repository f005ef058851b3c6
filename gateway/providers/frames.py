"""Upstream chunks carried through the flow as they were sent (``Delta.frames``).

An OpenAI-compatible upstream's ``chat.completion.chunk`` reaches the client as the upstream sent it
(docs/api.md, "Transparency"): the provider reads each chunk into a ``Delta`` for accounting and the
guard, and keeps the chunk itself. When the output guard changes text, ``patch`` writes the guard's
text back into the chunks, leaving every other field where it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.providers.base import Delta, Usage


def event_deltas(event: dict[str, Any], usage: Usage | None, pending: list[dict[str, Any]]) -> list[Delta]:
    """One upstream chunk → its deltas: one, or one per choice for a chunk holding several (each with
    the chunk's other fields). A chunk with nothing to account joins ``pending`` instead; ``pending``
    chunks lead the next delta's frames (and ``pending`` is emptied)."""
    choices = event.get("choices") or ()
    if len(choices) > 1:
        parts = [{**event, "choices": [choice]} for choice in choices]
        return [delta for part in parts for delta in event_deltas(part, usage, pending)]
    if not choices:
        if usage is None:
            pending.append(event)
            return []
        return [Delta(usage=usage, frames=_frames(pending, event))]
    choice = choices[0]
    body = choice.get("delta") or {}
    content = body.get("content") or None
    tool_calls = body.get("tool_calls") or None
    finish = choice.get("finish_reason") or None
    if not (content or tool_calls or finish or usage is not None or body.get("refusal")):
        pending.append(event)
        return []
    index = choice.get("index") or 0
    return [Delta(content, tool_calls, finish, usage, int(index), _frames(pending, event))]


def _frames(pending: list[dict[str, Any]], event: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    if not pending:
        return (event,)
    frames = (*pending, event)
    pending.clear()
    return frames


def plain_text(event: Any) -> tuple[int, str] | None:
    """``(choice index, text)`` of a chunk that carries only text for one choice (the bulk of a
    stream), else ``None``: the fast path of ``StreamState.batch``, which skips building a delta per
    such chunk."""
    if type(event) is not dict or "error" in event or event.get("usage"):
        return None
    choices = event.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason"):
        return None
    body = choice.get("delta")
    if type(body) is not dict:
        return None
    content = body.get("content")
    if type(content) is not str or not content or body.get("tool_calls") or body.get("refusal"):
        return None
    index = choice.get("index") or 0
    return (index, content) if type(index) is int else None


def _plain(delta: Delta) -> bool:
    return bool(delta.content) and not (delta.tool_calls or delta.finish_reason or delta.usage)


def _joined(run: list[Delta]) -> Delta:
    if len(run) == 1:
        return run[0]
    return Delta(
        content="".join(delta.content or "" for delta in run),
        index=run[0].index,
        frames=tuple(frame for delta in run for frame in delta.frames),
    )


def coalesce(deltas: list[Delta]) -> list[Delta]:
    """Consecutive text deltas of one choice that arrived in one read, as one delta (one guard scan,
    one write): the client still gets every chunk, unchanged and in order."""
    if len(deltas) < 2:
        return deltas
    out: list[Delta] = []
    run: list[Delta] = []
    for delta in deltas:
        if _plain(delta):
            if run and run[0].index != delta.index:
                out.append(_joined(run))
                run = []
            run.append(delta)
            continue
        if run:
            out.append(_joined(run))
            run = []
        out.append(delta)
    if run:
        out.append(_joined(run))
    return out


def _choice_delta(frame: dict[str, Any]) -> dict[str, Any] | None:
    choices = frame.get("choices")
    if not choices or not isinstance(choices[0], dict):
        return None
    body = choices[0].get("delta")
    return body if isinstance(body, dict) else None


def _with_delta(frame: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    choice = {**frame["choices"][0], "delta": body}
    return {**frame, "choices": [choice]}


def patch(delta: Delta, content: str | None, tool_calls: list[dict[str, Any]] | None) -> Delta:
    """``delta`` with the guard's ``content`` and ``tool_calls`` written into its frames.

    The text goes back into the chunks that carried text, each taking at most as many characters as
    it had; what is left goes to the last chunk of a choice (e.g. the finish chunk, for a held-back
    tail). The tool calls replace those of the chunk that carried them (or ride on the last one)."""
    frames = list(delta.frames)
    text = content or ""
    last = -1
    carried_calls = -1
    for position, frame in enumerate(frames):
        body = _choice_delta(frame)
        if body is None:
            continue
        last = position
        if body.get("tool_calls"):
            carried_calls = position
        piece = body.get("content")
        if isinstance(piece, str) and piece:
            take, text = text[: len(piece)], text[len(piece) :]
            if take != piece:
                frames[position] = _with_delta(frame, {**body, "content": take})
    if last >= 0 and text:
        body = _choice_delta(frames[last]) or {}
        frames[last] = _with_delta(frames[last], {**body, "content": (body.get("content") or "") + text})
    if tool_calls is not None and tool_calls != delta.tool_calls:
        where = carried_calls if carried_calls >= 0 else last
        if where >= 0:
            body = _choice_delta(frames[where]) or {}
            frames[where] = _with_delta(frames[where], {**body, "tool_calls": tool_calls})
    return replace(delta, content=content, tool_calls=tool_calls, frames=tuple(frames))
