"""The ``search`` tool through the tool registry, on a real SQLite + sqlite-vec index (its own
schema) and the real built-in encoder (``encode_texts``, the model behind ``prism-embed``).

The embeddings service is replaced by a thin adapter over that encoder: this test is about the
tool (caller context, collection choice, citations, errors), not about usage accounting, which
``test_retrieval_http.py`` covers through a real gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config.tools import ToolsConfig
from gateway.providers.embeddings_local import encode_texts
from gateway.retrieval.search_tool import build_search_tool
from gateway.retrieval.service import RetrievalService
from gateway.retrieval.store_sqlite import SqliteStore, index_path
from gateway.security.principal import Principal, Role
from gateway.tools.caller import acting_as
from gateway.tools.registry import ToolRegistry

pytestmark = pytest.mark.integration

ADMIN = Principal(user_id="admin-1", role=Role.ADMIN)
READER = Principal(user_id="reader-1")
OUTSIDER = Principal(user_id="outsider-1")
HANDBOOK = "Vacation requests go to the team lead two weeks ahead.\n\n휴가 신청은 2주 전에 팀장에게 합니다."


class LocalEmbeddings:
    """``embed_texts`` over the real local encoder (what ``prism-embed`` runs)."""

    async def embed_texts(
        self, texts: list[str], *, model: str, principal: Principal, request_id: str
    ) -> Any:
        vectors = await asyncio.to_thread(encode_texts, texts)

        class Result:
            pass

        result = Result()
        result.vectors = vectors  # type: ignore[attr-defined]
        return result


@pytest.fixture
def service(tmp_path: Path) -> RetrievalService:
    return RetrievalService(
        store=SqliteStore(index_path(str(tmp_path / "prism.db"))), embeddings=LocalEmbeddings()
    )  # type: ignore[arg-type]


async def _setup(service: RetrievalService) -> tuple[int, int]:
    assert await service.probe() is None
    public = await service.create_collection(
        principal=ADMIN, request_id="r", name="handbook", chunk_chars=300, chunk_overlap=50
    )
    private = await service.create_collection(
        principal=ADMIN,
        request_id="r",
        name="payroll",
        chunk_chars=300,
        chunk_overlap=50,
        readers=["reader-1"],
    )
    await service.ingest(
        principal=ADMIN,
        request_id="r",
        collection_id=public.id,
        data=HANDBOOK.encode(),
        kind="text/plain",
        filename="handbook.txt",
    )
    await service.ingest(
        principal=ADMIN,
        request_id="r",
        collection_id=private.id,
        data=b"Salaries are paid on the 25th of each month.",
        kind="text/plain",
        filename="payroll.txt",
    )
    return public.id, private.id


def test_search_tool_cites_and_respects_visibility(service: RetrievalService) -> None:
    async def run() -> None:
        await _setup(service)
        tool = build_search_tool(service)
        assert tool is not None
        registry = ToolRegistry([tool], config=ToolsConfig(enabled=()))
        await registry.probe()
        spec = registry.specs()[0]["function"]
        assert spec["name"] == "search" and "query" in spec["parameters"]["properties"]

        no_caller = await registry.call("search", {"query": "vacation"}, call_id="c0")
        assert not no_caller.ok and no_caller.error_code == "unavailable"

        with acting_as(READER, "req-1"):
            result = await registry.call(
                "search", json.dumps({"query": "휴가 신청은 누구에게?"}), call_id="c1"
            )
        assert result.ok, result.content
        passages = result.data["passages"]
        assert passages[0]["ref"] == "[1]"
        assert passages[0]["citation"]["filename"] == "handbook.txt"
        assert set(result.data["collections"]) == {"handbook", "payroll"}

        with acting_as(OUTSIDER, "req-2"):
            hidden = await registry.call("search", {"query": "salary", "collection": "payroll"}, call_id="c2")
            visible = await registry.call("search", {"query": "salary"}, call_id="c3")
        assert not hidden.ok and hidden.error_code == "invalid_arguments"
        assert visible.ok and visible.data["collections"] == ["handbook"]
        assert all(p["citation"]["collection"] == "handbook" for p in visible.data["passages"])

        with acting_as(READER, "req-3"):
            bad = await registry.call("search", {"query": "x", "k": 99}, call_id="c4")
        assert not bad.ok and bad.error_code == "invalid_arguments"

    asyncio.run(run())
