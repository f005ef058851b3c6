"""The document pipelines (``summarize``, ``document_analysis``) as durable runs on real Postgres
(a database of their own, created and dropped), their model calls through Prism's in-process
request path (:class:`CompletionService`) to the fake OpenAI upstream, which records the prompts:
chunk counts, map then reduce calls, JSON-schema output; one usage record per model call, charged
to the job's owner."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.agent.durable import open_runtime
from gateway.config.settings import Settings
from gateway.pipelines.chunking import chunk_text
from gateway.pipelines.llm import PipelineLLM
from gateway.pipelines.registry import pipeline_graphs
from gateway.services.completion import CompletionService
from gateway.workers.completions import open_completions
from scripts.gen_gongmun import generate
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.integration.db_fixtures import *  # noqa: F403
from tests.integration.db_fixtures import db_test_settings
from tests.support.durable_graphs import asyncpg_dsn
from tests.support.waiting import eventually

KEY_ENV = "PRISM_TEST_PIPELINE_KEY"
CONFIG = """
version: 1
models:
  pipe-llm:
    provider: openai
    model: gpt-fake
    base_url: {base}
    api_key_env: {key_env}
    tier: cheap
    price_input_per_mtok: 1.0
    price_output_per_mtok: 2.0
    context_window: 128000
