"""Pure pieces of the jobs: magic-byte checks, the job-type registry, webhook signatures, progress."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.config.settings import Settings
from gateway.errors import UnsupportedMediaType
from gateway.jobs.graphs import Progress
from gateway.jobs.registry import job_types
from gateway.jobs.uploads import TEXT, check_kind, declared_kind
from gateway.jobs.webhooks import signature

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def test_kinds_are_sniffed_and_a_lying_name_is_refused() -> None:
    assert check_kind(PNG, declared="image/png", accepts_text=False) == "image/png"
    assert check_kind(b"%PDF-1.7\n", declared=None, accepts_text=False) == "application/pdf"
    assert check_kind("공문 본문".encode(), declared="text/plain", accepts_text=True) == TEXT
    with pytest.raises(UnsupportedMediaType) as zip_as_png:
        check_kind(b"PK\x03\x04rest", declared=declared_kind("scan.png", None), accepts_text=False)
    assert zip_as_png.value.code == "content_mismatch" and "ZIP" in zip_as_png.value.message
    with pytest.raises(UnsupportedMediaType) as pdf_as_png:
        check_kind(b"%PDF-1.4", declared="image/png", accepts_text=False)
    assert pdf_as_png.value.code == "content_mismatch"
    with pytest.raises(UnsupportedMediaType) as text_for_ocr:
        check_kind(b"hello", declared=None, accepts_text=False)
    assert text_for_ocr.value.code == "unsupported_media_type"


def test_a_multibyte_character_cut_by_the_sniff_window_is_still_text() -> None:
    head = "가나다".encode()[:-1]
    assert check_kind(head, declared=None, accepts_text=True) == TEXT


def test_job_types_merge_config_over_the_builtins() -> None:
    settings = Settings(
        jobs_types='{"translate": {"pipeline": "m.t:pipeline", "input": "text"}, "summarize": null}'
    )
    types = job_types(settings)
    assert set(types) == {"ocr", "document_analysis", "evaluation", "transcription", "translate"}
    assert types["translate"].accepts_text and not types["ocr"].accepts_text
    with pytest.raises(ValueError, match="module:factory"):
        job_types(Settings(jobs_types='{"x": {"input": "text"}}'))


def test_webhook_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    body = b'{"id":"1"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"s3cret", body, 1700000000) == f"t=1700000000,v1={expected}"


def test_progress_counts_steps_pages_and_tokens() -> None:
    progress = Progress(steps=["extract", "pipeline"])
    progress.step = "extract"
    progress.observe((), "custom", {"step": "extract", "done": 1, "of": 4, "unit": "pages"})
    assert progress.as_dict()["percent"] == 12.5
    progress.observe((), "updates", {"extract": {}})
    progress.observe(("pipeline:1",), "custom", {"step": "map", "tokens": 30})
    view = progress.as_dict()
    assert view["steps_done"] == ["extract"] and view["step"] == "pipeline" and view["tokens"] == 30
