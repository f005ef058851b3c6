"""Hard prompts routed cheap per language and per puzzle family (issue #21), on the held-out splits of
``tests/data/routing/routing.jsonl`` and ``tests/data/routing/puzzles.jsonl``, plus the fast stage's share.

    .venv/bin/python scripts/eval_puzzles.py [--model PATH]     # e.g. a model.npz from another commit
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.intent import DEFAULT_INTENT_TIERS, IntentClassifier, decide_tier  # noqa: E402

DATA = ROOT / "tests" / "data" / "routing"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    clf = IntentClassifier.load(args.model)
    for name in ("routing.jsonl", "puzzles.jsonl"):
        rows = [json.loads(x) for x in (DATA / name).read_text(encoding="utf-8").splitlines() if x.strip()]
        test = [r for r in rows if r["split"] == "test"]
        results = [clf.classify(r["text"]) for r in test]
        tiers = [decide_tier(res, intent_tiers=DEFAULT_INTENT_TIERS) for res in results]
        acc = sum(res.label == r["intent"] for res, r in zip(results, test, strict=True)) / len(test)
        fast = sum(res.stage == "fast" for res in results) / len(test)
        print(f"{name}: {len(test)} held out, intent accuracy {acc:.3f}, fast stage answered {fast:.3f}")
        for lang in ("en", "ko", "mixed"):
            pairs = [(r["tier"], t) for r, t in zip(test, tiers, strict=True) if r["lang"] == lang]
            hard = [t for gold, t in pairs if gold == "strong"]
            easy = [t for gold, t in pairs if gold == "cheap"]
            if hard or easy:
                print(f"  {lang:5}: hard routed cheap {hard.count('cheap')}/{len(hard)}, "
                      f"cheap kept cheap {easy.count('cheap')}/{len(easy)}")
        if name == "puzzles.jsonl":
            total: Counter[str] = Counter()
            wrong: Counter[str] = Counter()
            for r, t in zip(test, tiers, strict=True):
                total[r["source"]] += 1
                wrong[r["source"]] += (t == "cheap") != (r["tier"] == "cheap")
            for source in sorted(total):
                print(f"    {source:18} wrong tier {wrong[source]}/{total[source]}")


if __name__ == "__main__":
    main()
