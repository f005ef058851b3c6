"""Unicode normalisation for the injection detector.

The PII detector works on the original text (placeholders must replace exact
spans); the injection detector works on a *folded* copy where cosmetic tricks
are undone: NFKC (full-width letters, ligatures), zero-width and bidi control
characters removed, Hangul compatibility jamo composed into syllables,
common Cyrillic/Greek homoglyphs folded to Latin, lower-cased, and letter-spaced
words ("i g n o r e") re-joined.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width, joiners, bidi controls, soft hyphen, word joiner, BOM, Mongolian vowel separator.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)

_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
        "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w",
        # Greek
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
        "χ": "x", "γ": "y",
    }
)  # fmt: skip

_JAMO_PRESENT = re.compile("[\u1100-\u11ff\u3131-\u318e]")
# choseong (U+1100..U+1112) index -> jongseong index (1-based, 0 = not allowed as final)
_CHO_TO_JONG = {
    0: 1, 1: 2, 2: 4, 3: 7, 5: 8, 6: 16, 7: 17, 9: 19,
    10: 20, 11: 21, 12: 22, 14: 23, 15: 24, 16: 25, 17: 26, 18: 27,
}  # fmt: skip
# Letter-spaced words: "i g n o r e" / "i.g.n.o.r.e" (5+ single letters separated by one char).
_SPACED = re.compile(r"(?<![\w])(?:[a-z][ ._\-*]){4,}[a-z](?![\w])")
_SPACED_SEP = re.compile(r"[ ._\-*]")
_WS = re.compile(r"[ \t\r\f\v]+")


def _compose_jamo(text: str) -> str:
    """Attach a dangling leading consonant to the preceding open syllable (NFKC only builds LV)."""
    out: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        cp = ord(ch)
        if 0x1100 <= cp <= 0x1112 and out:
            nxt = ord(text[i + 1]) if i + 1 < n else 0
            prev = ord(out[-1])
            jong = _CHO_TO_JONG.get(cp - 0x1100, 0)
            if (
                jong
                and 0xAC00 <= prev <= 0xD7A3
                and (prev - 0xAC00) % 28 == 0
                and not (0x1161 <= nxt <= 0x1175)
            ):
                out[-1] = chr(prev + jong)
                continue
        out.append(ch)
    return "".join(out)


def strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def fold(text: str) -> str:
    """Return the folded form used by the injection rules."""
    text = _INVISIBLE.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    if _JAMO_PRESENT.search(text):
        text = unicodedata.normalize("NFC", _compose_jamo(text))
    text = text.lower().translate(_HOMOGLYPHS)
    if _SPACED.search(text):
        text = _SPACED.sub(lambda m: _SPACED_SEP.sub("", m.group(0)), text)
    return _WS.sub(" ", text)
