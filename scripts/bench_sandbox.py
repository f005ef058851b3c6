"""Start-up cost of the Python tool's sandbox, against the cheaper ways one could isolate a run.

Runs a trivial program (``print(6 * 7)``) ``--runs`` times per variant, one at a time, and prints
p50/p95/max wall-clock milliseconds from spawn to exit:

- ``python``           the interpreter alone (``python3 -I -S -``): the floor, no isolation at all
- ``prlimit``          + rlimits (``prlimit ... -- python3``): limits, but the host's files,
                        network and processes are all visible
- ``unshare``          + rlimits + ``unshare --user --map-root-user --net --pid --fork --ipc --uts``:
                        no network/processes, but the whole host filesystem is still readable
- ``bwrap``            the sandbox's exact command line, spawned directly (no ``Sandbox`` around it)
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
from typing import Any

from gateway.config.tools import SandboxLimits
from gateway.tools.sandbox import Sandbox, tasks_of_uid

CODE = b"print(6 * 7)\n"


async def _spawn(argv: list[str], *, uid: int | None = None) -> None:
    user: dict[str, Any] = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},
        **user,
    )
    out, err = await proc.communicate(CODE)
    if proc.returncode != 0 or out.strip() != b"42":
        raise SystemExit(f"{argv[0]} failed: {proc.returncode} {err.decode(errors='replace')[-300:]}")


def variants(sandbox: Sandbox) -> dict[str, Callable[[], Awaitable[None]]]:
    python = [str(sandbox.python), "-I", "-S", "-B", "-"]
    rlimits = sandbox.command()[: sandbox.command().index("--") + 1]
    uid = sandbox.limits.uid_base + 200 if os.geteuid() == 0 else None  # a uid no Sandbox slot uses
    unshare = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--ipc", "--uts", "--"]

    async def run_sandbox() -> None:
        outcome = await sandbox.run(CODE.decode())
        if outcome.exit_code != 0 or outcome.stdout.strip() != b"42":
            raise SystemExit(f"sandbox failed: {outcome}")

    return {
        "python": lambda: _spawn(python),
        "prlimit": lambda: _spawn([*rlimits, *python]),
        "unshare": lambda: _spawn([*rlimits, *unshare, *python]),
        "bwrap": lambda: _spawn(sandbox.command(extra_tasks=sum(tasks_of_uid(uid or os.getuid()))), uid=uid),
        "sandbox": run_sandbox,
    }


async def main(runs: int) -> None:
    sandbox = Sandbox(SandboxLimits())
    runners = variants(sandbox)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        await run()  # warm the page cache
    for _ in range(runs):  # interleaved rounds, so load drift hits every variant alike
        for name, run in runners.items():
            started = time.perf_counter()
            await run()
            samples[name].append((time.perf_counter() - started) * 1000)
    print(
        f"{runs} runs each, interleaved, one at a time; {os.cpu_count()} CPUs; euid {os.geteuid()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'variant':<10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, values in samples.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"{name:<10} {statistics.median(values):8.1f} {p95:8.1f} {values[-1]:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100)
    asyncio.run(main(parser.parse_args().runs))
