"""Keyword scoring (BM25 over substring matches) and reciprocal rank fusion."""

from __future__ import annotations

import math
from collections.abc import Sequence

K1 = 1.2
B = 0.75
RRF_K = 60


def bm25(candidates: Sequence[tuple[int, str]], terms: Sequence[str], total: int) -> list[tuple[int, float]]:
    """Chunk ids by BM25 score, best first. ``candidates`` are the chunks containing any term
    (their text, for term frequencies); ``total`` is the collection's chunk count (for IDF).
    Term frequency counts case-insensitive substring occurrences, as the indexes match."""
    if not candidates or not terms:
        return []
    lowered = [(cid, text.lower()) for cid, text in candidates]
    avg = sum(len(t) for _, t in lowered) / len(lowered)
    df = {term: sum(1 for _, t in lowered if term in t) for term in terms}
    n = max(total, len(lowered))
    idf = {term: math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5)) for term in terms}
    scored = []
    for cid, body in lowered:
        norm = K1 * (1 - B + B * len(body) / avg)
        score = 0.0
        for term in terms:
            tf = body.count(term)
            if tf:
                score += idf[term] * tf * (K1 + 1) / (tf + norm)
        scored.append((cid, score))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored


def rrf(rankings: Sequence[Sequence[int]], *, k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each id scores ``Σ 1 / (k + rank)`` over the rankings it appears in."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
