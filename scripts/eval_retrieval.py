"""Recall@5 of retrieval on public EN/KO question sets: dense vs keyword vs hybrid.

``make eval-retrieval``; docs/retrieval.md quotes a run. Data (tests/data/retrieval/SOURCES.md):
SQuAD v1.1 dev (English; one article, 54 paragraphs, every fourth question) and KorQuAD 1.0 dev
(Korean; the first nine articles, 56 paragraphs, every question), samples committed as the
licences allow. Each paragraph is uploaded as its own document to a collection of its language
(``prism-embed``, 1,000-character chunks); a question counts as found when a passage of its own
paragraph is among the top 5. Nothing was tuned on these sets.

The run goes through a real Prism under uvicorn (tests/support/gateway_proc.py) over HTTP, on
SQLite + sqlite-vec by default, or ``--postgres`` on a private Postgres with pgvector
(tests/support/pgvector.py). Latency: per search, over HTTP, p50/p95 in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gateway_proc import start_gateway  # noqa: E402

DATA = ROOT / "tests" / "data" / "retrieval"
SETS = {"en": DATA / "squad_v1.1_dev_sample.json", "ko": DATA / "korquad_v1.0_dev_sample.json"}
CONFIG = """
version: 1
models:
  mock-fast: {provider: mock, tier: cheap}
embeddings:
  prism-embed: {provider: local}
"""
ADMIN = {"email": "eval-admin@example.com", "password": "Eval-admin-passphrase-7"}
MODES = ("dense", "keyword", "hybrid")
K = 5


def load(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(paragraphs, [(question, index of its paragraph)])."""
    data = json.loads(path.read_text())
    paragraphs: list[str] = []
    questions: list[tuple[str, int]] = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            paragraphs.append(para["context"])
            questions.extend((q["question"], len(paragraphs) - 1) for q in para["qas"])
    return paragraphs, questions


def evaluate(url: str, headers: dict[str, str], lang: str, limit: int | None) -> dict[str, Any]:
    paragraphs, questions = load(SETS[lang])
    if limit:
        questions = questions[:limit]
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        r = client.post("/api/collections", json={"name": f"eval-{lang}-{int(time.time())}"})
        r.raise_for_status()
        cid = r.json()["id"]
        doc_of: dict[int, int] = {}
        started = time.perf_counter()
        for i, text in enumerate(paragraphs):
            up = client.post(
                f"/api/collections/{cid}/documents",
                params={"filename": f"{lang}-{i}.txt"},
                content=text.encode(),
                headers={"Content-Type": "text/plain"},
            )
            up.raise_for_status()
            doc_of[up.json()["id"]] = i
        ingest_s = time.perf_counter() - started
        out: dict[str, Any] = {
            "paragraphs": len(paragraphs),
            "questions": len(questions),
            "ingest_s": ingest_s,
        }
        for mode in MODES:
            found = 0
            latencies = []
            for question, gold in questions:
                t0 = time.perf_counter()
                r = client.post(
                    f"/api/collections/{cid}/search", json={"query": question, "k": K, "mode": mode}
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                if any(doc_of.get(h["citation"]["document_id"]) == gold for h in r.json()["data"]):
                    found += 1
            latencies.sort()
            out[mode] = {
                "recall@5": found / len(questions),
                "p50_ms": statistics.median(latencies),
                "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
            }
        client.delete(f"/api/collections/{cid}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres", action="store_true", help="pgvector on a private Postgres instead of SQLite"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions per language")
    args = parser.parse_args()
    pg = None
    tmp = Path(tempfile.mkdtemp(prefix="prism-eval-retrieval-"))
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN["email"],
        "GATEWAY_ADMIN_PASSWORD": ADMIN["password"],
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/eval.db",
    }
    if args.postgres:
        from tests.integration.db_fixtures import create_database
        from tests.support.pgvector import PgvectorInstance

        pg = PgvectorInstance()
        pg.start()
        env["GATEWAY_DATABASE_URL"] = create_database(pg.base_url)
    gw = start_gateway(tmp, config=CONFIG, env=env, ready_timeout=120)
    try:
        token = httpx.post(gw.url + "/auth/login", json=ADMIN).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        backend = "postgres+pgvector" if args.postgres else "sqlite+sqlite-vec"
        print(f"backend: {backend}; model: prism-embed; k={K}")
        print(f"{'set':<4} {'paras':>5} {'qs':>4} {'mode':<8} {'recall@5':>8} {'p50 ms':>7} {'p95 ms':>7}")
        for lang in ("en", "ko"):
            res = evaluate(gw.url, headers, lang, args.limit)
            for mode in MODES:
                m = res[mode]
                print(
                    f"{lang:<4} {res['paragraphs']:>5} {res['questions']:>4} {mode:<8} {m['recall@5']:>8.3f} "
                    f"{m['p50_ms']:>7.1f} {m['p95_ms']:>7.1f}"
                )
            print(f"{lang:<4} ingest of {res['paragraphs']} documents: {res['ingest_s']:.1f} s")
    finally:
        gw.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
