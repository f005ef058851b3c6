"""A durable worker process for the takeover test: submits one run of the counted pipeline and
executes it until it is killed (the pipeline hangs at ``--hang-at`` on the first claim).

``python -m tests.support.durable_worker URL RUN_ID --hang-at s3``
"""

from __future__ import annotations

import argparse
import asyncio

from gateway.agent.durable import open_runtime
from gateway.config.settings import get_settings
from tests.support.durable_graphs import counted_pipeline


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("run_id")
    parser.add_argument("--hang-at", default="s3")
    parser.add_argument("--lease-s", type=float, default=2.0)
    args = parser.parse_args()
    settings = get_settings(
        database_url=args.url,
        env="test",
        durable_worker_id="worker-a",
        durable_lease_s=args.lease_s,
        durable_heartbeat_s=args.lease_s / 4,
    )
    graph = counted_pipeline(args.url, hang_at=args.hang_at, worker="worker-a")
    async with open_runtime(settings, [graph], recover=False) as runtime:
        handle = await runtime.submit("counted", [], run_id=args.run_id)
        await handle.outcome()


if __name__ == "__main__":
    asyncio.run(main())
