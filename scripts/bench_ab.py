"""Before/after on one machine, interleaved: Prism from another checkout (``--baseline-root``, e.g. a
``git worktree`` of the commit before a change) against this one, both in production configuration
(``scripts/bench_prism.py``), one worker each pinned to the same core, driven in alternating rounds.

``bench.py --baseline-root`` measures the two systems one after the other; on a shared machine the
background load drifts between them. Here every round measures both, in alternating order, so drift
hits both sides alike; the verdict uses the median of the per-round ratios.

    python scripts/bench_ab.py --baseline-root ../bench-before --rounds 5 --duration 8

Phases per round and system: non-streamed c=1 and c=64 (wrk), full streams c=32 (aiohttp client).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # the sibling script: its servers, load generators and phases

PHASES: tuple[tuple[str, int, bool], ...] = (
    ("c=1", 1, False),
    ("c=64", 64, False),
    ("stream c=32", 32, True),
)


def _args(root: Path | None, port: int, ns: argparse.Namespace) -> argparse.Namespace:
    py = str(Path(sys.executable).absolute())
    return argparse.Namespace(
        prism_url=f"http://127.0.0.1:{port}",
        prism_cmd=f"{py} scripts/bench_prism.py serve --fake-url {{fake_url}} --port {{port}} --workers 1",
        prism_setup=f"{py} scripts/bench_prism.py key --url {{url}}",
        prism_teardown=f"{py} scripts/bench_prism.py drop --port {{port}}",
        prism_key=None,
        prism_model="fake-gpt",
        start_timeout=ns.start_timeout,
        logdir=ns.logdir,
    )


def _phase(
    prism: bench.Prism, c: int, stream: bool, duration: float, cores: str | None, fake_url: str
) -> bench.Phase:
    bench.fake_control(fake_url, chunk_delay=0.0)
    cpu0 = bench.tree_cpu_seconds(prism.server.proc.pid)
    if stream:
        phase = bench.run_client(prism.url, "fake-gpt", prism.headers, c, duration, True, cores)
    elif shutil.which("wrk"):
        phase = bench.run_wrk(prism.url, "fake-gpt", prism.headers, c, duration, cores)
    else:
        phase = bench.run_client(prism.url, "fake-gpt", prism.headers, c, duration, False, cores)
    # the server's own CPU per request: what a change costs, much less moved by other load than RPS
    phase.cpu_s_per_1k = (
        (bench.tree_cpu_seconds(prism.server.proc.pid) - cpu0) / max(phase.requests, 1) * 1000
    )
    return phase


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-root", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per phase and system per round")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--start-timeout", type=float, default=90.0)
    p.add_argument("--logdir", type=Path, default=None)
    ns = p.parse_args(argv)
    ns.logdir = ns.logdir or bench.ROOT / "var" / "bench" / f"ab-{os.getpid()}"
    ns.logdir.mkdir(parents=True, exist_ok=True)
    layout = bench.cpu_layout()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    samples: dict[str, dict[str, list[bench.Phase]]] = {"before": {}, "after": {}}
    with bench.servers() as running:
        fake_port = bench.free_port()
        fake_argv = [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", str(fake_port)]
        fake_argv += ["--chunks", "20", "--latency", "0", "--chunk-delay", "0", "--error-rate", "0"]
        fake = bench.start_server("fake", bench.pinned(fake_argv, layout["fake"]), env, ns.logdir)
        running.append(fake)
        fake_url = f"http://127.0.0.1:{fake_port}"
        bench.wait_ready(fake, fake_url + "/v1/chat/completions", "fake-gpt", {}, 20)
        systems: dict[str, bench.Prism] = {}
        for name, root in (("before", ns.baseline_root.resolve()), ("after", None)):
            systems[name] = bench.start_prism(
                _args(root, bench.free_port(), ns),
                env,
                fake_url,
                name=f"prism-{name}",
                workers=1,
                cores=layout["sut"],
                running=running,
                root=root,
            )
        for prism in systems.values():  # warm both: caches, pools, lazy imports
            for _label, c, stream in PHASES:
                _phase(prism, c, stream, ns.warmup, layout["load"], fake_url)
        for r in range(ns.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for label, c, stream in PHASES:
                for name in order:
                    phase = _phase(systems[name], c, stream, ns.duration, layout["load"], fake_url)
                    samples[name].setdefault(label, []).append(phase)
                    print(
                        f"round {r + 1} {label:<12} {name:<6} rps={phase.rps:8.1f} p50={phase.p50_ms:6.2f}ms "
                        f"errors={phase.errors}",
                        flush=True,
                    )
    print()
    print(render(samples, ns))
    return 0


def _cpu(phases: list[bench.Phase]) -> str:
    values = [x.cpu_s_per_1k for x in phases if x.cpu_s_per_1k is not None]
    return f"{statistics.median(values):.3f}" if values else "–"


def render(samples: dict[str, dict[str, list[bench.Phase]]], ns: argparse.Namespace) -> str:
    rows = [
        f"Interleaved before/after, {ns.rounds} rounds × {ns.duration:g} s per phase and system "
        f"(`python scripts/bench_ab.py --baseline-root {ns.baseline_root} --rounds {ns.rounds} "
        f"--duration {ns.duration:g}`), load average at the end: {os.getloadavg()[0]:.2f}",
        "",
        "| phase | RPS before (median) | RPS after (median) | RPS ratio after/before (median of rounds) "
        "| p50 before (ms) | p50 after (ms) | p50 added (median of rounds, ms) "
        "| server CPU ms/request before → after (median) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, _c, _stream in PHASES:
        before, after = samples["before"].get(label, []), samples["after"].get(label, [])
        if not before or not after:
            continue
        ratios = [a.rps / b.rps for a, b in zip(after, before, strict=True) if b.rps]
        added = [a.p50_ms - b.p50_ms for a, b in zip(after, before, strict=True)]
        errors = sum(x.errors for x in before + after)
        cells: list[Any] = [
            label,
            f"{statistics.median(x.rps for x in before):.1f}",
            f"{statistics.median(x.rps for x in after):.1f}",
            f"{statistics.median(ratios):.3f}" if ratios else "–",
            f"{statistics.median(x.p50_ms for x in before):.2f}",
            f"{statistics.median(x.p50_ms for x in after):.2f}",
            f"{statistics.median(added):+.3f}",
            f"{_cpu(before)} → {_cpu(after)}",
            str(errors),
        ]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
