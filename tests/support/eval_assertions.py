"""An operator's module of custom evaluation assertions, as the gateway under test loads it
(``GATEWAY_EVAL_ASSERTIONS_MODULE=tests.support.eval_assertions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def echoes_word(output: str, context: Mapping[str, Any]) -> dict[str, Any]:
    word = str(context["vars"].get("word", ""))
    found = bool(word) and word in output
    return {
        "pass": found,
        "score": 1.0 if found else 0.0,
        "reason": f"{word!r} {'found' if found else 'missing'}",
    }


def short_answer(output: str, context: Mapping[str, Any]) -> float:
    return 1.0 if len(output) < 200 else 0.0


ASSERTIONS = {"echoes_word": echoes_word, "short_answer": short_answer}