"""
OWNER = {"user_id": "owner-1", "api_key_id": "key-1", "tier": "free"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIUpstream]:
    async with FakeOpenAIUpstream() as server:
        yield server


@pytest.fixture
async def completions(
    fake: FakeOpenAIUpstream, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[CompletionService, Settings]]:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    config = tmp_path / "prism.yaml"
    config.write_text(CONFIG.format(base=fake.openai_base_url, key_env=KEY_ENV), encoding="utf-8")
    settings = db_test_settings(pg_url, config=config, durable_worker_id=f"w-{uuid.uuid4().hex[:6]}")
    async with open_completions(settings) as service:
        yield service, settings


async def usage_rows(url: str, user_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(
            await conn.fetch(
                "SELECT request_id, model_requested, status, prompt_tokens, completion_tokens"
                " FROM usage_logs WHERE user_id = $1 AND request_id LIKE 'pipe-%'",
                user_id,
            )
        )
    finally:
        await conn.close()


def chat_requests(fake: FakeOpenAIUpstream) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.path.endswith("/chat/completions")]


async def run(
    settings: Settings, service: CompletionService, graph: str, value: Any
) -> tuple[Any, list[Any]]:
    llm = PipelineLLM(service, model="pipe-llm")
    async with open_runtime(settings, pipeline_graphs(llm)) as runtime:
        handle = await runtime.submit(graph, value)
        events = [event async for event in handle.events()]
    outcome = events[-1].data
    assert outcome.status == "succeeded", outcome.error
    return outcome.result, [e.data for e in events if e.kind == "custom"]


async def test_summarize_map_reduces_a_long_korean_document_through_the_gateway(
    completions: tuple[CompletionService, Settings], fake: FakeOpenAIUpstream, pg_url: str
) -> None:
    service, settings = completions
    paragraph = "행정업무의 운영 및 혁신에 관한 규정에 따라 공문서를 작성하고 관리합니다. " * 12
    text = "\n\n".join(f"{i}. {paragraph}" for i in range(12))
    expected_chunks = len(chunk_text(text, max_chars=1500))
    user = f"owner-{uuid.uuid4().hex[:6]}"
    result, progress = await run(
        settings,
        service,
        "summarize",
        {
            "text": text,
            "options": {"chunk_chars": 1500, "max_words": 50},
            "principal": {**OWNER, "user_id": user},
        },
    )
    last = result["last"]
    assert expected_chunks >= 4
    assert last["chunks"] == expected_chunks and last["language"] == "ko"
    assert last["summary"].startswith("echo: ")
    requests = chat_requests(fake)
    maps = [r for r in requests if r["messages"][0]["content"].startswith("다음은 긴 문서의 일부")]
    reduces = [r for r in requests if r["messages"][0]["content"].startswith("다음은 한 문서의 부분 요약들")]
    assert len(maps) == expected_chunks and len(reduces) >= 1
    assert last["calls"] == len(requests) == len(maps) + len(reduces)
    assert all(r["model"] == "gpt-fake" and r["temperature"] == 0 for r in requests)
    assert {"done": expected_chunks, "of": expected_chunks, "step": "map"} in progress
    rows = await eventually(
        lambda: _rows_when(pg_url, user, len(requests)), "a usage record per model call", within_s=30
    )
    assert {r["model_requested"] for r in rows} == {"pipe-llm"}
    assert all(r["status"] == "ok" and r["prompt_tokens"] > 0 for r in rows)


async def _rows_when(url: str, user: str, count: int) -> list[asyncpg.Record] | None:
    rows = await usage_rows(url, user)
    return rows if len(rows) >= count else None


async def test_a_short_english_document_is_one_call(
    completions: tuple[CompletionService, Settings], fake: FakeOpenAIUpstream
) -> None:
    service, settings = completions
    result, _ = await run(settings, service, "summarize", {"text": "A short note. It says little."})
    assert result["last"]["chunks"] == 1 and result["last"]["calls"] == 1
    (request,) = chat_requests(fake)
    assert request["messages"][0]["content"].startswith("Summarise this document in English")


async def test_document_analysis_parses_then_asks_the_model_with_a_json_schema(
    completions: tuple[CompletionService, Settings], fake: FakeOpenAIUpstream, pg_url: str
) -> None:
    service, settings = completions
    letter = next(
        x
        for x in generate("dev", per_layout=3, seed=5)
        if x.language == "ko" and not x.truth["reply_deadline"]
    )
    fake.configure(
        json_reply=orjson.dumps(
            {"request_summary": "참석자 명단 제출", "reply_deadline": "2026-12-01"}
        ).decode()
    )
    user = f"owner-{uuid.uuid4().hex[:6]}"
    result, progress = await run(
        settings,
        service,
        "document_analysis",
        {"text": letter.text, "options": {"model": "pipe-llm"}, "principal": {**OWNER, "user_id": user}},
    )
    document = result["last"]
    fields = document["fields"]
    assert document["language"] == "ko" and document["model"] == "gpt-fake"
    for name in ("recipient", "title", "doc_number", "date", "sender_org", "disclosure"):
        assert fields[name]["source"] == "parser"
        assert "".join(str(fields[name]["value"]).split()) == "".join(str(letter.truth[name]).split())
    assert fields["request_summary"] == {
        **fields["request_summary"],
        "value": "참석자 명단 제출",
        "source": "llm",
        "confidence": 0.75,
    }
    assert fields["reply_deadline"]["source"] == "llm" and fields["reply_deadline"]["value"] == "2026-12-01"
    assert fields["reply_deadline"]["span"] is None  # not in the text: low confidence
    assert fields["reply_deadline"]["confidence"] == 0.4
    (request,) = chat_requests(fake)
    schema = request["response_format"]["json_schema"]["schema"]
    assert request["response_format"]["type"] == "json_schema"
    assert set(schema["properties"]) == {"request_summary", "reply_deadline"}
    assert [p["step"] for p in progress] == ["extract", "parse", "llm"]
    rows = await eventually(lambda: _rows_when(pg_url, user, 1), "the LLM step's usage record", within_s=30)
    assert len(rows) == 1


async def test_a_model_answer_off_the_schema_leaves_the_parser_fields(
    completions: tuple[CompletionService, Settings], fake: FakeOpenAIUpstream
) -> None:
    service, settings = completions
    letter = generate("dev", per_layout=1, seed=9)[-1]  # English
    result, _ = await run(settings, service, "document_analysis", {"text": letter.text})
    document = result["last"]
    assert document["language"] == "en"
    assert document["warnings"] == [
        "the model's answer does not match the extraction schema: the parser's fields stand"
    ]
    assert document["fields"]["request_summary"]["source"] == "parser"
    assert document["fields"]["via"]["source"] == "not_applicable"
