"""Character windows with overlap, cut on sentence boundaries (English and Korean).

A chunk is a span ``[start, end)`` of the extracted text, so a citation can point back into the
document. Windows hold at most ``size`` characters; the next window starts ``overlap`` characters
before the previous one ended, moved forward to the nearest sentence start so that a chunk rarely
begins mid-sentence. Sentence ends: ``. ! ? 。`` (and their full-width forms) followed by space,
a blank line, and the Korean declarative and interrogative endings (``다.``, ``요.``, ``까?``), which
the punctuation rule already covers; a Korean sentence without final punctuation ends at a line
break. A sentence longer than ``size`` is cut at the last space (or hard, for unspaced text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The end of a sentence: terminal punctuation (ASCII, full-width, CJK), optional closing quotes or
# brackets, then whitespace; or a line break (Markdown headings, list items, Korean lines without a
# final period); or a blank line.
_BOUNDARY = re.compile(r"(?:[.!?。！？…]+[\"'”’)\]」』]*\s+|\n\s*\n|\n(?=\s*(?:#|[-*+] |\d+[.)] )))")


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    start: int
    end: int
    text: str


def sentence_starts(text: str) -> list[int]:
    """Offsets where a sentence begins (always 0 first)."""
    starts = [0]
    for m in _BOUNDARY.finditer(text):
        if m.end() < len(text):
            starts.append(m.end())
    return starts


def _cut_end(text: str, start: int, limit: int, starts: list[int]) -> int:
    """The end of a window from ``start``: the last sentence start within ``limit`` characters,
    else the last whitespace, else ``start + limit``."""
    hard = min(len(text), start + limit)
    if hard == len(text):
        return hard
    best = max((s for s in starts if start < s <= hard), default=None)
    if best is not None and best - start >= limit // 3:
        return best
    space = text.rfind(" ", start + limit // 2, hard)
    return space + 1 if space > start else hard


def chunk_text(text: str, *, size: int = 1000, overlap: int = 150) -> list[Chunk]:
    """``text`` as windows of at most ``size`` characters overlapping by about ``overlap``."""
    if size < 50:
        raise ValueError("chunk size must be at least 50 characters")
    if not 0 <= overlap < size // 2:
        raise ValueError("overlap must be at least 0 and under half the chunk size")
    starts = sentence_starts(text)
    chunks: list[Chunk] = []
    pos = 0
    while pos < len(text):
        # Skip leading whitespace so that offsets point at content.
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        end = _cut_end(text, pos, size, starts)
        body = text[pos:end].rstrip()
        if body:
            chunks.append(Chunk(seq=len(chunks), start=pos, end=pos + len(body), text=body))
        if end >= len(text):
            break
        nxt = end - overlap
        # Move forward to a sentence start inside the overlap, if there is one.
        aligned = min((s for s in starts if nxt <= s < end), default=nxt)
        pos = max(aligned, pos + 1)
    return chunks
