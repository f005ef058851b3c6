"""Intent classifier: held-out accuracy / tier targets, determinism and robustness (no latency asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.intent import DEFAULT_INTENT_TIERS, IntentClassifier, IntentResult, decide_tier

DATA = Path(__file__).resolve().parents[1] / "data" / "routing" / "routing.jsonl"


@pytest.fixture(scope="module")
def clf() -> IntentClassifier:
    return IntentClassifier.load()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def held_out(clf: IntentClassifier, rows: list[dict[str, str]]) -> list[tuple[dict[str, str], IntentResult]]:
    return [(r, clf.classify(r["text"])) for r in rows if r["split"] == "test"]


def test_dataset_shape(rows: list[dict[str, str]]) -> None:
    assert len(rows) >= 600
    assert {r["intent"] for r in rows} == set(DEFAULT_INTENT_TIERS)
    korean = sum(r["lang"] in ("ko", "mixed") for r in rows) / len(rows)
    assert korean >= 0.40
    test_share = sum(r["split"] == "test" for r in rows) / len(rows)
    assert 0.2 <= test_share <= 0.3
    assert len({r["text"] for r in rows}) == len(rows)


def test_held_out_accuracy_and_macro_f1(
    clf: IntentClassifier, held_out: list[tuple[dict[str, str], IntentResult]]
) -> None:
    acc = sum(res.label == r["intent"] for r, res in held_out) / len(held_out)
    f1s = []
    for lab in clf.labels:
        tp = sum(res.label == lab and r["intent"] == lab for r, res in held_out)
        fp = sum(res.label == lab and r["intent"] != lab for r, res in held_out)
        fn = sum(res.label != lab and r["intent"] == lab for r, res in held_out)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    assert acc >= 0.90
    assert sum(f1s) / len(f1s) >= 0.88


def test_tier_targets(held_out: list[tuple[dict[str, str], IntentResult]]) -> None:
    routed = [(r["tier"], decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS)) for r, res in held_out]
    strong = [t for gold, t in routed if gold == "strong"]
    cheap = [t for gold, t in routed if gold == "cheap"]
    assert sum(t == "cheap" for t in strong) / len(strong) <= 0.05
    assert sum(t == "cheap" for t in cheap) / len(cheap) >= 0.50


def test_result_ranges(held_out: list[tuple[dict[str, str], IntentResult]]) -> None:
    for _, res in held_out:
        assert 0.0 <= res.confidence <= 1.0
        assert 0.0 <= res.complexity <= 1.0
        assert res.language in ("en", "ko", "mixed")


def test_deterministic(clf: IntentClassifier) -> None:
    text = "이 코드 왜 느린지 설명하고 최적화해줘: for i in range(n): for j in range(n): ..."
    first = clf.classify(text)
    for _ in range(3):
        assert clf.classify(text) == first
    assert IntentClassifier.load().classify(text) == first


DEGENERATE = ["", "   ", "\n\t\n", "?", "ㅋ", "x" * 200_000, "가" * 50_000, "```" * 10_000]


@pytest.mark.parametrize("text", DEGENERATE)
def test_degenerate_inputs_do_not_crash(clf: IntentClassifier, text: str) -> None:
    res = clf.classify(text)
    assert res.label in clf.labels
    assert decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS) in ("cheap", "strong")


@pytest.mark.parametrize("text", ["안녕하세요!", "ㅎㅇ", "안녕 뭐해? ㅋㅋ", "고마워~"])
def test_korean_greeting_is_cheap_small_talk(clf: IntentClassifier, text: str) -> None:
    res = clf.classify(text)
    assert res.label == "small_talk"
    assert res.language == "ko"
    assert decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS) == "cheap"


def test_korean_multi_step_reasoning_is_strong(clf: IntentClassifier) -> None:
    text = ("철수는 영희보다 3살 많고 영희는 민수 나이의 2배이다. 세 사람 나이의 합이 41일 때 각자의 나이를 "
            "구하고, 풀이 과정을 단계별로 설명한 뒤 검산까지 해줘.")
    res = clf.classify(text)
    assert res.label == "reasoning"
    assert decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS) == "strong"


def test_languages(clf: IntentClassifier) -> None:
    assert clf.classify("How do I reverse a list in Python?").language == "en"
    assert clf.classify("파이썬에서 리스트 뒤집는 법 알려줘").language == "ko"
    assert clf.classify("이 email 한 줄 summary 해줘 please, the client approved it").language == "mixed"


def test_follow_up_uses_context(clf: IntentClassifier) -> None:
    res = clf.classify("and in Korean?", context=["Translate 'good morning' into Japanese"])
    assert res.label == "translation"


def test_decide_tier_rules() -> None:
    easy = IntentResult(label="translation", confidence=0.95, complexity=0.1, language="en")
    assert decide_tier(easy, intent_tiers=DEFAULT_INTENT_TIERS) == "cheap"
    hard = IntentResult(label="translation", confidence=0.95, complexity=0.8, language="en")
    assert decide_tier(hard, intent_tiers=DEFAULT_INTENT_TIERS) == "strong"
    unsure = IntentResult(label="translation", confidence=0.3, complexity=0.1, language="en")
    assert decide_tier(unsure, intent_tiers=DEFAULT_INTENT_TIERS) == "strong"
    unknown = IntentResult(label="legal", confidence=0.9, complexity=0.1, language="en")
    assert decide_tier(unknown, intent_tiers=DEFAULT_INTENT_TIERS) == "strong"
    assert decide_tier(unknown, intent_tiers={"legal": "mid"}) == "mid"
    assert decide_tier(easy, intent_tiers=DEFAULT_INTENT_TIERS, strong_complexity=0.05) == "strong"


def test_labels_come_from_model(clf: IntentClassifier) -> None:
    assert set(clf.labels) == set(DEFAULT_INTENT_TIERS)
