#!/usr/bin/env python
"""Evaluate the guardrails library on the labelled set in tests/data/guard/.

Prints precision / recall / false-positive rate for prompt injection and every
PII category, plus p50/p95 ``check_input`` latency per message and for
1,000-character messages. Exits 1 when a target is missed (``--no-check`` to
only print).

    .venv/bin/python scripts/eval_guard.py [--no-check] [--verbose] [--json]

Targets: injection recall >= 0.90 at FPR <= 0.05 (benign prompts);
PII recall >= 0.97 and precision >= 0.95 for every category; p95 <= 5 ms for a
1,000-character message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config.guardrails import GuardrailsConfig  # noqa: E402
from gateway.guardrails import PII_CATEGORIES, Guardrails  # noqa: E402

DATA_DIR = ROOT / "tests" / "data" / "guard"
TARGETS = {
    "injection_recall": 0.90,
    "injection_fpr": 0.05,
    "pii_recall": 0.97,
    "pii_precision": 0.95,
    "p95_ms_1000": 5.0,
}


def load_cases(data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for p in sorted(data_dir.glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                cases.append(json.loads(line))
    return cases


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


def run_eval(cases: list[dict[str, Any]], *, timing_rounds: int = 3) -> dict[str, Any]:
    g = Guardrails(GuardrailsConfig())
    policy = g.policy_for(model="eval", is_local=False)
    threshold = policy.injection.threshold

    # ---- injection
    tp = fp = fn = tn = 0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # tp fn fp tn
    misses: list[str] = []
    for c in cases:
        res = g.injection.score(c["text"], role=c.get("role", "user"))
        pred = res.score >= threshold
        gold = bool(c["injection"])
        k = by_kind[c.get("kind", "?")]
        k[0] += int(pred == gold)
        k[1] += 1
        lang = by_lang[c.get("lang", "?")]
        if gold and pred:
            tp += 1
            lang[0] += 1
        elif gold:
            fn += 1
            lang[1] += 1
            misses.append(f"FN inj {c['id']} {res.score:.2f} {c['text'][:90]!r}")
        elif pred:
            fp += 1
            lang[2] += 1
            misses.append(f"FP inj {c['id']} {res.score:.2f} {res.reasons} {c['text'][:90]!r}")
        else:
            tn += 1
            lang[3] += 1
    inj = {
        "n_pos": tp + fn,
        "n_neg": fp + tn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "by_kind_accuracy": {k: v[0] / v[1] for k, v in sorted(by_kind.items())},
        "by_lang": {
            k: {
                "recall": v[0] / (v[0] + v[1]) if v[0] + v[1] else 1.0,
                "fpr": v[2] / (v[2] + v[3]) if v[2] + v[3] else 0.0,
            }
            for k, v in sorted(by_lang.items())
        },
    }

    # ---- PII (exact value match per category)
    stats: dict[str, dict[str, int]] = {
        c: {"tp": 0, "fp": 0, "fn": 0, "neg": 0, "neg_hit": 0} for c in PII_CATEGORIES
    }
    for c in cases:
        gold: dict[str, list[str]] = c.get("pii") or {}
        found: dict[str, list[str]] = defaultdict(list)
        for m in g.pii.detect(c["text"]):
            found[m.category].append(m.value)
        for cat in PII_CATEGORIES:
            gs = list(gold.get(cat, []))
            ps = list(found.get(cat, []))
            s = stats[cat]
            if not gs:
                s["neg"] += 1
                s["neg_hit"] += int(bool(ps))
            for v in ps:
                if v in gs:
                    gs.remove(v)
                    s["tp"] += 1
                else:
                    s["fp"] += 1
                    misses.append(f"FP {cat} {c['id']} {v!r} in {c['text'][:80]!r}")
            for v in gs:
                s["fn"] += 1
                misses.append(f"FN {cat} {c['id']} {v!r} in {c['text'][:80]!r}")
    pii = {}
    for cat, s in stats.items():
        pii[cat] = {
            "support": s["tp"] + s["fn"],
            "precision": s["tp"] / (s["tp"] + s["fp"]) if s["tp"] + s["fp"] else 1.0,
            "recall": s["tp"] / (s["tp"] + s["fn"]) if s["tp"] + s["fn"] else 1.0,
            "fpr": s["neg_hit"] / s["neg"] if s["neg"] else 0.0,
        }

    # ---- latency: check_input of one message
    msgs = [[{"role": c.get("role", "user"), "content": c["text"]}] for c in cases]
    long_msgs: list[list[dict[str, str]]] = []
    pool = [c["text"] for c in cases]
    for i in range(len(pool)):
        buf = ""
        j = i
        while len(buf) < 1000:
            buf += pool[j % len(pool)] + "\n"
            j += 7
        long_msgs.append([{"role": "user", "content": buf[:1000]}])
    for m in msgs[:20] + long_msgs[:20]:  # warm-up
        g.check_input(m, policy=policy)

    def timed(batch: list[list[dict[str, str]]]) -> tuple[list[float], list[float]]:
        # CPU time of this thread (immune to other processes on a shared box) and wall time.
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(timing_rounds):
            for m in batch:
                c0 = time.thread_time()
                t0 = time.perf_counter()
                g.check_input(m, policy=policy)
                wall.append((time.perf_counter() - t0) * 1000.0)
                cpu.append((time.thread_time() - c0) * 1000.0)
        return cpu, wall

    c_all, _ = timed(msgs)
    c_long, w_long = timed(long_msgs)
    timing = {
        "per_message_p50_ms": statistics.median(c_all),
        "per_message_p95_ms": _pct(c_all, 0.95),
        "chars1000_p50_ms": statistics.median(c_long),
        "chars1000_p95_ms": _pct(c_long, 0.95),
        "chars1000_max_ms": max(c_long),
        "chars1000_wall_p50_ms": statistics.median(w_long),
        "chars1000_wall_p95_ms": _pct(w_long, 0.95),
    }
    return {"n_cases": len(cases), "injection": inj, "pii": pii, "timing": timing, "errors": misses}


def failures(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    inj = report["injection"]
    if inj["recall"] < TARGETS["injection_recall"]:
        out.append(f"injection recall {inj['recall']:.3f} < {TARGETS['injection_recall']}")
    if inj["fpr"] > TARGETS["injection_fpr"]:
        out.append(f"injection FPR {inj['fpr']:.3f} > {TARGETS['injection_fpr']}")
    for cat, s in report["pii"].items():
        if s["recall"] < TARGETS["pii_recall"]:
            out.append(f"{cat} recall {s['recall']:.3f} < {TARGETS['pii_recall']}")
        if s["precision"] < TARGETS["pii_precision"]:
            out.append(f"{cat} precision {s['precision']:.3f} < {TARGETS['pii_precision']}")
    if report["timing"]["chars1000_p95_ms"] > TARGETS["p95_ms_1000"]:
        out.append(f"p95 {report['timing']['chars1000_p95_ms']:.2f} ms > {TARGETS['p95_ms_1000']} ms")
    return out


def print_report(report: dict[str, Any], *, verbose: bool) -> None:
    inj = report["injection"]
    print(f"cases: {report['n_cases']}")
    print(f"\n{'category':<16}{'support':>8}{'precision':>11}{'recall':>8}{'FPR':>8}")
    print(f"{'injection':<16}{inj['n_pos']:>8}{inj['precision']:>11.3f}{inj['recall']:>8.3f}{inj['fpr']:>8.3f}"
          f"   (negatives: {inj['n_neg']})")  # fmt: skip
    for cat, s in report["pii"].items():
        print(f"{cat:<16}{s['support']:>8}{s['precision']:>11.3f}{s['recall']:>8.3f}{s['fpr']:>8.3f}")
    print("\ninjection by language: " + ", ".join(
        f"{k}: recall {v['recall']:.3f} FPR {v['fpr']:.3f}" for k, v in inj["by_lang"].items()))  # fmt: skip
    print("accuracy by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in inj["by_kind_accuracy"].items()))
    t = report["timing"]
    print(
        f"\ncheck_input CPU time: per message p50 {t['per_message_p50_ms']:.3f} ms,"
        f" p95 {t['per_message_p95_ms']:.3f} ms;"
        f" 1,000-char message p50 {t['chars1000_p50_ms']:.3f} ms, p95 {t['chars1000_p95_ms']:.3f} ms,"
        f" max {t['chars1000_max_ms']:.3f} ms"
        f"\n(wall clock, 1,000-char: p50 {t['chars1000_wall_p50_ms']:.3f} ms,"
        f" p95 {t['chars1000_wall_p95_ms']:.3f} ms)"
    )
    if verbose and report["errors"]:
        print("\nerrors:")
        for e in report["errors"]:
            print("  " + e)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-check", action="store_true", help="only print, never fail")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every misclassified case")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--data", type=Path, default=DATA_DIR)
    args = ap.parse_args(argv)
    report = run_eval(load_cases(args.data))
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "errors" or args.verbose}, indent=2))
    else:
        print_report(report, verbose=args.verbose)
    fails = failures(report)
    if fails:
        print("\nTARGETS MISSED:\n  " + "\n  ".join(fails))
        return 0 if args.no_check else 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
