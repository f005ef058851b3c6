"""Propose per-intent, per-language cheap-tier complexity thresholds from judged pairs (issue #21).

Reads Prism's own judged shadow pairs from the database (``--database-url``, default
``$GATEWAY_DATABASE_URL``; Postgres or SQLite; ``--database-url none`` to skip) and public pairwise judge
data (``--data``, JSONL, default the ``calib`` split of ``tests/data/routing/pairwise_public.jsonl``),
prints a table (threshold, share routed cheap, quality loss with its Wilson 95 % CI, expected saving from
the configured prices, today's figures) and writes the YAML fragment to merge under the routing YAML's
``routing:`` key; then reload (``POST /admin/config/reload`` or SIGHUP). docs/routing.md, "Calibrating
the cheap tier (issue #21)".

    .venv/bin/python scripts/calibrate_routing.py [--max-loss 0.05] [--bound point|upper] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIG = ROOT / "config" / "prism.yaml"
DEFAULT_HARD = ROOT / "tests" / "data" / "routing" / "routing.jsonl"
DEFAULT_DATA = ROOT / "tests" / "data" / "routing" / "pairwise_public.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path(os.environ.get("GATEWAY_CONFIG", DEFAULT_CONFIG)),
                    help="routing YAML: tiers, today's thresholds and model prices")
    ap.add_argument("--database-url", default=os.environ.get("GATEWAY_DATABASE_URL"),
                    help="database with shadow_results + shadow_judgements ('none' or unset: skip)")
    ap.add_argument("--alias", default=None, help="only shadow pairs of this alias")
    ap.add_argument("--data", type=Path, action="append", default=None,
                    help="pairwise JSONL (repeatable; default: the public arena-bench + LLMFAO pairs; "
                         "'none': none)")
    ap.add_argument("--split", default="calib", help="rows of this split only ('all': every row)")
    ap.add_argument("--max-loss", type=float, default=0.05,
                    help="largest share of a group's prompts allowed to get a worse (cheap) answer")
    ap.add_argument("--bound", choices=("point", "upper"), default="point",
                    help="hold the loss's point estimate or its Wilson 95%% upper bound under --max-loss")
    ap.add_argument("--margin", type=float, default=0.0,
                    help="the cheap answer counts as worse when its score is lower by more than this")
    ap.add_argument("--hard", type=Path, default=DEFAULT_HARD,
                    help="labelled prompts (routing.jsonl rows); the train split's tier=strong ones bound "
                         "the hard prompts a threshold may send cheap ('none': no bound)")
    ap.add_argument("--max-hard", type=float, default=0.05,
                    help="largest share of a group's labelled hard prompts a threshold may send cheap")
    ap.add_argument("--min-pairs", type=int, default=30, help="fewer pairs in a group: no proposal")
    ap.add_argument("--cheap-model", default=None, help="price the cheap answers at this model's prices "
                    "(default: the cheapest enabled model of the cheapest tier)")
    ap.add_argument("--strong-model", default=None, help="price the strong answers at this model's prices "
                    "(default: the cheapest enabled model of the strongest tier)")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "routing-thresholds.yaml")
    return ap.parse_args(argv)


async def _shadow_records(url: str, config: object, alias: str | None) -> list[object]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.config.routing import RoutingConfig
    from gateway.routing.calibration import load_shadow_pairs

    assert isinstance(config, RoutingConfig)
    engine = create_async_engine(url)
    try:
        return list(await load_shadow_pairs(engine, config=config, alias=alias))
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gateway.config.routing import load_config
    from gateway.intent import IntentClassifier, IntentResult
    from gateway.providers.tokens import count_text
    from gateway.routing.calibration import (
        PairRecord,
        Prices,
        format_table,
        load_pairwise_jsonl,
        propose,
        yaml_fragment,
    )

    config = load_config(args.config)
    prices = Prices.from_config(config, cheap=args.cheap_model, strong=args.strong_model)
    records: list[PairRecord] = []
    counts: list[str] = []
    if args.database_url and args.database_url != "none":
        own = [r for r in asyncio.run(_shadow_records(args.database_url, config, args.alias))
               if isinstance(r, PairRecord)]
        records += own
        counts.append(f"{len(own)} judged shadow pairs from the database")
    data_files = [p for p in (args.data or [DEFAULT_DATA]) if str(p) != "none"]
    hard_path = None if str(args.hard) == "none" else args.hard
    hard: list[IntentResult] = []
    if data_files or hard_path is not None:
        clf = IntentClassifier.load()
    if hard_path is not None:
        lines = hard_path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        hard = [clf.classify(r["text"]) for r in rows
                if r.get("tier") == "strong" and r.get("split") == "train"]
        counts.append(f"{len(hard)} labelled hard prompts ({hard_path.name}, train split)")
    if data_files:
        split = None if args.split == "all" else args.split
        for path in data_files:
            public = load_pairwise_jsonl(path, classify=clf.classify, count_tokens=count_text, split=split)
            records += public
            counts.append(f"{len(public)} pairs from {path.name} (split {args.split})")
    if not records:
        print("no judged pairs found: nothing to calibrate", file=sys.stderr)
        return 1
    proposals = propose(records, config=config, prices=prices, max_loss=args.max_loss, margin=args.margin,
                        min_pairs=args.min_pairs, bound=args.bound, hard=hard, max_hard=args.max_hard)
    print("; ".join(counts))
    print(f"prices: cheap {prices.cheap_model} ${prices.cheap_input}/${prices.cheap_output}, strong "
          f"{prices.strong_model} ${prices.strong_input}/${prices.strong_output} per M tokens (in/out); "
          f"max loss {args.max_loss} ({args.bound}), max hard {args.max_hard}, margin {args.margin}, "
          f"min pairs {args.min_pairs}\n")
    print(format_table(proposals))
    header = (
        f"make calibrate-routing, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {'; '.join(counts)}\n"
        f"max loss {args.max_loss} ({args.bound}), margin {args.margin}, min pairs {args.min_pairs}\n"
        "merge under the routing YAML's `routing:` key, then POST /admin/config/reload"
    )
    fragment = yaml_fragment(proposals, header=header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(fragment, encoding="utf-8")
    print(f"\n{fragment}\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
