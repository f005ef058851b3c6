"""The result of a 공문 analysis: one :class:`FieldValue` per field, serialised to the published JSON
Schema (``gateway/pipelines/schemas/gongmun.schema.json``) and validated against it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "gongmun.schema.json"
SCHEMA_ID = "prism.gongmun/1"

FIELDS = (
    "recipient",
    "via",
    "title",
    "doc_number",
    "date",
    "sender_org",
    "sender_name",
    "contact",
    "attachments",
    "disclosure",
    "request_summary",
    "reply_deadline",
)
KOREAN_ONLY = frozenset({"via", "disclosure"})
FREE_TEXT = frozenset({"request_summary", "reply_deadline"})
"""Fields the LLM fills when the parser finds nothing in a standard spot."""

Source = Literal["parser", "llm", "none", "not_applicable"]


@dataclass(slots=True)
class FieldValue:
    value: Any = None
    span: tuple[int, int] | None = None
    confidence: float = 0.0
    source: Source = "none"

    def to_json(self, text: str) -> dict[str, Any]:
        return {
            "value": self.value,
            "text": None if self.span is None else text[self.span[0] : self.span[1]],
            "span": None if self.span is None else [self.span[0], self.span[1]],
            "confidence": round(self.confidence, 3),
            "source": self.source,
        }


def to_state(fields: dict[str, FieldValue]) -> dict[str, Any]:
    """The fields as a checkpointable dict (between pipeline steps)."""
    return {
        name: {
            "value": f.value,
            "span": list(f.span) if f.span else None,
            "confidence": f.confidence,
            "source": f.source,
        }
        for name, f in fields.items()
    }


def from_state(state: dict[str, Any]) -> dict[str, FieldValue]:
    return {
        name: FieldValue(
            value=f["value"],
            span=(int(f["span"][0]), int(f["span"][1])) if f.get("span") else None,
            confidence=float(f["confidence"]),
            source=f["source"],
        )
        for name, f in state.items()
    }


def found(value: Any, start: int, end: int, confidence: float = 0.95) -> FieldValue:
    return FieldValue(value=value, span=(start, end), confidence=confidence, source="parser")


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def validation_errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in _validator().iter_errors(document)
    ]


def result_json(text: str, language: str, fields: dict[str, FieldValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIELDS:
        field = fields.get(name) or FieldValue()
        if language != "ko" and name in KOREAN_ONLY:
            field = FieldValue(source="not_applicable")
        out[name] = field.to_json(text)
    document = {"schema": SCHEMA_ID, "language": language, "text_chars": len(text), "fields": out}
    errors = validation_errors(document)
    if errors:
        raise ValueError("the analysis does not match its schema: " + "; ".join(errors[:5]))
    return document


_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def detect_language(text: str) -> str:
    """``ko`` when Hangul syllables are at least 10% of the letters, else ``en``."""
    letters = sum(ch.isalpha() for ch in text)
    hangul = len(_HANGUL.findall(text))
    return "ko" if letters and hangul / letters >= 0.1 else "en"
