"""Korean-aware chunking for map-reduce: paragraphs, then sentences (Korean endings ``다.``,
``요.``, ``음.``, ``함.`` as well as ``. ? ! 。``), then a cut at a space, packed greedily into chunks
of at most ``max_chars``. Hangul takes about one token per syllable against about four Latin
characters per token, so the default budget is smaller for Korean text
(:func:`default_chunk_chars`)."""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"(?<=[.?!。？！])\s+|(?<=[다요음함임됨]\.)(?=\S)")
HANGUL = re.compile(r"[\uac00-\ud7a3]")
KOREAN_CHUNK_CHARS = 2000
LATIN_CHUNK_CHARS = 6000


def default_chunk_chars(text: str) -> int:
    sample = text[:5000]
    letters = sum(ch.isalpha() for ch in sample) or 1
    return KOREAN_CHUNK_CHARS if len(HANGUL.findall(sample)) / letters >= 0.3 else LATIN_CHUNK_CHARS


def _pieces(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph as pieces of at most ``max_chars``: whole sentences where they fit."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    out: list[str] = []
    for sentence in (s.strip() for s in SENTENCE_END.split(paragraph)):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def chunk_text(text: str, *, max_chars: int) -> list[str]:
    """The text as chunks of at most ``max_chars`` characters, cut at paragraph, then sentence,
    then word boundaries; nothing but whitespace is lost."""
    if max_chars < 20:
        raise ValueError("max_chars must be at least 20")
    chunks: list[str] = []
    current = ""
    paragraphs = (p.strip() for p in re.split(r"\n\s*\n", text))
    for paragraph in paragraphs:
        if not paragraph:
            continue
        for piece in _pieces(paragraph, max_chars):
            joiner = "\n\n" if piece is not None and current and paragraph.startswith(piece) else " "
            if current and len(current) + len(joiner) + len(piece) > max_chars:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}{joiner}{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks
