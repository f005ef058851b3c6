#!/usr/bin/env python
"""Evaluate the guardrails library on the labelled sets in tests/data/guard/.

Two parts, reported separately:

1. **Own data** (``cases.jsonl``, written by this project; the rules were tuned on it, and part of it trains
   the learned injection scorer): precision / recall / FPR for prompt injection and every PII category,
   plus p50/p95 ``check_input`` latency per message and for 1,000-character messages.
2. **Injection corpus** (``corpus.jsonl.gz``, built by scripts/build_guard_data.py): the shipped detector
   (rules + learned scorer as the default policy applies them) per split, source and language, with
   Wilson 95% intervals. ``independent`` sources were never trained on nor used for the threshold;
   ``in_source`` rows are held-out items of a public set whose other part trains; ``own_heldout`` rows are
   hand-written Korean prompts never trained on (tests/data/guard/ko_heldout.jsonl); ``own_test`` rows are
   our own data from template families never trained on; ``val`` picked the threshold (tuned figures).
   Recall for attacks, FPR for the rest; a ``rules only`` column shows what the learned layer adds.

Exits 1 when a target of part 1 is missed (``--no-check`` to only print).

    .venv/bin/python scripts/eval_guard.py [--no-check] [--verbose] [--json] [--no-corpus]
        [--learned-roles user,tool]   # e.g. the document head on tool results (opt-in policy)
    .venv/bin/python scripts/eval_guard.py --tool-timing   # tool results with the document head: CPU time

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

from gateway.config.guardrails import GuardPolicy, GuardrailsConfig, InjectionPolicy  # noqa: E402
from gateway.experiments.stats import wilson_interval  # noqa: E402
from gateway.guardrails import PII_CATEGORIES, Guardrails  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from train_guard import load_corpus, split_of  # noqa: E402

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
    for p in sorted(data_dir.glob("cases*.jsonl")):
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
    pool = [c["text"] for c in cases]

    def of_length(n_chars: int, count: int) -> list[list[dict[str, str]]]:
        out: list[list[dict[str, str]]] = []
        for i in range(count):
            buf = ""
            j = i
            while len(buf) < n_chars:
                buf += pool[j % len(pool)] + "\n"
                j += 7
            out.append([{"role": "user", "content": buf[:n_chars]}])
        return out

    long_msgs = of_length(1000, len(pool))
    msgs_4000 = of_length(4000, 100)
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
    c_4000, _ = timed(msgs_4000)
    timing = {
        "per_message_p50_ms": statistics.median(c_all),
        "per_message_p95_ms": _pct(c_all, 0.95),
        "chars1000_p50_ms": statistics.median(c_long),
        "chars1000_p95_ms": _pct(c_long, 0.95),
        "chars1000_max_ms": max(c_long),
        "chars1000_wall_p50_ms": statistics.median(w_long),
        "chars1000_wall_p95_ms": _pct(w_long, 0.95),
        "chars4000_p50_ms": statistics.median(c_4000),
        "chars4000_p95_ms": _pct(c_4000, 0.95),
    }
    return {"n_cases": len(cases), "injection": inj, "pii": pii, "timing": timing, "errors": misses}


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials (the experiments' statistics)."""
    if n == 0:
        return (0.0, 1.0)
    interval = wilson_interval(k, n)
    return (interval.low, interval.high)


SPLIT_ORDER = ("independent", "in_source", "own_heldout", "own_test", "val")


def corpus_eval(
    rows: list[dict[str, Any]] | None = None, *, learned_roles: frozenset[str] | None = None
) -> dict[str, Any]:
    """Shipped detector on every held-out row of the injection corpus, grouped by split/source/language/label.

    Each group: n, hits (caught at the policy threshold: blocked or flagged), rate (recall when label=1, FPR
    when 0), its 95% CI, the blocked rate (the rules at the threshold, or the learned scorer at
    ``learned_block_at``; the rest of the hits are flagged) and the rate of the rules alone.
    """
    g = Guardrails(GuardrailsConfig())
    inj = g.policy_for(model="eval", is_local=False).injection
    if learned_roles is not None:
        inj = inj.model_copy(update={"learned_roles": learned_roles})
    groups: dict[tuple[str, str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in load_corpus() if rows is None else rows:
        split = split_of(r)
        if split == "train":
            continue
        role = r.get("role", "user")
        res = g.injection.score(r["text"], role=role, learned=inj.learned and role in inj.learned_roles)
        rules_only = g.injection.score(r["text"], role=role, learned=False)
        grp = groups[(split, r["source"], r["lang"], int(r["label"]))]
        grp[0] += 1
        grp[1] += int(res.score >= inj.threshold)
        grp[2] += int(rules_only.score >= inj.threshold)
        grp[3] += int(
            rules_only.score >= inj.threshold
            or (res.learned_score is not None and res.learned_score >= inj.learned_block_at)
        )
    out: list[dict[str, Any]] = []
    for (split, source, lang, label), (n, hits, rule_hits, blocked) in sorted(
        groups.items(), key=lambda kv: (SPLIT_ORDER.index(kv[0][0]), kv[0][1], kv[0][2], kv[0][3])
    ):
        lo, hi = wilson(hits, n)
        out.append({"split": split, "source": source, "lang": lang, "label": label, "n": n, "hits": hits,
                    "rate": hits / n, "ci95": [lo, hi], "blocked_rate": blocked / n,
                    "rules_only_rate": rule_hits / n})  # fmt: skip
    return {"threshold": inj.threshold, "learned_block_at": inj.learned_block_at,
            "learned_roles": sorted(inj.learned_roles), "groups": out}  # fmt: skip


def print_corpus(report: dict[str, Any]) -> None:
    roles = ",".join(report["learned_roles"])
    print(f"\n== injection corpus (shipped detector, threshold {report['threshold']}, learned alone blocks "
          f"at {report['learned_block_at']}, learned on roles {roles}) ==")  # fmt: skip
    print(
        f"{'split':<12}{'source':<24}{'lang':<6}{'metric':<8}{'n':>6}{'rate':>8}  {'95% CI':<15}"
        f"{'blocked':>8}{'rules only':>11}"
    )
    for grp in report["groups"]:
        metric = "recall" if grp["label"] else "FPR"
        lo, hi = grp["ci95"]
        print(f"{grp['split']:<12}{grp['source']:<24}{grp['lang']:<6}{metric:<8}{grp['n']:>6}{grp['rate']:>8.3f}"
              f"  [{lo:.3f}, {hi:.3f}]{grp['blocked_rate']:>8.3f}"
              f"{grp['rules_only_rate']:>11.3f}")  # fmt: skip


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
        f" max {t['chars1000_max_ms']:.3f} ms; 4,000-char p50 {t['chars4000_p50_ms']:.3f} ms,"
        f" p95 {t['chars4000_p95_ms']:.3f} ms"
        f"\n(wall clock, 1,000-char: p50 {t['chars1000_wall_p50_ms']:.3f} ms,"
        f" p95 {t['chars1000_wall_p95_ms']:.3f} ms)"
    )
    if verbose and report["errors"]:
        print("\nerrors:")
        for e in report["errors"]:
            print("  " + e)


def tool_timing(rounds: int = 300) -> dict[str, dict[str, float]]:
    """Thread CPU time of ``check_input`` on a tool result with the learned layer on for tools (document
    head): ``rounds`` slices of 1,000 and 4,000 characters of the corpus's tool-role documents."""
    g = Guardrails(GuardrailsConfig())
    policy = GuardPolicy(injection=InjectionPolicy(learned_roles=frozenset({"user", "tool"})))
    buf = "\n".join(r["text"] for r in load_corpus() if r.get("role") == "tool")
    out: dict[str, dict[str, float]] = {}
    for n in (1_000, 4_000):
        ts: list[float] = []
        for k in range(rounds):
            msg = [{"role": "tool", "content": buf[k * 137 : k * 137 + n], "tool_call_id": "t"}]
            t0 = time.thread_time()
            g.check_input(msg, policy=policy)
            ts.append((time.thread_time() - t0) * 1e3)
        ts.sort()
        out[str(n)] = {"p50": ts[len(ts) // 2], "p95": ts[int(0.95 * len(ts))], "max": ts[-1]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-check", action="store_true", help="only print, never fail")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every misclassified case")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--data", type=Path, default=DATA_DIR)
    ap.add_argument("--no-corpus", action="store_true", help="skip the injection corpus part")
    ap.add_argument(
        "--learned-roles", default=None, help="override the policy's learned_roles, e.g. user,tool"
    )
    ap.add_argument(
        "--tool-timing", action="store_true", help="only time tool results with the document head"
    )
    args = ap.parse_args(argv)
    if args.tool_timing:
        for n, t in tool_timing().items():
            print(f"tool result, {n} chars, document head on: p50 {t['p50']:.2f} ms, p95 {t['p95']:.2f} ms, "
                  f"max {t['max']:.2f} ms (thread CPU time)")  # fmt: skip
        return 0
    report = run_eval(load_cases(args.data))
    roles = None if args.learned_roles is None else frozenset(args.learned_roles.split(","))
    corpus = None if args.no_corpus else corpus_eval(learned_roles=roles)
    if args.json:
        out = {k: v for k, v in report.items() if k != "errors" or args.verbose}
        out["injection_corpus"] = corpus
        print(json.dumps(out, indent=2))
    else:
        print("== own data (tests/data/guard/cases.jsonl: the rules were tuned on it; part of it trains) ==")
        print_report(report, verbose=args.verbose)
        if corpus is not None:
            print_corpus(corpus)
    fails = failures(report)
    if fails:
        print("\nTARGETS MISSED:\n  " + "\n  ".join(fails))
        return 0 if args.no_check else 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
