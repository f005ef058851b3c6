"""The retrieval use cases: collections, ingest (extract → chunk → flag → embed → store), search.

Who may do what: creating and deleting collections and uploading or deleting documents needs the
admin role (checked by the API); searching a collection needs to be one of its ``readers`` (user
ids), or any signed-in user when ``readers`` is null, or an admin. A collection the caller may not
read is a 404, the same answer as one that does not exist.

Embeddings go through ``EmbeddingService.embed_texts`` with the caller's principal, so the
model allow-lists, quotas, the PII policy of the destination and the usage record apply to
indexing and to queries as to ``/v1/embeddings``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from gateway.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, ServiceUnavailable
from gateway.guardrails.injection import InjectionDetector
from gateway.observability import access
from gateway.observability.tracing import tracer
from gateway.retrieval import metrics
from gateway.retrieval.chunking import chunk_text
from gateway.retrieval.extract import extract_text
from gateway.retrieval.keywords import query_terms
from gateway.retrieval.ranking import bm25, rrf
from gateway.retrieval.store import CollectionRow, NewChunk, NewDocument, Store
from gateway.security.principal import Principal
from gateway.services.embeddings import EmbeddingService

log = structlog.get_logger("prism.retrieval")

Mode = Literal["hybrid", "dense", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")

CANDIDATES = 50
"""How many hits each index contributes before fusion."""
KEYWORD_ROWS = 5000
"""At most this many chunks containing a query term are scored (per search)."""
INJECTION_FLAG = 0.5
"""A chunk scoring at least this (the detector's operating threshold) is stored ``flagged``."""


@dataclass(frozen=True, slots=True)
class RetrievalLimits:
    max_document_chars: int = 2_000_000
    max_chunks_per_document: int = 10_000
    default_embedding_model: str = "prism-embed"


class RetrievalService:
    def __init__(
        self,
        *,
        store: Store,
        embeddings: EmbeddingService,
        detector: InjectionDetector | None = None,
        limits: RetrievalLimits | None = None,
    ) -> None:
        self.store = store
        self.embeddings = embeddings
        self.detector = detector or InjectionDetector()
        self.limits = limits or RetrievalLimits()
        self.unavailable: str | None = None

    @property
    def backend(self) -> str:
        return self.store.backend

    async def probe(self) -> str | None:
        """Once at start-up: why retrieval cannot work here (missing extension), else None."""
        try:
            self.unavailable = await self.store.check()
        except Exception as exc:
            self.unavailable = f"retrieval index unavailable: {type(exc).__name__}: {exc}"
        if self.unavailable:
            log.warning("retrieval_unavailable", backend=self.backend, reason=self.unavailable)
        return self.unavailable

    def _ready(self) -> None:
        if self.unavailable:
            raise ServiceUnavailable(f"Retrieval is not available: {self.unavailable}")

    # ---------------------------------------------------------------- collections ----

    async def create_collection(
        self,
        *,
        principal: Principal,
        request_id: str,
        name: str,
        description: str = "",
        embedding_model: str | None = None,
        chunk_chars: int = 1000,
        chunk_overlap: int = 150,
        readers: list[str] | None = None,
    ) -> CollectionRow:
        self._ready()
        if not 0 <= chunk_overlap < chunk_chars // 2:
            raise InvalidRequest(
                "chunk_overlap must be at least 0 and under half of chunk_chars", param="chunk_overlap"
            )
        if any(c.name == name for c in await self.store.list_collections()):
            raise Conflict(f"A collection named {name!r} exists", param="name")
        model = embedding_model or self.limits.default_embedding_model
        probe = await self.embeddings.embed_texts(
            ["dimension probe"], model=model, principal=principal, request_id=request_id
        )
        try:
            row = await self.store.create_collection(
                name=name,
                description=description,
                embedding_model=model,
                dimensions=len(probe.vectors[0]),
                chunk_chars=chunk_chars,
                chunk_overlap=chunk_overlap,
                readers=readers,
                created_by=principal.user_id,
            )
        except Exception as exc:
            # Two admins creating the same name at once: the unique constraint decides (any driver).
            if type(exc).__name__ == "IntegrityError":
                raise Conflict(f"A collection named {name!r} exists", param="name") from None
            raise
        log.info("retrieval_collection_created", collection_id=row.id, model=model, dimensions=row.dimensions)
        return row

    async def list_collections(self, principal: Principal) -> list[CollectionRow]:
        self._ready()
        return [c for c in await self.store.list_collections() if may_read(principal, c)]

    async def collection(self, principal: Principal, collection_id: int) -> CollectionRow:
        """The collection, or 404 when it does not exist or the caller may not read it."""
        self._ready()
        row = await self.store.get_collection(collection_id)
        if row is None or not may_read(principal, row):
            raise NotFound(f"No collection {collection_id}", code="collection_not_found")
        return row

    async def delete_collection(self, principal: Principal, collection_id: int) -> None:
        await self.collection(principal, collection_id)
        await self.store.delete_collection(collection_id)
        log.info("retrieval_collection_deleted", collection_id=collection_id)

    # ---------------------------------------------------------------- documents ----

    async def ingest(
        self,
        *,
        principal: Principal,
        request_id: str,
        collection_id: int,
        data: bytes,
        kind: str,
        filename: str,
    ) -> dict[str, Any]:
        coll = await self.collection(principal, collection_id)
        started = time.perf_counter()
        outcome = "error"
        with tracer().start_as_current_span(
            "retrieval.ingest",
            attributes={
                "prism.retrieval.collection_id": collection_id,
                "prism.retrieval.backend": self.backend,
            },
        ) as span:
            try:
                text = await asyncio.to_thread(extract_text, data, kind)
                if len(text) > self.limits.max_document_chars:
                    raise PayloadTooLarge(
                        f"The document has {len(text)} characters; at most {self.limits.max_document_chars}"
                    )
                pieces = chunk_text(text, size=coll.chunk_chars, overlap=coll.chunk_overlap)
                if len(pieces) > self.limits.max_chunks_per_document:
                    raise PayloadTooLarge(
                        f"The document makes {len(pieces)} chunks; at most "
                        f"{self.limits.max_chunks_per_document}"
                    )
                scores = await asyncio.to_thread(
                    lambda: [self.detector.score(p.text, role="tool").score for p in pieces]
                )
                embedded = await self.embeddings.embed_texts(
                    [p.text for p in pieces],
                    model=coll.embedding_model,
                    principal=principal,
                    request_id=request_id,
                )
                chunks = [
                    NewChunk(
                        seq=p.seq,
                        start=p.start,
                        end=p.end,
                        content=p.text,
                        injection_score=round(s, 4),
                        flagged=s >= INJECTION_FLAG,
                        embedding=v,
                    )
                    for p, s, v in zip(pieces, scores, embedded.vectors, strict=True)
                ]
                stored = await self.store.add_document(
                    NewDocument(
                        collection_id=collection_id,
                        filename=filename,
                        content_type=kind,
                        size_bytes=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                        chars=len(text),
                        created_by=principal.user_id,
                        chunks=chunks,
                    )
                )
                outcome = "ok"
            finally:
                duration = time.perf_counter() - started
                metrics.INGESTS.labels(backend=self.backend, outcome=outcome).inc()
                metrics.INGEST_LATENCY.labels(backend=self.backend).observe(duration)
            span.set_attribute("prism.retrieval.chunks", len(chunks))
            metrics.CHUNKS.labels(backend=self.backend).inc(len(chunks))
            metrics.FLAGGED_CHUNKS.labels(backend=self.backend).inc(stored["flagged_chunks"])
        _note(
            collection_id=collection_id,
            retrieval_chunks=len(chunks),
            retrieval_flagged=stored["flagged_chunks"],
        )
        log.info(
            "retrieval_ingest",
            collection_id=collection_id,
            document_id=stored["id"],
            chars=len(text),
            chunks=len(chunks),
            flagged_chunks=stored["flagged_chunks"],
            duration_ms=round(duration * 1000, 1),
        )
        return {
            "id": stored["id"],
            "object": "collection.document",
            "collection_id": collection_id,
            "filename": filename,
            "content_type": kind,
            "bytes": len(data),
            "chars": len(text),
            "chunks": len(chunks),
            "flagged_chunks": stored["flagged_chunks"],
            "created_at": stored["created_at"].isoformat(),
        }

    async def list_documents(self, principal: Principal, collection_id: int) -> list[dict[str, Any]]:
        await self.collection(principal, collection_id)
        return await self.store.list_documents(collection_id)

    async def delete_document(self, principal: Principal, collection_id: int, document_id: int) -> None:
        await self.collection(principal, collection_id)
        if not await self.store.delete_document(collection_id, document_id):
            raise NotFound(
                f"No document {document_id} in collection {collection_id}", code="document_not_found"
            )

    # ---------------------------------------------------------------- search ----

    async def search(
        self,
        *,
        principal: Principal,
        request_id: str,
        collection_id: int,
        query: str,
        k: int = 5,
        mode: Mode = "hybrid",
    ) -> list[dict[str, Any]]:
        """The ``k`` best passages with their citations, best first."""
        coll = await self.collection(principal, collection_id)
        started = time.perf_counter()
        outcome = "error"
        with tracer().start_as_current_span(
            "retrieval.search",
            attributes={
                "prism.retrieval.collection_id": collection_id,
                "prism.retrieval.mode": mode,
                "prism.retrieval.backend": self.backend,
            },
        ) as span:
            try:
                ranked = await self._rank(principal, request_id, coll, query, max(k, CANDIDATES), mode)
                top = ranked[:k]
                rows = await self.store.chunks([cid for cid, _ in top])
                hits = [_passage(coll, rows[cid], score) for cid, score in top if cid in rows]
                outcome = "ok"
            finally:
                duration = time.perf_counter() - started
                metrics.SEARCHES.labels(backend=self.backend, mode=mode, outcome=outcome).inc()
                metrics.SEARCH_LATENCY.labels(backend=self.backend, mode=mode).observe(duration)
            span.set_attribute("prism.retrieval.hits", len(hits))
        _note(collection_id=collection_id, retrieval_mode=mode, retrieval_hits=len(hits))
        log.info(
            "retrieval_search",
            collection_id=collection_id,
            mode=mode,
            k=k,
            hits=len(hits),
            duration_ms=round(duration * 1000, 1),
        )
        return hits

    async def _rank(
        self, principal: Principal, request_id: str, coll: CollectionRow, query: str, depth: int, mode: Mode
    ) -> list[tuple[int, float]]:
        async def dense() -> list[tuple[int, float]]:
            vec = await self.embeddings.embed_texts(
                [query], model=coll.embedding_model, principal=principal, request_id=request_id
            )
            hits = await self.store.dense(coll.id, vec.vectors[0], depth)
            return [(cid, round(1.0 - dist, 6)) for cid, dist in hits]  # cosine similarity

        async def keyword() -> list[tuple[int, float]]:
            terms = query_terms(query)
            candidates, total = await self.store.keyword_candidates(coll.id, terms, KEYWORD_ROWS)
            scored = await asyncio.to_thread(bm25, candidates, terms, total)
            return [(cid, round(s, 6)) for cid, s in scored[:depth] if s > 0]

        if mode == "dense":
            return await dense()
        if mode == "keyword":
            return await keyword()
        d, kw = await asyncio.gather(dense(), keyword())
        return [(cid, round(s, 6)) for cid, s in rrf([[c for c, _ in d], [c for c, _ in kw]])]


def may_read(principal: Principal, coll: CollectionRow) -> bool:
    return (
        principal.is_admin
        or coll.readers is None
        or (principal.user_id is not None and principal.user_id in coll.readers)
    )


def _passage(coll: CollectionRow, hit: Any, score: float) -> dict[str, Any]:
    return {
        "text": hit.content,
        "score": score,
        "flagged": bool(hit.flagged),
        "citation": {
            "collection_id": coll.id,
            "collection": coll.name,
            "document_id": hit.document_id,
            "filename": hit.filename,
            "chunk_id": hit.chunk_id,
            "chunk": hit.seq,
            "start": hit.start,
            "end": hit.end,
        },
    }


def _note(**fields: Any) -> None:
    """Add fields to this request's access log entry (when there is one)."""
    entry = access.current()
    if entry is not None:
        entry.update(fields)
