"""Assertions on one answer: promptfoo's names where they exist.

``check`` validates a spec when a case or run is written (a 400 naming the field), ``evaluate``
runs it on an answer. Each returns a verdict with a score in [0, 1]; a case passes when all its
assertions pass. Values may hold ``{{ var }}`` placeholders, filled from the case's variables and
``expected``. Regexes run with the ``regex`` engine's timeout and on a bounded slice of the answer.
``similar`` uses the gateway's embeddings, ``llm-rubric`` a judge model through the gateway, and
``python`` a function of the operator's own module (configured, never named by a request).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson
import regex

from gateway.errors import InvalidRequest
from gateway.prompts import template

TYPES = frozenset(
    {
        "equals",
        "contains",
        "icontains",
        "not-contains",
        "contains-all",
        "contains-any",
        "regex",
        "not-regex",
        "is-json",
        "json-schema",
        "numeric",
        "similar",
        "llm-rubric",
        "latency",
        "cost",
        "python",
    }
)
MAX_PATTERN = 1_000
REGEX_TIMEOUT_S = 0.1
REGEX_TEXT = 100_000
MAX_ASSERTIONS = 20


@dataclass(slots=True)
class Answer:
    text: str
    latency_ms: float
    cost_usd: float
    vars: Mapping[str, Any]
    expected: str | None


@dataclass(slots=True)
class Verdict:
    type: str
    passed: bool
    score: float
    reason: str
    weight: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "pass": self.passed, "score": round(self.score, 6), "reason": self.reason}


Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
Judge = Callable[[str, str, str | None], Awaitable[tuple[bool, float, str]]]
"""(rubric, answer, judge model) → (pass, score, reason)."""
Custom = Callable[[str, Mapping[str, Any]], Any]


@dataclass(slots=True)
class Tools:
    embed: Embed | None = None
    judge: Judge | None = None
    custom: Mapping[str, Custom] = field(default_factory=dict)


def _bad(index: int, message: str, key: str = "") -> InvalidRequest:
    param = f"assert[{index}]" + (f".{key}" if key else "")
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_assertion")


def check(specs: Any, *, custom: Mapping[str, Custom] | None = None) -> list[dict[str, Any]]:
    """Validated assertion specs (a list of objects with ``type``)."""
    if specs is None:
        return []
    if not isinstance(specs, list) or len(specs) > MAX_ASSERTIONS:
        raise InvalidRequest(f"assert must be a list of at most {MAX_ASSERTIONS} assertions", param="assert")
    out: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise _bad(index, f"type must be one of {', '.join(sorted(TYPES))}", "type")
        kind, value = spec["type"], spec.get("value")
        textual = ("equals", "contains", "icontains", "not-contains", "regex", "not-regex", "llm-rubric")
        if kind in textual and (not isinstance(value, str | list) or (isinstance(value, list) and not value)):
            raise _bad(index, "value must be a string (or a list of strings)", "value")
        if kind in ("contains-all", "contains-any") and not (isinstance(value, list) and value):
            raise _bad(index, "value must be a non-empty list of strings", "value")
        if kind in ("regex", "not-regex"):
            for pattern in value if isinstance(value, list) else [value]:
                if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
                    raise _bad(index, f"a pattern is a string of at most {MAX_PATTERN} characters", "value")
                try:
                    regex.compile(pattern)
                except regex.error as exc:
                    raise _bad(index, f"invalid regular expression: {exc}", "value") from exc
        if kind == "json-schema":
            if not isinstance(value, dict):
                raise _bad(index, "value must be a JSON Schema object", "value")
            try:
                jsonschema.Draft202012Validator.check_schema(value)
            except jsonschema.SchemaError as exc:
                raise _bad(index, f"invalid JSON Schema: {exc.message}", "value") from exc
        if kind == "numeric" and not _number(value) and not isinstance(value, str):
            raise _bad(index, "value must be a number", "value")
        if kind in ("latency", "cost") and not _number(spec.get("threshold")):
            raise _bad(index, "threshold must be a number", "threshold")
        if kind == "python" and (not isinstance(value, str) or (custom is not None and value not in custom)):
            raise _bad(index, "value must name a function of the configured assertions module", "value")
        for key in ("threshold", "tolerance", "weight"):
            if key in spec and not _number(spec[key]):
                raise _bad(index, f"{key} must be a number", key)
        out.append(dict(spec))
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fill(value: Any, answer: Answer) -> Any:
    values = {**answer.vars, "expected": answer.expected or ""}
    if isinstance(value, str) and "{{" in value:
        return template.render_text(value, values, param="assert.value")
    if isinstance(value, list):
        return [_fill(item, answer) for item in value]
    return value


def _texts(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _search(pattern: str, text: str) -> bool:
    return regex.search(pattern, text[:REGEX_TEXT], timeout=REGEX_TIMEOUT_S) is not None


def _json(text: str) -> tuple[bool, Any]:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        return True, orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False, None


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def evaluate(spec: Mapping[str, Any], answer: Answer, tools: Tools) -> Verdict:
    kind = str(spec["type"])
    weight = float(spec.get("weight", 1.0))
    try:
        passed, score, reason = await _evaluate(kind, spec, answer, tools)
    except InvalidRequest as exc:
        passed, score, reason = False, 0.0, exc.message
    except TimeoutError:
        passed, score, reason = False, 0.0, f"the regular expression took longer than {REGEX_TIMEOUT_S}s"
    except (ValueError, TypeError) as exc:
        passed, score, reason = False, 0.0, f"cannot evaluate: {exc}"[:200]
    return Verdict(kind, passed, score, reason, weight)


async def _evaluate(
    kind: str, spec: Mapping[str, Any], answer: Answer, tools: Tools
) -> tuple[bool, float, str]:
    text = answer.text
    value = _fill(spec.get("value"), answer)
    mode = spec.get("mode", "all")
    if kind == "equals":
        ok = any(text.strip() == item.strip() for item in _texts(value))
        return ok, float(ok), "equal" if ok else "not equal"
    if kind in ("contains", "icontains", "contains-all", "contains-any"):
        folded = text.lower() if kind == "icontains" else text
        needles = [item.lower() if kind == "icontains" else item for item in _texts(value)]
        hits = [needle in folded for needle in needles]
        ok = any(hits) if (kind == "contains-any" or mode == "any") else all(hits)
        return ok, sum(hits) / len(hits), f"{sum(hits)}/{len(hits)} found"
    if kind == "not-contains":
        hits = [needle in text for needle in _texts(value)]
        ok = not all(hits) if mode == "any" else not any(hits)
        return ok, float(ok), f"{sum(hits)}/{len(hits)} found"
    if kind in ("regex", "not-regex"):
        hits = [_search(pattern, text) for pattern in _texts(value)]
        matched = any(hits) if mode == "any" else all(hits)
        ok = matched if kind == "regex" else not any(hits)
        return ok, float(ok), "matched" if matched else "no match"
    if kind == "is-json":
        ok, _ = _json(text)
        return ok, float(ok), "valid JSON" if ok else "not JSON"
    if kind == "json-schema":
        ok, data = _json(text)
        if not ok:
            return False, 0.0, "not JSON"
        errors = sorted(jsonschema.Draft202012Validator(value).iter_errors(data), key=lambda e: list(e.path))
        return not errors, float(not errors), errors[0].message[:200] if errors else "valid"
    if kind == "numeric":
        found = regex.search(r"-?\d+(?:\.\d+)?", text[:REGEX_TEXT], timeout=REGEX_TIMEOUT_S)
        target = float(value)
        if found is None:
            return False, 0.0, "no number in the answer"
        tolerance = float(spec.get("tolerance", 0.0))
        got = float(found.group(0))
        ok = abs(got - target) <= tolerance
        return ok, float(ok), f"{got:g} vs {target:g} ± {tolerance:g}"
    if kind == "latency":
        ok = answer.latency_ms <= float(spec["threshold"])
        return ok, float(ok), f"{answer.latency_ms:.0f} ms"
    if kind == "cost":
        ok = answer.cost_usd <= float(spec["threshold"])
        return ok, float(ok), f"${answer.cost_usd:.6f}"
    if kind == "similar":
        if tools.embed is None:
            return False, 0.0, "no embedding model is configured for this run"
        vectors = await tools.embed([text, *_texts(value)])
        best = max(_cosine(vectors[0], other) for other in vectors[1:])
        threshold = float(spec.get("threshold", 0.75))
        return best >= threshold, max(best, 0.0), f"cosine {best:.3f} (threshold {threshold:g})"
    if kind == "llm-rubric":
        if tools.judge is None:
            return False, 0.0, "no judge model is configured for this run"
        return await tools.judge(" ".join(_texts(value)), text, spec.get("provider") or spec.get("model"))
    if kind == "python":
        function = tools.custom.get(str(spec.get("value")))
        if function is None:
            return False, 0.0, "unknown custom assertion"
        result = function(text, {"vars": dict(answer.vars), "expected": answer.expected})
        if isinstance(result, Awaitable):
            result = await result
        if isinstance(result, bool):
            return result, float(result), "custom"
        if _number(result):
            threshold = float(spec.get("threshold", 0.5))
            return float(result) >= threshold, float(result), f"custom score {float(result):.3f}"
        if isinstance(result, dict):
            return (
                bool(result.get("pass")),
                float(result.get("score", float(bool(result.get("pass"))))),
                str(result.get("reason", "custom")),
            )
        return False, 0.0, "the custom assertion returned neither a bool, a number nor a dict"
    raise InvalidRequest(f"unknown assertion type {kind!r}")


def case_score(verdicts: list[Verdict]) -> tuple[bool, float]:
    if not verdicts:
        return True, 1.0
    total = sum(v.weight for v in verdicts) or 1.0
    return all(v.passed for v in verdicts), sum(v.score * v.weight for v in verdicts) / total


def load_custom(dotted: str | None) -> dict[str, Custom]:
    """The operator's custom assertions: the module's ``ASSERTIONS`` mapping, else its public
    functions. The dotted path comes from the settings (``GATEWAY_EVAL_ASSERTIONS_MODULE``)."""
    if not dotted:
        return {}
    import importlib
    import inspect

    module = importlib.import_module(dotted)
    table = getattr(module, "ASSERTIONS", None)
    if isinstance(table, Mapping):
        return {str(name): function for name, function in table.items() if callable(function)}
    return {
        name: function
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and function.__module__ == module.__name__
    }


def reply_text(body: Mapping[str, Any]) -> str:
    """The text a chat completion answered (its tool calls as JSON when it answered with calls)."""
    choices = body.get("choices") or [{}]
    message = choices[0].get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    if message.get("tool_calls"):
        return orjson.dumps(message["tool_calls"]).decode()
    return ""
