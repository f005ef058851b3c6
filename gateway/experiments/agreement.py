"""Agreement between a primary and a shadow answer: normalised token-overlap ROUGE-L F1.

Both texts are NFKC-normalised, lower-cased and split into word tokens (``\\w+``, Unicode-aware,
so Korean and other scripts work); punctuation and whitespace are ignored. With ``L`` the length
of the longest common subsequence of the two token lists, precision ``P = L / len(shadow)``,
recall ``R = L / len(primary)`` and the score is ``F1 = 2PR / (P + R)``, in [0, 1]. Two empty
answers agree (1.0); one empty answer does not (0.0). Inputs are capped at ``max_tokens`` tokens
each.

The LCS length is computed bit-parallel (Hyyrö 2004: one big-integer add, subtract, and, or per
token of the second sequence), so two 1,024-token answers cost about a millisecond instead of the
~0.3 s of the O(n·m) Python dynamic programme; it runs in the shadow job, never on a request's path.
"""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str, *, max_tokens: int = 1024) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())[:max_tokens]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    # Bits of ``b`` positions per token: the column vector of the DP, one bit per row of ``b``.
    positions: dict[str, int] = {}
    for i, token in enumerate(b):
        positions[token] = positions.get(token, 0) | (1 << i)
    mask = (1 << len(b)) - 1
    v = mask
    for token in a:
        match = positions.get(token)
        if match is None:
            continue
        u = v & match
        v = ((v + u) | (v - u)) & mask
    return len(b) - v.bit_count()


def rouge_l_f1(reference: str, candidate: str, *, max_tokens: int = 1024) -> float:
    ref, cand = tokens(reference, max_tokens=max_tokens), tokens(candidate, max_tokens=max_tokens)
    if not ref and not cand:
        return 1.0
    if not ref or not cand:
        return 0.0
    lcs = lcs_length(ref, cand)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
