"""Agreement between a primary and a shadow answer: normalised token-overlap ROUGE-L F1.

Both texts are NFKC-normalised, lower-cased and split into word tokens (``\\w+``, Unicode-aware,
so Korean and other scripts work); punctuation and whitespace are ignored. With ``L`` the length
of the longest common subsequence of the two token lists, precision ``P = L / len(shadow)``,
recall ``R = L / len(primary)`` and the score is ``F1 = 2PR / (P + R)``, in [0, 1]. Two empty
answers agree (1.0); one empty answer does not (0.0). Inputs are capped at ``max_tokens`` tokens
each so the O(n·m) dynamic programme stays bounded.
"""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str, *, max_tokens: int = 1024) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())[:max_tokens]


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            current[j] = previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1])
        previous = current
    return previous[-1]


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
