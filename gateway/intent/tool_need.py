"""The "needs a tool" signal of the intent step (issue #22, item 7): which server tools a prompt
asks for, by rules (English and Korean), so ``model: auto`` picks a tool-capable model and offers
the right tools.

- ``calculator``: arithmetic — two numbers joined by an operator, or a number with a calculation
  word ("calculate", "how much is", "15% of", "곱하기", "계산").
- ``python``: code to *run* — "run/execute this code", "what does it print", "실행", "돌려".
- ``datetime``: the current time or date arithmetic — "what time is it", "day of the week",
  "days until", "몇 시", "요일", "오늘 날짜".
- ``search``: questions about the operator's own documents — "our docs", "handbook",
  "knowledge base", "사내 문서", "규정".

Measured on ``tests/data/tool_need_examples.jsonl`` (the rules were written against its ``dev``
half only; ``test`` is held out): see docs/tools.md, "The needs-a-tool signal". Pure ``re``,
about 10 µs on a prompt of 500 characters; the text is cut like the classifier's (head + tail).
"""

from __future__ import annotations

import re
from typing import Final

SCAN_CHARS: Final = 2000

_ARITHMETIC = re.compile(
    r"\d[\d,.]*\s*(?:[-+*/×÷^%]|\*\*|times|plus|minus|divided by|multiplied by|곱하기|나누기|더하기|빼기)"
    r"\s*\(?\s*\d|\(\s*\d+\s*[-+*/]\s*\d+\s*\)",
    re.IGNORECASE,
)
_CALC_WORDS = re.compile(
    r"\b(calculate|compute|how much is|what(?:'s| is) \d|square root|sqrt|factorial of|"
    r"\d+(?:\.\d+)?\s*% of|percent of|compound(?:ed)?|interest)\b|"
    r"계산|얼마(?:야|인가요|예요|지)?\s*\??$|제곱|\d+\s*%\s*는",
    re.IGNORECASE | re.MULTILINE,
)
_RUN_CODE = re.compile(
    r"\b(run|execute|exec)\b[^.?!\n]{0,40}\b(code|script|snippet|program|this|following|it)\b|"
    r"\bplease execute\b|\bwhat (?:does|would) (?:it|this|the code) (?:print|output|return)|"
    r"\btell me (?:the|what it) (?:output|prints?|returns?)\b|실행|돌려\s*(?:보|줘)|출력 결과",
    re.IGNORECASE,
)
_DATETIME = re.compile(
    r"\bwhat(?:'s| is)? (?:the )?(?:current )?(?:time|date)\b|\bwhat time is it\b|\bcurrent time\b|"
    r"\bday of the week\b|\bdays (?:until|since|from today|between)\b|\bfrom today\b|\bwhat date\b|"
    r"몇\s*시|요일|오늘\s*날짜|날짜가 뭐|며칠 (?:남|후|전)",
    re.IGNORECASE,
)
_DOCUMENTS = re.compile(
    r"\b(?:our|the company(?:'s)?|internal|my team's)\s+(?:internal\s+)?"
    r"(?:docs?|documentation|handbook|wiki|knowledge base|policy|policies|guidelines?|manual)\b|"
    r"\bknowledge base\b|\bhandbook\b|\bsearch (?:our|the internal) docs\b|"
    r"사내|회사 규정|규정 문서|내부 문서|문서에서|문서에 따르면",
    re.IGNORECASE,
)
_DATES = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}")
"""Dates are not arithmetic (``2027-03-01``)."""
_RULES: Final = (
    ("python", (_RUN_CODE,)),
    ("datetime", (_DATETIME,)),
    ("search", (_DOCUMENTS,)),
    ("calculator", (_ARITHMETIC, _CALC_WORDS)),
)


def tools_needed(text: str) -> tuple[str, ...]:
    """The server tools the prompt asks for (empty: none), in a fixed order."""
    if len(text) > SCAN_CHARS:
        text = text[: SCAN_CHARS - 400] + "\n" + text[-400:]
    undated = _DATES.sub(" ", text)
    found = [
        name
        for name, patterns in _RULES
        if any(p.search(undated if name == "calculator" else text) for p in patterns)
    ]
    if "python" in found and "calculator" in found:
        found.remove("calculator")  # a program to run: its numbers are the program's
    return tuple(found)
