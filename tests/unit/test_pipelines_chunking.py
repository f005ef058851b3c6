"""Korean-aware chunking: chunks within the budget, nothing but whitespace lost, sentences kept
whole where they fit, a smaller default budget for Korean."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipelines.chunking import (
    KOREAN_CHUNK_CHARS,
    LATIN_CHUNK_CHARS,
    chunk_text,
    default_chunk_chars,
)

WORDS = st.sampled_from(
    ["행정", "업무의", "운영을", "개선합니다.", "요청함.", "word", "sentence.", "\n\n", "회신", "다"]
)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(WORDS, max_size=300), budget=st.integers(min_value=20, max_value=400))
def test_chunks_respect_the_budget_and_lose_nothing(words: list[str], budget: int) -> None:
    text = " ".join(words)
    chunks = chunk_text(text, max_chars=budget)
    assert all(0 < len(chunk) <= budget for chunk in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())


def test_korean_sentences_stay_whole_and_paragraphs_pack() -> None:
    sentence = "관련 자료를 제출하여 주시기 바랍니다."
    text = " ".join([sentence] * 10) + "\n\n짧은 문단."
    chunks = chunk_text(text, max_chars=60)
    assert all(chunk.endswith(("니다.", "문단.")) for chunk in chunks)
    assert chunk_text("", max_chars=100) == []
    assert chunk_text("짧은 문단.\n\n두 번째.", max_chars=100) == ["짧은 문단.\n\n두 번째."]


def test_default_budget_is_smaller_for_korean() -> None:
    assert default_chunk_chars("가나다라 " * 100) == KOREAN_CHUNK_CHARS
    assert default_chunk_chars("plain words " * 100) == LATIN_CHUNK_CHARS
