"""Issue #21: the fast first stage, the batched encoder pass and the off-loop batching thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gateway.intent import DEFAULT_INTENT_TIERS, IntentClassifier, IntentResult, decide_tier
from gateway.intent.batcher import IntentBatcher, classify_off_loop
from gateway.intent.classifier import _shared_encoder
from gateway.intent.features import Signals, analyse
from gateway.intent.ngram import NGRAM_BUCKETS, ngram_ids

DATA = Path(__file__).resolve().parents[1] / "data" / "routing"
TEXTS = [
    "안녕 ㅎㅇ",
    "How do I reverse a list in Python?",
    "이 email 한 줄 summary 해줘 please, the client approved it",
    "Prove that the square root of 2 is irrational, step by step.",
    "x",
    "How do I reverse a list in Python?",  # a duplicate inside one batch
    "수수께끼: 먹으면 먹을수록 배가 고파지는 건?",
]


def same(a: IntentResult, b: IntentResult) -> bool:
    """Equal up to float rounding (a batched pass sums in another order)."""
    return (a.label, a.language, a.stage) == (b.label, b.language, b.stage) and (
        abs(a.confidence - b.confidence) < 1e-4 and abs(a.complexity - b.complexity) < 1e-4
    )


@pytest.fixture(scope="module")
def clf() -> IntentClassifier:
    return IntentClassifier.load()


def test_batched_forward_matches_one_at_a_time() -> None:
    enc = _shared_encoder()
    enc.forget_texts()
    batch = enc.encode_batch(TEXTS)
    enc.forget_texts()
    single = np.stack([enc.encode(t) for t in TEXTS])
    assert batch.shape == (len(TEXTS), 512)
    assert float(np.einsum("ij,ij->i", batch, single).min()) > 0.99999
    again = enc.encode_batch(TEXTS)  # now every text is a cache hit (of the one-at-a-time pass)
    np.testing.assert_array_equal(again, single)


def test_classify_many_matches_the_encoder_stage(clf: IntentClassifier) -> None:
    items: list[tuple[str, Sequence[str]]] = [(t, ()) for t in TEXTS]
    items.append(("and in Korean?", ("Translate 'good morning' into Japanese",)))  # follow-up: joined text
    items.append(("", ()))
    many = clf.classify_many(items)
    given = clf.classify_many(items, [analyse(t) for t, _ in items])  # the fast stage's signals, reused
    assert all(same(a, b) for a, b in zip(many, given, strict=True))
    one = [clf.classify_encoder(t, context=c) for t, c in items]
    for a, b in zip(many, one, strict=True):
        assert (a.label, a.language, a.stage) == (b.label, b.language, "encoder")
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        assert a.complexity == pytest.approx(b.complexity, abs=1e-4)
    assert many[-2].label == "translation"


def test_fast_stage_is_used_only_when_sure(clf: IntentClassifier) -> None:
    assert clf.has_fast_stage
    rows = [json.loads(x) for x in (DATA / "routing.jsonl").read_text(encoding="utf-8").splitlines() if x]
    test = [r["text"] for r in rows if r["split"] == "test"]
    fast = [clf.classify_fast(t) for t in test]
    answered = [r for r in fast if r is not None]
    assert 0.3 <= len(answered) / len(test) < 1.0  # it answers a good share, and defers the rest
    assert all(r.stage == "fast" and r.confidence >= clf._fast.threshold for r in answered)  # type: ignore[union-attr]
    for text, res in zip(test, fast, strict=True):
        assert clf.classify(text) == (res if res is not None else clf.classify_encoder(text))
    # a short follow-up needs the previous turn: always the encoder
    assert clf.classify_fast("and in Korean?", context=["Translate 'good morning' into Japanese"]) is None


def test_ngram_ids_are_stable_and_bounded() -> None:
    a = ngram_ids("bench 1a2b3c-17: explain why the sky is blue")
    b = ngram_ids("bench 9f8e7d-4242: explain why the sky is blue")
    np.testing.assert_array_equal(a, b)  # numbers and ids are one shape token
    assert a.dtype == np.int64 and int(a.min()) >= 0 and int(a.max()) < NGRAM_BUCKETS
    assert len(ngram_ids("가" * 100_000)) == len(ngram_ids("가" * 10_000))  # head + tail only
    assert len(ngram_ids("")) == 0


def test_korean_riddles_and_ordering_puzzles_go_strong(clf: IntentClassifier) -> None:
    for text in ("수수께끼: 씻으면 씻을수록 더러워지는 것은?",
                 "지호는 나래보다 키가 크고 나래는 현우보다 커. 누가 제일 작아?"):
        res = clf.classify(text)
        assert res.label == "reasoning", text
        assert decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS) == "strong", text


def test_puzzle_set_held_out_per_language(clf: IntentClassifier) -> None:
    rows = [json.loads(x) for x in (DATA / "puzzles.jsonl").read_text(encoding="utf-8").splitlines() if x]
    for lang in ("en", "ko"):
        hard = [r for r in rows if r["split"] == "test" and r["lang"] == lang and r["tier"] == "strong"]
        cheap = sum(decide_tier(clf.classify(r["text"]), intent_tiers=DEFAULT_INTENT_TIERS) == "cheap"
                    for r in hard)
        assert len(hard) >= 20 and cheap / len(hard) <= 0.05, lang


async def test_off_loop_matches_inline_and_batches_under_concurrency(clf: IntentClassifier) -> None:
    batcher = IntentBatcher(clf)
    texts = [f"request {i}: {t}" for i, t in enumerate(TEXTS * 4)]
    out = await asyncio.gather(*(batcher.classify(t) for t in texts))
    for t, got in zip(texts, out, strict=True):
        assert same(got.result, clf.classify_encoder(t))
        assert got.batch_size >= 1 and got.queue_wait_s >= 0.0
    assert max(c.batch_size for c in out) > 1  # 28 concurrent prompts: not one pass each
    # alone, a prompt is never held back for company
    single = await batcher.classify("What is the capital of France?")
    assert single.batch_size == 1


async def test_off_loop_entry_point(clf: IntentClassifier) -> None:
    text = "How do I reverse a list in Python?"
    got = await classify_off_loop(clf, text)
    assert same(got.result, clf.classify(text))

    class Fixed:  # a test double without the batching API is called inline
        def classify(self, text: str, *, context: tuple[str, ...] = ()) -> IntentResult:
            return IntentResult(label="general", confidence=1.0, complexity=0.0, language="en")

    assert (await classify_off_loop(Fixed(), "hi")).result.label == "general"


async def test_a_failing_batch_fails_its_requests_not_the_thread(clf: IntentClassifier) -> None:
    class Broken(IntentClassifier):
        calls = 0

        def classify_many(
            self, items: Sequence[tuple[str, Sequence[str]]], signals: Sequence[Signals | None] = ()
        ) -> list[IntentResult]:
            Broken.calls += 1
            if Broken.calls == 1:
                raise RuntimeError("boom")
            return super().classify_many(items, signals)

    broken = Broken.__new__(Broken)
    broken.__dict__.update(clf.__dict__)  # the same loaded heads and encoder
    batcher = IntentBatcher(broken)
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.classify("first")
    assert (await batcher.classify("second")).result.label in clf.labels
