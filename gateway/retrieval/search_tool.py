"""The ``search`` tool: passages from the operator's collections, with citations.

The tool searches as the principal of the request the tool loop (or ``/mcp``) is serving: they wrap
their calls in ``gateway.tools.caller.acting_as`` (a context variable), so collection visibility,
the embedding model's allow-list, quotas and the usage record are the caller's. Without a
caller the tool answers ``unavailable``. ``collection`` (a name or id) picks one collection; left
out, the tool searches every collection the caller may read (at most ``MAX_COLLECTIONS``) and
fuses the rankings (reciprocal rank fusion).

Each passage carries ``citation`` (collection, document id and file name, chunk number and the
character offsets ``start``/``end`` in the document's extracted text) and ``ref`` (``[1]``...),
which the description asks the model to cite. Retrieved text is untrusted: the tool returns it
unfiltered (``flagged`` says the injection scorer flagged the chunk at ingest) and the tool loop
passes tool results through the injection detector before the model sees them.

``build_search_tool(retrieval)`` is the factory the lifespan's registry uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import GatewayError
from gateway.retrieval.ranking import rrf
from gateway.retrieval.service import RetrievalService
from gateway.tools.base import ToolError, parse_arguments, schema_of
from gateway.tools.caller import current_caller

MAX_COLLECTIONS = 8


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, description="What to look for, in any language")
    collection: str | None = Field(
        default=None, max_length=128, description="A collection's name or id; omit to search all you may read"
    )
    k: int = Field(default=5, ge=1, le=10, description="How many passages")


class SearchTool:
    name = "search"
    description = (
        "Search the operator's document collections (English and Korean) and return the most relevant "
        "passages with citations. Cite what you use as [n] with the file name."
    )

    def __init__(self, retrieval: RetrievalService) -> None:
        self.retrieval = retrieval
        self.parameters = schema_of(_Arguments)

    async def probe(self) -> str | None:
        return self.retrieval.unavailable

    async def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        args = parse_arguments(_Arguments, arguments)
        if "\x00" in args.query:
            raise ToolError("invalid_arguments", "query contains NUL")
        caller = current_caller()
        if caller is None:
            raise ToolError("unavailable", "search runs only for a request (no caller)")
        principal, request_id = caller
        try:
            readable = await self.retrieval.list_collections(principal)
            if args.collection is not None:
                chosen = [c for c in readable if c.name == args.collection or str(c.id) == args.collection]
                if not chosen:
                    raise ToolError("invalid_arguments", f"no collection {args.collection!r} you may read")
            else:
                chosen = readable[:MAX_COLLECTIONS]
            if not chosen:
                return {"passages": [], "note": "no collections to search"}
            results = [
                await self.retrieval.search(
                    principal=principal,
                    request_id=request_id or uuid.uuid4().hex,
                    collection_id=c.id,
                    query=args.query,
                    k=args.k,
                )
                for c in chosen
            ]
        except GatewayError as exc:
            if exc.status_code == 429:
                raise ToolError("limit_exceeded", exc.message) from None
            raise ToolError("execution_error", exc.message) from None
        passages = _fuse(results, args.k)
        return {
            "passages": [{"ref": f"[{n}]", **p} for n, p in enumerate(passages, start=1)],
            "collections": [c.name for c in chosen],
        }


def _fuse(results: list[list[dict[str, Any]]], k: int) -> list[dict[str, Any]]:
    if len(results) == 1:
        return results[0][:k]
    by_id: dict[int, dict[str, Any]] = {}
    rankings = []
    for hits in results:
        rankings.append([h["citation"]["chunk_id"] for h in hits])
        for h in hits:
            by_id[h["citation"]["chunk_id"]] = h
    return [by_id[cid] for cid, _ in rrf(rankings)[:k]]


def build_search_tool(retrieval: RetrievalService | None) -> SearchTool | None:
    """The tool, or None where retrieval is not served (in-memory SQLite)."""
    return SearchTool(retrieval) if retrieval is not None else None
