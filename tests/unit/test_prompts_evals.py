"""Pure parts of issue #24: the sandboxed template renderer, assertions, the paired statistics,
dataset parsing and the promptfoo importer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.evals import assertions, compare, datasets_io, promptfoo
from gateway.evals.judge import parse_grade
from gateway.prompts import template


def test_template_renders_names_only_and_never_re_renders_values() -> None:
    messages = template.normalise([{"role": "user", "content": "Hi {{ name }}, {{name}} and {{ other }}"}])
    assert template.variables(messages) == ["name", "other"]
    out = template.render(messages, {"name": "{{ other }}", "other": 3})
    assert out[0]["content"] == "Hi {{ other }}, {{ other }} and 3"


@pytest.mark.parametrize(
    "text",
    [
        "{{ name.__class__.__mro__ }}",
        "{{ name['x'] }}",
        "{{ name | safe }}",
        "{{ lipsum.__globals__.os.popen('id').read() }}",
        "{% import os %}",
        "{# comment #}",
        "{{ 1 + 1 }}",
        "{{ }}",
    ],
)
def test_template_refuses_expressions(text: str) -> None:
    with pytest.raises(template.TemplateError) as caught:
        template.normalise(text)
    assert caught.value.code == "invalid_template"


def test_missing_variables_are_named() -> None:
    messages = template.normalise("{{ a }} {{ b }} {{ c }}")
    with pytest.raises(template.MissingVariables) as caught:
        template.render(messages, {"b": 1})
    assert "a, c" in caught.value.message and caught.value.param == "prompt_variables.a"


def test_template_shape_errors() -> None:
    for bad in ([], [{"role": "wizard", "content": "x"}], [{"role": "user", "content": 3}], ["x"]):
        with pytest.raises(template.TemplateError):
            template.normalise(bad)  # type: ignore[arg-type]


def _run(spec: dict[str, Any], text: str, **extra: Any) -> assertions.Verdict:
    answer = assertions.Answer(
        text,
        extra.get("latency", 10.0),
        extra.get("cost", 0.001),
        extra.get("vars", {}),
        extra.get("expected"),
    )
    assertions.check([spec], custom=extra.get("custom"))
    tools = assertions.Tools(
        embed=extra.get("embed"), judge=extra.get("judge"), custom=extra.get("custom", {})
    )
    return asyncio.run(assertions.evaluate(spec, answer, tools))


@pytest.mark.parametrize(
    ("spec", "text", "passed"),
    [
        ({"type": "equals", "value": "yes"}, " yes ", True),
        ({"type": "contains", "value": ["a", "b"]}, "a", False),
        ({"type": "contains", "value": ["a", "b"], "mode": "any"}, "a", True),
        ({"type": "icontains", "value": "HELLO"}, "hello there", True),
        ({"type": "contains-any", "value": ["x", "y"]}, "y", True),
        ({"type": "contains-all", "value": ["x", "y"]}, "y", False),
        ({"type": "not-contains", "value": ["bad", "worse"]}, "good", True),
        ({"type": "not-contains", "value": ["bad", "worse"]}, "bad", False),
        ({"type": "not-contains", "value": ["bad", "worse"], "mode": "any"}, "bad", True),
        ({"type": "regex", "value": r"^\d{3}$"}, "123", True),
        ({"type": "not-regex", "value": "secret"}, "public", True),
        ({"type": "is-json"}, '```json\n{"a": 1}\n```', True),
        ({"type": "is-json"}, "{nope", False),
        ({"type": "json-schema", "value": {"type": "object", "required": ["a"]}}, '{"a": 1}', True),
        ({"type": "json-schema", "value": {"type": "object", "required": ["a"]}}, '{"b": 1}', False),
        ({"type": "numeric", "value": 3.14, "tolerance": 0.01}, "pi is 3.141", True),
        ({"type": "numeric", "value": 10}, "no number", False),
        ({"type": "latency", "threshold": 5}, "x", False),
        ({"type": "cost", "threshold": 0.01}, "x", True),
    ],
)
def test_assertions(spec: dict[str, Any], text: str, passed: bool) -> None:
    assert _run(spec, text).passed is passed


def test_assertion_values_are_filled_from_the_case() -> None:
    verdict = _run(
        {"type": "contains", "value": "{{ word }}-{{ expected }}"},
        "x kiwi-KIWI y",
        vars={"word": "kiwi"},
        expected="KIWI",
    )
    assert verdict.passed


def test_catastrophic_regex_is_cut_off_not_hung() -> None:
    verdict = _run({"type": "regex", "value": r"^(\w+\s?)*$"}, "a" * 5000 + "!")
    assert verdict.passed is False


def test_semantic_similarity_and_rubric_and_custom() -> None:
    async def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts]

    async def judge(rubric: str, answer: str, model: str | None) -> tuple[bool, float, str]:
        return "polite" in answer, 0.8, f"{model}: {rubric}"

    assert _run({"type": "similar", "value": "a cat", "threshold": 0.9}, "the cat", embed=embed).passed
    assert not _run({"type": "similar", "value": "a dog", "threshold": 0.9}, "the cat", embed=embed).passed
    verdict = _run({"type": "llm-rubric", "value": "be polite"}, "polite answer", judge=judge)
    assert verdict.passed and verdict.score == 0.8
    custom = {"long": lambda text, ctx: len(text) / 10}
    assert _run({"type": "python", "value": "long", "threshold": 0.5}, "123456", custom=custom).passed
    with pytest.raises(InvalidRequest):
        assertions.check([{"type": "python", "value": "os.system"}], custom=custom)


def test_judge_verdict_parsing() -> None:
    assert parse_grade('Sure: {"pass": true, "score": 0.7, "reason": "ok"}') == (True, 0.7, "ok")
    assert parse_grade("PASS")[0] is False


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "regex", "value": "("},
        {"type": "regex", "value": "a" * 2000},
        {"type": "json-schema", "value": {"type": "nope"}},
        {"type": "latency"},
        {"type": "contains-all", "value": "x"},
        {"type": "javascript", "value": "1"},
        {"type": "numeric", "value": 1, "tolerance": "x"},
    ],
)
def test_bad_assertions_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        assertions.check([spec])
    assert caught.value.code == "invalid_assertion"


def test_mcnemar_and_paired_t() -> None:
    assert compare.mcnemar_exact(0, 0) == 1.0
    assert compare.mcnemar_exact(5, 5) == 1.0
    assert compare.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert compare.paired_t([0.0, 0.0, 0.0]).p_value == 1.0
    assert compare.paired_t([0.1, 0.2, 0.15, 0.12]).p_value < 0.01


def test_report_verdicts() -> None:
    base = [compare.Outcome(f"c{i}", True, 1.0, 10.0, 0.001) for i in range(30)]
    worse = [compare.Outcome(f"c{i}", i < 10, 1.0 if i < 10 else 0.0, 12.0, 0.002) for i in range(30)]
    same = [compare.Outcome(f"c{i}", True, 1.0, 11.0, 0.001) for i in range(30)]
    report = compare.report({"a": base, "b": worse, "c": same}, baseline="a")
    assert report["variants"]["a"]["pass_rate"] == 1.0 and report["variants"]["a"]["pass_rate_ci95"][0] > 0.85
    assert report["comparisons"]["b"]["verdict"] == "worse" and report["comparisons"]["b"]["significant"]
    assert report["comparisons"]["c"]["verdict"] == "no significant difference"
    assert len(report["comparisons"]["b"]["changed_cases"]) == 20


def test_dataset_csv_json_jsonl_round_trip() -> None:
    csv_text = (
        b"input,expected,tags,verified,city,assert\n"
        b'hi,HI,"a;b",yes,Seoul,"[{""type"": ""contains"", ""value"": ""x""}]"\n'
    )
    cases = datasets_io.parse(csv_text, "csv", room=10)
    assert cases == [
        {
            "input": "hi",
            "vars": {"city": "Seoul"},
            "expected": "HI",
            "assertions": [{"type": "contains", "value": "x"}],
            "tags": ["a", "b"],
            "verified": True,
        }
    ]
    listed = [{**c, "assert": c["assertions"]} for c in cases]
    for fmt in datasets_io.FORMATS:
        again = datasets_io.parse(datasets_io.dump(listed, fmt), fmt, room=10)
        assert again[0]["vars"] == {"city": "Seoul"} and again[0]["verified"] is True


def test_dataset_limits_and_errors() -> None:
    with pytest.raises(InvalidRequest) as caught:
        datasets_io.parse(b"a\n" + b"x\n" * 11, "csv", room=10)
    assert caught.value.code == "too_many_cases"
    for body, fmt in (
        (b"\xff\xfe", "csv"),
        (b"[1]", "json"),
        (b"{", "jsonl"),
        (b"a\n1,2\n", "csv"),
        (b'[{"verified": "maybe"}]', "json"),
    ):
        with pytest.raises(InvalidRequest):
            datasets_io.parse(body, fmt, room=10)  # type: ignore[arg-type]


def test_promptfoo_import() -> None:
    body = promptfoo.parse(b"""
prompts: ['[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "{{q}}"}]', "Q: {{q}}"]
providers: [openai:chat:small, {id: "prism:large", label: big, config: {temperature: 0, apiKey: x}}]
defaultTest:
  vars: {lang: en}
  assert: [{type: is-json, value: {type: object}}]
  options: {provider: openai:judge}
tests:
  - vars: {q: hi}
    assert: [{type: contains, value: hi}]
""")
    assert [v["label"] for v in body["variants"]] == ["p1:small", "p1:big", "p2:small", "p2:big"]
    assert body["variants"][0]["messages"][0] == {"role": "system", "content": "Be brief"}
    assert body["variants"][1]["options"] == {"temperature": 0}
    assert body["assert"] == [{"type": "json-schema", "value": {"type": "object"}}]
    assert body["cases"][0]["vars"] == {"lang": "en", "q": "hi"} and body["judge_model"] == "judge"
