"""Hashed word and character n-grams: the input of the classifier's fast first stage (issue #21).

A prompt becomes a bag of bucket ids (``NGRAM_BUCKETS``): lower-cased words, word bigrams and the
character trigrams of every word (space-padded, so Korean stems and English affixes share buckets); a
word with a digit in it (a number, an id, a hash) is one ``<n>`` token.
Buckets come from CRC-32 (stable across processes, unlike ``hash``). The text is bounded like the
encoder's input (head + tail), so a long prompt costs what a short one does (~30–60 µs).
"""

from __future__ import annotations

import re
import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

NGRAM_BUCKETS: Final = 1 << 15
NGRAM_HEAD_CHARS: Final = 160
NGRAM_TAIL_CHARS: Final = 60
_WORD = re.compile(r"\w+|[^\w\s]")
_DIGIT = re.compile(r"\d")

IntArray = npt.NDArray[np.int64]


def _bounded(text: str) -> str:
    if len(text) <= NGRAM_HEAD_CHARS + NGRAM_TAIL_CHARS:
        return text
    return f"{text[:NGRAM_HEAD_CHARS]} {text[-NGRAM_TAIL_CHARS:]}"


def ngram_ids(text: str) -> IntArray:
    """Unique bucket ids of ``text``'s n-grams (sorted; empty for an empty text)."""
    words = _WORD.findall(_bounded(text).lower())
    grams: list[str] = []
    prev = "<s>"
    for w in words:
        if _DIGIT.search(w) is not None:  # numbers, ids, hashes: their shape matters, not their spelling
            w = "<n>"
        grams.append("w" + w)
        grams.append(f"b{prev} {w}")
        prev = w
        if len(w) > 1 and w != "<n>":
            p = f" {w} "
            grams.extend("c" + p[i : i + 3] for i in range(len(p) - 2))
    mask = NGRAM_BUCKETS - 1
    return np.unique(np.fromiter((zlib.crc32(g.encode()) & mask for g in grams), dtype=np.int64,
                                 count=len(grams)))
