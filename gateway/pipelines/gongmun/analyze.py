"""공문 analysis: the deterministic parser first, the LLM (JSON-schema output, through Prism's own
request path) for the free-text fields — the 요청사항 summary always, the 회신 기한 when no standard
spot held it. Without an LLM (``options.use_llm: false``), or when its call fails, a heuristic fills
the request summary (the sentence that asks: ``…바랍니다``, ``we would be grateful …``) at low
confidence and the failure is listed in ``warnings``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import GatewayError
from gateway.pipelines.gongmun.dates import ANY_DATE, match_iso
from gateway.pipelines.gongmun.english import parse_english
from gateway.pipelines.gongmun.fields import FieldValue, detect_language, result_json
from gateway.pipelines.gongmun.korean import parse_korean
from gateway.pipelines.llm import PipelineLLM
from gateway.security.principal import Principal

LLM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["request_summary", "reply_deadline"],
    "properties": {
        "request_summary": {"type": ["string", "null"]},
        "reply_deadline": {"type": ["string", "null"], "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
    },
}
PROMPT = {
    "ko": (
        "다음은 공문입니다. 수신 기관에 요청하는 사항을 한 문장으로 요약하고(request_summary), "
        "회신·제출 기한이 있으면 YYYY-MM-DD로(reply_deadline, 없으면 null) JSON으로만 답하세요.\n\n{text}"
    ),
    "en": (
        "Below is an official letter. Summarise in one sentence what it asks the recipient to do "
        "(request_summary) and give the reply deadline as YYYY-MM-DD (reply_deadline, null if none). "
        "Answer with JSON only.\n\n{text}"
    ),
}
REQUEST_CUE = {
    "ko": re.compile(r"[^.\n]*(?:바랍니다|요청합니다|부탁드립니다)"),
    "en": re.compile(
        r"[^.\n]*\b(?:would be grateful|kindly request|please|we request|are requested)[^.\n]*", re.I
    ),
}
MAX_LLM_CHARS = 12_000


def parse_letter(text: str) -> tuple[str, dict[str, FieldValue]]:
    language = detect_language(text)
    return language, (parse_korean(text) if language == "ko" else parse_english(text))


def heuristic_request(text: str, language: str) -> FieldValue:
    matches = list(REQUEST_CUE[language].finditer(text))
    if not matches:
        return FieldValue()
    match = max(matches, key=lambda m: len(m.group(0)))
    start = match.start() + len(match.group(0)) - len(match.group(0).lstrip())
    return FieldValue(
        value=text[start : match.end()].strip(), span=(start, match.end()), confidence=0.5, source="parser"
    )


def _date_evidence(text: str, iso: str) -> tuple[int, int] | None:
    for pattern in ANY_DATE:
        for match in pattern.finditer(text):
            if match_iso(match) == iso:
                return match.start(), match.end()
    return None


def _from_llm(text: str, answer: str, fields: dict[str, FieldValue], language: str) -> list[str]:
    try:
        data = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return ["the model's answer is not JSON: the parser's fields stand"]
    if not isinstance(data, Mapping) or not (set(data) & {"request_summary", "reply_deadline"}):
        return ["the model's answer does not match the extraction schema: the parser's fields stand"]
    summary = data.get("request_summary")
    if isinstance(summary, str) and summary.strip():
        evidence = heuristic_request(text, language)
        fields["request_summary"] = FieldValue(summary.strip(), evidence.span, 0.75, "llm")
    deadline = data.get("reply_deadline")
    current = fields.get("reply_deadline")
    if (
        isinstance(deadline, str)
        and re.fullmatch(r"\d{4}-\d{2}-\d{2}", deadline)
        and (current is None or current.value is None)
    ):
        span = _date_evidence(text, deadline)
        fields["reply_deadline"] = FieldValue(deadline, span, 0.7 if span else 0.4, "llm")
    return []


async def llm_fields(
    text: str,
    language: str,
    fields: dict[str, FieldValue],
    *,
    llm: PipelineLLM | None,
    principal: Principal,
    options: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> tuple[list[str], str | None]:
    """Fill the free-text fields in place (the LLM, else the heuristic): (warnings, the model)."""
    warnings: list[str] = []
    model_used: str | None = None
    if llm is not None and options.get("use_llm", True):
        try:
            answer = await llm.ask(
                [{"role": "user", "content": PROMPT[language].format(text=text[:MAX_LLM_CHARS])}],
                principal=principal,
                model=options.get("model"),
                max_tokens=int(options.get("max_tokens", 400)),
                json_schema=LLM_SCHEMA,
                metadata=metadata,
            )
            model_used = answer.model
            warnings += _from_llm(text, answer.text, fields, language)
        except GatewayError as exc:
            warnings.append(f"the LLM step failed ({exc.code}): the parser's fields stand")
    if fields.get("request_summary") is None or fields["request_summary"].value is None:
        fields["request_summary"] = heuristic_request(text, language)
    return warnings, model_used


def finish(
    text: str, language: str, fields: dict[str, FieldValue], warnings: list[str], model: str | None
) -> dict[str, Any]:
    """The analysis document, validated against gongmun.schema.json."""
    document = result_json(text, language, fields)
    document["model"] = model
    if warnings:
        document["warnings"] = warnings
    return document


async def analyze_letter(
    text: str,
    *,
    llm: PipelineLLM | None,
    principal: Principal,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Parser, then the LLM step, in one call (the pipeline runs them as separate steps)."""
    language, fields = parse_letter(text)
    warnings, model = await llm_fields(
        text, language, fields, llm=llm, principal=principal, options=options or {}, metadata=metadata
    )
    return finish(text, language, fields, warnings, model)
