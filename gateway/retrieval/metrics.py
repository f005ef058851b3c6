"""Prometheus metrics of retrieval (labels are bounded: backend, mode, outcome)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from gateway.observability.metrics import LATENCY_BUCKETS

INGESTS = Counter("prism_retrieval_ingests", "Documents ingested by outcome", ["backend", "outcome"])
INGEST_LATENCY = Histogram(
    "prism_retrieval_ingest_seconds",
    "Document ingest time (extract, chunk, embed, store)",
    ["backend"],
    buckets=LATENCY_BUCKETS,
)
CHUNKS = Counter("prism_retrieval_chunks", "Chunks indexed", ["backend"])
FLAGGED_CHUNKS = Counter(
    "prism_retrieval_flagged_chunks", "Chunks the injection scorer flagged at ingest", ["backend"]
)
SEARCHES = Counter("prism_retrieval_searches", "Searches by mode and outcome", ["backend", "mode", "outcome"])
SEARCH_LATENCY = Histogram(
    "prism_retrieval_search_seconds",
    "Search time (query embedding, both indexes, fusion)",
    ["backend", "mode"],
    buckets=LATENCY_BUCKETS,
)
