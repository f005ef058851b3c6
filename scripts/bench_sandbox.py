"""Start-up cost of the Python tool's sandbox, against the cheaper ways one could isolate a run.

Runs a trivial program (``print(6 * 7)``) ``--runs`` times per variant, one at a time, and prints
p50/p95/max wall-clock milliseconds from spawn to exit:

- ``python``           the interpreter alone (``python3 -I -S -``): the floor, no isolation at all
- ``prlimit``          + rlimits (``prlimit ... -- python3``): limits, but the host's files,
                        network and processes are all visible
- ``unshare``          + rlimits + ``unshare --user --map-root-user --net --pid --fork --ipc --uts``:
                        no network/processes, but the whole host filesystem is still readable
- ``sandbox``          what the tool runs: ``prlimit`` + bubblewrap (namespaces, empty root with
                        read-only /usr, tmpfs scratch, cleared environment), via ``Sandbox.run``

    python scripts/bench_sandbox.py --runs 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from gateway.config.tools import SandboxLimits
from gateway.tools.sandbox import Sandbox

CODE = b"print(6 * 7)\n"


async def _spawn(argv: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},
    )
    out, err = await proc.communicate(CODE)
    if proc.returncode != 0 or out.strip() != b"42":
        raise SystemExit(f"{argv[0]} failed: {proc.returncode} {err.decode(errors='replace')[-300:]}")


def variants(sandbox: Sandbox) -> dict[str, Callable[[], Awaitable[None]]]:
    python = [str(sandbox.python), "-I", "-S", "-B", "-"]
    rlimits = sandbox.command()[: sandbox.command().index("--") + 1]
    unshare = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--ipc", "--uts", "--"]

    async def run_sandbox() -> None:
        outcome = await sandbox.run(CODE.decode())
        if outcome.exit_code != 0 or outcome.stdout.strip() != b"42":
            raise SystemExit(f"sandbox failed: {outcome}")

    return {
        "python": lambda: _spawn(python),
        "prlimit": lambda: _spawn([*rlimits, *python]),
        "unshare": lambda: _spawn([*rlimits, *unshare, *python]),
        "sandbox": run_sandbox,
    }


async def main(runs: int) -> None:
    sandbox = Sandbox(SandboxLimits())
    print(f"{runs} runs each, one at a time; {os.cpu_count()} CPUs; euid {os.geteuid()}")
    print(f"{'variant':<10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, run in variants(sandbox).items():
        await run()  # warm the page cache
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            await run()
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
        print(f"{name:<10} {statistics.median(samples):8.1f} {p95:8.1f} {samples[-1]:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100)
    asyncio.run(main(parser.parse_args().runs))
