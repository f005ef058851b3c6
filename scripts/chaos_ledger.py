"""Full-size chaos run of the usage ledger and the quotas (issue #17), as an outsider checks it.

    .venv/bin/python scripts/chaos_ledger.py                       # every scenario, 24 clients × 40 s
    .venv/bin/python scripts/chaos_ledger.py --scenario a,b --duration 30 --clients 16 \\
        --out docs/resilience.md

Each scenario gets fresh services: a private Postgres (initdb on a spare port, as the ``postgres``
user) and a private redis-server, then two replicas × two uvicorn workers of the real gateway in
production mode (mock models, API-key auth, quotas, its own spill directory each). Scenarios:

  a  SIGKILL of one replica's process group mid-run; restarted later (it replays its segments)
  b  Postgres down 10 s, one replica SIGKILLed during the outage, restarted once Postgres is back
  c  Redis killed and restarted mid-run
  d  poison inputs (NUL, lone surrogates, 1 MB strings in model, content, user, metadata values,
     X-Request-ID and X-Prism-Conversation-Id) mixed into normal traffic
  e  reused X-Request-IDs across keys and users (some cache hits), and a 5-RPM key hammered with
     one reused id

Prints a markdown table (see ``tests/chaos/ledger_harness.py`` for what each column means) and
exits 1 if any target is missed: 0 lost, 0 duplicates, 0 5xx, 0 quota overruns, 0 poison misses,
0 id mismatches, recovery without restarting survivors. Every process it started is stopped on
exit, Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.chaos.ledger_harness import SCENARIOS, Verdict, run_scenario, running_cluster, table  # noqa: E402


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally``: the cluster is closed


def run(scenario: str, args: argparse.Namespace, workdir: Path) -> Verdict:
    started = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] scenario {scenario}: {SCENARIOS[scenario]}", flush=True)
    with running_cluster(
        workdir / scenario, replicas_n=args.replicas, workers=args.workers, private_pg=True
    ) as cluster:
        verdict = asyncio.run(
            run_scenario(
                scenario,
                cluster,
                duration_s=args.duration,
                clients=args.clients,
                settle_timeout_s=args.settle_timeout,
            )
        )
    print(table([verdict]), f"\n({time.monotonic() - started:.0f} s)\n", flush=True)
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of traffic per scenario")
    parser.add_argument("--clients", type=int, default=24, help="concurrent clients (16-32)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per replica")
    parser.add_argument("--settle-timeout", type=float, default=30.0, help="wait this long for rows")
    parser.add_argument("--out", type=Path, help="append the table, the command and the date to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, spill dirs)")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.scenario.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        parser.error(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}")
    if args.duration < 5 or args.clients < 1:
        parser.error("--duration must be >= 5 and --clients >= 1")
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="prism-chaos-ledger-"))
    verdicts: list[Verdict] = []
    try:
        for scenario in chosen:
            verdicts.append(run(scenario, args, workdir))
    except KeyboardInterrupt:
        print("interrupted: every process this run started has been stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    report = table(verdicts)
    print()
    print(report)
    if args.out is not None:
        command = "python scripts/chaos_ledger.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with args.out.open("a") as out:
            out.write(f"\n### Ledger chaos run, {stamp}\n\n`{command}`\n\n{report}\n")
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
