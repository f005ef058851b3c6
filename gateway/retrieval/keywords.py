"""Query terms for the keyword index, for English and Korean.

Both keyword indexes (``pg_trgm`` in Postgres, FTS5's trigram tokenizer in SQLite) match
substrings, which suits Korean: a stem such as ``서울`` matches ``서울의``, ``서울에서`` and
``서울시``, with no morphological analyser. What a substring index cannot do is drop the particle
from the *query*: ``서울에서`` would not match ``서울의``. So a Hangul word loses one trailing
particle or ending from the list below (longest first) when at least two syllables remain. English
words are lower-cased and stop words dropped; every term has at least two characters.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(
    r"[0-9A-Za-z\u00C0-\u024F]+(?:['’][A-Za-z]+)?|[\uAC00-\uD7A3]+|[\u3040-\u30FF\u4E00-\u9FFF]+"
)

# Korean particles (josa) and a few common verb/copula endings, longest first.
_KO_SUFFIXES = sorted(
    {
        "에서부터",
        "으로부터",
        "에게서",
        "한테서",
        "까지는",
        "에서는",
        "에서도",
        "으로는",
        "이라는",
        "이라고",
        "에서",
        "에게",
        "한테",
        "으로",
        "부터",
        "까지",
        "마다",
        "처럼",
        "보다",
        "라는",
        "라고",
        "이나",
        "이다",
        "입니다",
        "습니다",
        "합니까",
        "인가요",
        "인가",
        "인지",
        "이며",
        "이고",
        "에는",
        "에도",
        "와의",
        "과의",
        "은",
        "는",
        "이",
        "가",
        "을",
        "를",
        "의",
        "에",
        "로",
        "와",
        "과",
        "도",
        "만",
        "요",
        "나",
    },
    key=len,
    reverse=True,
)

_EN_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "after",
        "before",
        "during",
        "which",
        "many",
        "much",
        "most",
        "some",
        "any",
        "more",
        "other",
        "such",
        "only",
        "own",
        "same",
        "very",
        "just",
        "also",
    ]
)
_KO_STOP = frozenset(
    {"무엇", "어디", "언제", "누구", "어떻게", "어떤", "얼마나", "몇", "무슨", "그", "이", "저", "것", "수"}
)

MAX_TERMS = 16


def _strip_particle(word: str) -> str:
    for suffix in _KO_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            return word[: -len(suffix)]
    return word


def query_terms(query: str) -> list[str]:
    """Distinct search terms of ``query``, in order, at most ``MAX_TERMS``."""
    text = unicodedata.normalize("NFKC", query).lower()
    terms: list[str] = []
    for m in _WORD.finditer(text):
        word = m.group(0)
        if "\uac00" <= word[0] <= "\ud7a3":
            word = _strip_particle(word)
            if word in _KO_STOP:
                continue
        elif word in _EN_STOP:
            continue
        if len(word) < 2 or word in terms:
            continue
        terms.append(word)
        if len(terms) >= MAX_TERMS:
            break
    return terms
