"""The ``llm-rubric`` judge: asks a judge model, through the gateway, whether an answer meets a
rubric, and reads back ``{"pass", "score", "reason"}`` (promptfoo's grading shape)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import regex

from gateway.evals.assertions import Judge

SYSTEM = (
    "You grade an answer against a rubric. Reply with one JSON object and nothing else: "
    '{"pass": true or false, "score": a number from 0 to 1, "reason": "one sentence"}.'
)
_OBJECT = regex.compile(r"\{.*\}", regex.DOTALL)

Ask = Callable[[list[dict[str, str]], str], Awaitable[str]]


def parse_grade(text: str) -> tuple[bool, float, str]:
    """The judge's verdict; an answer that is not the JSON asked for fails with the reason."""
    found = _OBJECT.search(text[:20_000], timeout=0.1)
    data: Any = None
    if found is not None:
        try:
            data = orjson.loads(found.group(0))
        except orjson.JSONDecodeError:
            data = None
    if not isinstance(data, dict) or not isinstance(data.get("pass"), bool):
        return False, 0.0, "the judge did not answer with the JSON verdict: " + text[:120]
    score = data.get("score", 1.0 if data["pass"] else 0.0)
    score = (
        float(score)
        if isinstance(score, int | float) and not isinstance(score, bool)
        else float(data["pass"])
    )
    return data["pass"], min(max(score, 0.0), 1.0), str(data.get("reason", ""))[:300]


def rubric_judge(ask: Ask, *, default_model: str) -> Judge:
    async def judge(rubric: str, answer: str, model: str | None) -> tuple[bool, float, str]:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Rubric:\n{rubric}\n\nAnswer:\n{answer}"},
        ]
        return parse_grade(await ask(messages, model or default_model))

    return judge
