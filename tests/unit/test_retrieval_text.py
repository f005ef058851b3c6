"""Chunking, query terms, BM25 and fusion: pure functions of gateway/retrieval."""

from __future__ import annotations

import itertools

import pytest

from gateway.errors import InvalidRequest
from gateway.retrieval.chunking import chunk_text, sentence_starts
from gateway.retrieval.extract import UnsupportedMediaType, extract_text, media_type
from gateway.retrieval.keywords import query_terms
from gateway.retrieval.ranking import bm25, rrf


def test_chunks_cover_the_text_with_overlap_and_exact_offsets() -> None:
    text = " ".join(f"Sentence number {i} says something about harbors." for i in range(80))
    chunks = chunk_text(text, size=300, overlap=60)
    assert len(chunks) > 5
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(c.text) <= 300
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end  # overlap
        assert b.start > a.start
        assert text[b.start - 2 : b.start] == ". "  # a chunk starts at a sentence
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_korean_sentence_boundaries() -> None:
    text = "서울은 대한민국의 수도이다. 인구는 약 천만 명이다! 정말일까? 그렇다.\n줄바꿈 문장\n\n새 문단"
    starts = sentence_starts(text)
    assert [text[s : s + 3] for s in starts] == ["서울은", "인구는", "정말일", "그렇다", "줄바꿈", "새 문"]
    chunks = chunk_text("가나다라마바사. " * 200, size=100, overlap=20)
    assert all(c.text.startswith("가나다") for c in chunks)


def test_unspaced_text_is_cut_hard() -> None:
    text = "가" * 1000
    chunks = chunk_text(text, size=200, overlap=50)
    assert all(len(c.text) <= 200 for c in chunks) and chunks[-1].end == 1000


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("What is the capital of South Korea?", ["capital", "south", "korea"]),
        ("대한민국의 수도는 어디인가요?", ["대한민국", "수도"]),
        ("서울에서 부산까지 기차로 몇 시간?", ["서울", "부산", "기차", "시간"]),
        (
            "헤이그가 군에서 퇴역한 해는?",
            ["헤이그", "군에서", "퇴역한", "해는"],
        ),  # one-syllable stems stay whole
    ],
)
def test_query_terms(query: str, terms: list[str]) -> None:
    assert query_terms(query) == terms


def test_bm25_prefers_rare_terms_and_rrf_fuses() -> None:
    docs = [(1, "the ferry leaves at nine"), (2, "the ferry to jeju leaves at nine"), (3, "cargo yard")]
    ranked = bm25(docs, ["ferry", "jeju"], total=3)
    assert ranked[0][0] == 2
    fused = rrf([[1, 2, 3], [2, 3]])
    assert [cid for cid, _ in fused] == [2, 3, 1]  # in both lists beats first in one


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a Helvetica text layer, written by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_text_layer() -> None:
    assert extract_text(minimal_pdf("The night ferry leaves pier 7."), "application/pdf") == (
        "The night ferry leaves pier 7."
    )
    with pytest.raises(InvalidRequest, match="no text layer"):
        extract_text(minimal_pdf(""), "application/pdf")


def test_extract_rules() -> None:
    assert media_type("text/markdown; charset=utf-8", None) == "text/markdown"
    assert media_type("application/octet-stream", "a.PDF") == "application/pdf"
    with pytest.raises(UnsupportedMediaType):
        media_type("image/png", "a.png")
    assert extract_text("\ufeffa\r\nb".encode(), "text/plain") == "a\nb"
    for bad in (b"a\x00b", "é".encode("latin-1"), b"  "):
        with pytest.raises(InvalidRequest):
            extract_text(bad, "text/plain")
