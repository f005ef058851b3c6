"""The 공문 parser on generated letters (scripts/gen_gongmun.py), property-style over the
generator's variations: every layout (dev and held-out), many seeds, text and text-layer PDF; each
field equal to the truth, its evidence span pointing at its text, the document valid against the
published schema."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.pipelines.extract import InputError, input_text, pdf_text
from gateway.pipelines.gongmun.analyze import analyze_letter, parse_letter
from gateway.pipelines.gongmun.fields import FIELDS, KOREAN_ONLY, schema, validation_errors
from gateway.pipelines.llm import SERVICE_PRINCIPAL
from scripts.eval_gongmun import SCORED, correct
from scripts.gen_gongmun import generate, render_pdf


def _check(text: str, language: str, truth: dict[str, Any], layout: str) -> None:
    detected, fields = parse_letter(text)
    assert detected == language
    for name in SCORED:
        if language != "ko" and name in KOREAN_ONLY:
            continue
        got = fields.get(name)
        value = None if got is None else got.value
        assert correct(name, truth.get(name), value), f"{layout} {name}: {truth.get(name)!r} != {value!r}"
        if got is not None and got.span is not None:
            start, end = got.span
            assert 0 <= start <= end <= len(text)
            if isinstance(value, str) and name not in ("date", "reply_deadline"):
                evidence = "".join(text[start:end].split())
                assert "".join(value.split()).casefold() in evidence.casefold() or name == "sender_org"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10_000), split=st.sampled_from(["dev", "heldout"]))
def test_every_layout_parses_to_the_truth(seed: int, split: str) -> None:
    for letter in generate(split, per_layout=1, seed=seed):
        _check(letter.text, letter.language, letter.truth, letter.layout)


def test_text_layer_pdfs_parse_to_the_truth(tmp_path: Path) -> None:
    letters = generate("dev", per_layout=2, seed=3) + generate("heldout", 2, seed=3)
    for index, letter in enumerate(letters):
        path = tmp_path / f"{index}.pdf"
        render_pdf(letter.text, path, font="myeongjo" if index % 2 else "regular")
        _check(pdf_text(path.read_bytes()), letter.language, letter.truth, letter.layout)


def test_the_document_validates_against_the_published_schema() -> None:
    assert schema()["$id"].endswith("gongmun.schema.json")
    for letter in generate("dev", per_layout=2, seed=11):
        document = asyncio.run(analyze_letter(letter.text, llm=None, principal=SERVICE_PRINCIPAL))
        assert validation_errors(document) == []
        assert set(document["fields"]) == set(FIELDS)
        summary = document["fields"]["request_summary"]
        assert summary["source"] == "parser" and summary["confidence"] == 0.5 and summary["value"]
        if letter.language == "en":
            assert document["fields"]["via"]["source"] == "not_applicable"
        for field in document["fields"].values():
            if field["span"] is not None:
                assert field["text"] == letter.text[field["span"][0] : field["span"][1]]
    broken = {"schema": "prism.gongmun/1", "language": "fr", "fields": {}}
    assert validation_errors(broken)


def test_unreadable_inputs_are_refused_clearly() -> None:
    with pytest.raises(InputError, match="not valid base64"):
        input_text({"content_base64": "@@@"})
    with pytest.raises(InputError, match="not a PDF"):
        input_text({"content_base64": "UEsDBA=="})  # a ZIP's magic bytes
    with pytest.raises(InputError, match="OCR first"):
        input_text({"content_base64": "aGk=", "content_type": "image/png"})
    with pytest.raises(InputError, match="neither"):
        input_text({"options": {}})
