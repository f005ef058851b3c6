"""``python -m gateway eval run``: a CI gate over a running Prism.

Queues a run (``--spec run.json`` or ``--promptfoo promptfooconfig.yaml``), waits for it, prints
the report's summary and exits 0 when the gate holds, 1 when it does not (a checked variant's pass
rate below ``--fail-below``, or significantly worse than the baseline), 2 when the run could not be
judged (refused, failed, cancelled, stopped at its spend cap, timed out).

    python -m gateway eval run --url http://prism:8000 --spec run.json --variant v2 --fail-below 0.9

The API key comes from ``--api-key`` or ``PRISM_API_KEY``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PASS, FAIL, ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway eval", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="queue an evaluation run, wait, and gate on its result")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", type=Path, help="a run body (JSON), as for POST /api/evaluations")
    source.add_argument("--promptfoo", type=Path, help="a promptfooconfig.yaml")
    run.add_argument("--url", default=os.environ.get("PRISM_URL", "http://127.0.0.1:8000"))
    run.add_argument("--api-key", default=None)
    run.add_argument("--variant", action="append", default=[], help="variant(s) to gate (default: all)")
    run.add_argument("--baseline", default=None, help="the variant the others are compared with")
    run.add_argument("--fail-below", type=float, default=None, help="minimum pass rate, 0 to 1")
    run.add_argument(
        "--allow-regression", action="store_true", help="do not fail on a significant drop vs the baseline"
    )
    run.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the run")
    return parser


def _wait(client: httpx.Client, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        run: dict[str, Any] = client.get(f"/api/evaluations/{run_id}").raise_for_status().json()
        if run["status"] not in ("queued", "running"):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run['status']} after {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def gate(
    report: dict[str, Any], *, variants: list[str], fail_below: float | None, regression: bool
) -> list[str]:
    """What fails the gate, one line each (empty: it holds)."""
    problems = []
    checked = variants or list(report["variants"])
    for name in checked:
        summary = report["variants"].get(name)
        if summary is None:
            problems.append(f"{name}: no such variant in the run")
            continue
        rate = summary["pass_rate"] or 0.0
        if fail_below is not None and rate < fail_below:
            problems.append(f"{name}: pass rate {rate:.3f} is below {fail_below:g}")
        comparison = report["comparisons"].get(name)
        if regression and comparison is not None and comparison["verdict"] == "worse":
            p = comparison["mcnemar"]["p_value"]
            problems.append(f"{name}: significantly worse than {report['baseline']} (McNemar p={p})")
    return problems


def run(args: argparse.Namespace) -> int:
    key = args.api_key or os.environ.get("PRISM_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60.0) as client:
        if args.spec is not None:
            body = json.loads(args.spec.read_text())
            if args.baseline:
                body["baseline"] = args.baseline
            response = client.post("/api/evaluations", json=body)
        else:
            response = client.post("/api/evaluations/promptfoo", content=args.promptfoo.read_bytes())
        if response.status_code != 202:
            print(f"refused: {response.status_code} {response.text}", file=sys.stderr)
            return ERROR
        run_id = response.json()["id"]
        try:
            final = _wait(client, run_id, args.timeout)
        except TimeoutError as exc:
            print(str(exc), file=sys.stderr)
            return ERROR
        report = client.get(f"/api/evaluations/{run_id}/report").raise_for_status().json()
    if args.baseline and args.promptfoo is not None:
        report["baseline"] = args.baseline
    summary = {
        "run": run_id,
        "status": final["status"],
        "variants": {
            name: {
                k: v[k] for k in ("pass_rate", "pass_rate_ci95", "mean_score", "cost_usd", "latency_ms_p50")
            }
            for name, v in report["variants"].items()
        },
        "comparisons": {
            name: {k: c[k] for k in ("verdict", "pass_rate_delta", "mcnemar")}
            for name, c in report["comparisons"].items()
        },
    }
    print(json.dumps(summary, indent=2))
    if final["status"] != "completed":
        print(f"run {run_id} ended {final['status']}: {final.get('error') or ''}", file=sys.stderr)
        return ERROR
    problems = gate(
        report, variants=args.variant, fail_below=args.fail_below, regression=not args.allow_regression
    )
    for line in problems:
        print(f"GATE FAILED {line}", file=sys.stderr)
    return FAIL if problems else PASS


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return run(args)
