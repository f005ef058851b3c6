"""The built-in embedding model (``provider: local``, multilingual USE v3): does it place a Korean
sentence next to its English translation, how long does it take per input, and what does it cost in
memory. ``make eval-embeddings``; docs/embeddings.md quotes a run.

Quality: 24 English/Korean translation pairs written for this check (the model was not tuned on
them, nor on anything here). For each pair: the cosine of the two, against the highest cosine of the
English sentence with the other pairs' Korean sentences; top-1 retrieval both ways.
Latency: in-process, ``encode_texts`` on distinct sentences (no whole-text cache hits), batch 1 and
batch 32, ms per input. Memory: resident set size before loading, after loading, after the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

PAIRS = [
    ("The weather is nice today.", "오늘은 날씨가 좋다."),
    ("Where is the nearest subway station?", "가장 가까운 지하철역이 어디예요?"),
    ("I would like to cancel my order.", "주문을 취소하고 싶습니다."),
    ("How much does this laptop cost?", "이 노트북은 얼마예요?"),
    ("The meeting was moved to Thursday afternoon.", "회의가 목요일 오후로 옮겨졌다."),
    ("Please summarize this report in three sentences.", "이 보고서를 세 문장으로 요약해 주세요."),
    ("My password does not work anymore.", "제 비밀번호가 더 이상 작동하지 않아요."),
    ("The hospital is closed on Sundays.", "병원은 일요일에 문을 닫습니다."),
    ("She is learning to play the piano.", "그녀는 피아노를 배우고 있다."),
    ("Interest rates rose again this month.", "이번 달에 금리가 또 올랐다."),
    ("Can you recommend a good Italian restaurant?", "괜찮은 이탈리아 식당을 추천해 줄 수 있나요?"),
    ("The train to Busan leaves at nine.", "부산행 기차는 아홉 시에 출발한다."),
    ("Write a Python function that sorts a list.", "리스트를 정렬하는 파이썬 함수를 작성해 줘."),
    ("The children are playing in the park.", "아이들이 공원에서 놀고 있다."),
    ("I lost my wallet on the bus.", "버스에서 지갑을 잃어버렸어요."),
    ("The server crashed after the update.", "업데이트 후에 서버가 다운됐다."),
    ("We need more volunteers for the festival.", "축제를 위해 자원봉사자가 더 필요하다."),
    ("Drink plenty of water when it is hot.", "더울 때는 물을 충분히 마셔라."),
    ("The contract must be signed by Friday.", "계약서는 금요일까지 서명되어야 한다."),
    ("My cat sleeps all day long.", "우리 고양이는 하루 종일 잠만 잔다."),
    ("How do I reset the router?", "공유기를 어떻게 초기화하나요?"),
    ("The museum opens at ten in the morning.", "박물관은 오전 열 시에 문을 연다."),
    ("He apologized for being late.", "그는 늦은 것에 대해 사과했다."),
    ("Translate this email into Japanese.", "이 이메일을 일본어로 번역해 줘."),
]


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def quality(vectors: np.ndarray) -> dict[str, float]:
    en, ko = vectors[0::2], vectors[1::2]
    sims = en @ ko.T
    paired = np.diag(sims)
    off = sims[~np.eye(len(PAIRS), dtype=bool)].reshape(len(PAIRS), -1)
    return {
        "pairs": len(PAIRS),
        "mean_cos_translation": float(paired.mean()),
        "mean_cos_unrelated": float(off.mean()),
        "min_margin_vs_best_unrelated": float((paired - off.max(axis=1)).min()),
        "pairs_closer_than_every_unrelated": int((paired > off.max(axis=1)).sum()),
        "top1_en_to_ko": float((sims.argmax(axis=1) == np.arange(len(PAIRS))).mean()),
        "top1_ko_to_en": float((sims.argmax(axis=0) == np.arange(len(PAIRS))).mean()),
    }


def latency(encode: object, texts: list[str], batch: int) -> dict[str, float]:
    per_input: list[float] = []
    for start in range(0, len(texts) - batch + 1, batch):
        chunk = texts[start : start + batch]
        began = time.perf_counter()
        encode(chunk)  # type: ignore[operator]
        per_input.append((time.perf_counter() - began) * 1000 / len(chunk))
    per_input.sort()
    return {
        "batch": batch,
        "batches": len(per_input),
        "p50_ms_per_input": round(statistics.median(per_input), 3),
        "p95_ms_per_input": round(per_input[int(0.95 * (len(per_input) - 1))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=640, help="distinct sentences per latency run")
    args = parser.parse_args()
    before = rss_mb()
    from gateway.providers.embeddings_local import encode_texts, shared_encoder

    began = time.perf_counter()
    shared_encoder()
    load_s = time.perf_counter() - began
    loaded = rss_mb()
    vectors = np.asarray(encode_texts([text for pair in PAIRS for text in pair]))
    print("quality:", {k: round(v, 4) if isinstance(v, float) else v for k, v in quality(vectors).items()})
    rng = np.random.default_rng(7)
    words = " ".join(text for pair in PAIRS for text in pair).split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 30)))) for _ in range(2 * args.inputs)]
    encode_texts(texts[:32])  # warm numpy and the token cache a little, as a running server would be
    print("latency:", latency(encode_texts, texts[: args.inputs], 1))
    print("latency:", latency(encode_texts, texts[args.inputs :], 32))
    print(
        "memory:",
        {
            "rss_before_mb": round(before, 1),
            "rss_loaded_mb": round(loaded, 1),
            "rss_after_mb": round(rss_mb(), 1),
            "load_s": round(load_s, 2),
            "mean_tokens_chars": round(sum(map(len, texts)) / len(texts), 1),
        },
    )


if __name__ == "__main__":
    main()
