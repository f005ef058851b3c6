"""Retrieval over the operator's own documents (issue #22, item 3): collections, ingest, hybrid search.

``chunking`` cuts text into overlapping windows on sentence boundaries (English and Korean),
``extract`` turns an upload into text, ``keywords`` turns a query into search terms, ``store_pg``
(pgvector + pg_trgm) and ``store_sqlite`` (sqlite-vec + FTS5 trigram) hold the index, and
``service`` ties them to the embeddings service. See docs/retrieval.md.
"""
