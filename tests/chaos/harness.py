"""Steady mixed load against real gateway processes while a fault is injected, and its figures.

Each client loops: half of the requests streamed (SSE read to the end), half not,
round-robin over the gateway URLs. A connection error *before any byte of the answer*
is retried once on the next URL (client-side failover, as an OpenAI SDK with two base
URLs or a load balancer would do); a stream cut after bytes arrived is a failure.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "var" / "chaos" / "figures.json"


@dataclass(slots=True)
class Outcome:
    started: float
    latency: float
    streamed: bool
    status: int | str
    """HTTP status, ``stream:<code>`` for an error event, ``conn`` for a connection error."""
    fallback: bool
    url: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Load:
    urls: Sequence[str]
    clients: int = 24
    stream_ratio: float = 0.5
    model: str = "chat"
    headers: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self, duration_s: float, fault: Callable[[Load], Any] | None = None) -> None:
        self.t0 = time.monotonic()
        limits = httpx.Limits(max_connections=self.clients * 2, max_keepalive_connections=self.clients * 2)
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0), limits=limits) as client:
            workers = [asyncio.create_task(self._client(client, i)) for i in range(self.clients)]
            injector = asyncio.create_task(fault(self)) if fault is not None else None
            await asyncio.sleep(duration_s)
            self._stop.set()
            await asyncio.gather(*workers)
            if injector is not None:
                await injector

    async def _client(self, client: httpx.AsyncClient, index: int) -> None:
        urls = itertools.cycle(self.urls[index % len(self.urls) :] + self.urls[: index % len(self.urls)])
        for n in itertools.count():
            if self._stop.is_set():
                return
            streamed = (n + index) % 100 < self.stream_ratio * 100
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": f"chaos {index}-{n}: say something"}],
                "stream": streamed,
                "temperature": 0.7,
            }
            started = self.now()
            outcome: Outcome | None = None
            for _ in range(2):
                url = next(urls)
                try:
                    outcome = await self._one(client, url, body, streamed, started)
                    break
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                    # No answer head came back: try the other replica once (client-side failover).
                    outcome = Outcome(started, self.now() - started, streamed, "conn", False, url)
            assert outcome is not None
            self.outcomes.append(outcome)

    async def _one(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any], streamed: bool, started: float
    ) -> Outcome:
        async with client.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=self.headers
        ) as response:
            fallback = "x-prism-fallback" in response.headers
            if response.status_code != 200 or not streamed:
                await response.aread()
                return Outcome(started, self.now() - started, streamed, response.status_code, fallback, url)
            status: int | str = "stream:no_done"
            try:
                async for line in response.aiter_lines():
                    if line == "data: [DONE]":
                        status = 200
                    elif line.startswith('data: {"error"'):
                        status = "stream:" + str(json.loads(line[6:])["error"].get("code"))
            except (httpx.RemoteProtocolError, httpx.ReadError):
                status = "stream:cut"
            return Outcome(started, self.now() - started, streamed, status, fallback, url)

    # -- figures ------------------------------------------------------------------------------

    def figures(
        self,
        name: str,
        *,
        fault: tuple[float, float],
        records_expected: int,
        records_written: int,
        recovered_at: float | None = None,
        recover_from: float | None = None,
    ) -> dict[str, Any]:
        """``fault``: the window whose latencies are reported; recovery is measured from
        ``recover_from`` (default: the end of the fault)."""
        outs = self.outcomes
        during = [o.latency for o in outs if fault[0] <= o.started < fault[1]] or [0.0]
        failed = Counter(str(o.status) for o in outs if not o.ok)
        origin = fault[1] if recover_from is None else recover_from
        if recovered_at is None:
            recovered_at = _recovery(outs, origin)
        q = statistics.quantiles(during, n=20) if len(during) >= 2 else during * 19
        return {
            "scenario": name,
            "sent": len(outs),
            "succeeded": sum(o.ok for o in outs),
            "failed": dict(failed),
            "fallbacks": sum(o.fallback for o in outs),
            "p50_ms": round(statistics.median(during) * 1000),
            "p95_ms": round(q[18] * 1000),
            "recover_s": None if recovered_at is None else round(max(recovered_at - origin, 0.0), 2),
            "records_expected": records_expected,
            "records_written": records_written,
        }


def _recovery(outs: list[Outcome], fault_end: float, run: int = 10) -> float | None:
    """When the first of ``run`` consecutive clean answers (200, no fallback) after the fault started."""
    after = sorted((o for o in outs if o.started >= fault_end), key=lambda o: o.started)
    streak_start: float | None = None
    streak = 0
    for o in after:
        if o.ok and not o.fallback:
            streak += 1
            streak_start = o.started if streak == 1 else streak_start
            if streak >= run:
                return streak_start
        else:
            streak = 0
    return None


def answered(outs: list[Outcome], url: str | None = None) -> int:
    """Requests the gateway answered (any HTTP status or a finished/failed stream): each owes a record."""
    return sum(1 for o in outs if o.status not in ("conn", "stream:cut") and (url is None or o.url == url))


def sqlite_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM usage_logs").fetchone()[0])


def line(fig: dict[str, Any]) -> str:
    failed = ",".join(f"{k}:{v}" for k, v in sorted(fig["failed"].items())) or "0"
    return (
        f"{fig['scenario']}: sent={fig['sent']} ok={fig['succeeded']} failed={failed} "
        f"fallbacks={fig['fallbacks']} p50={fig['p50_ms']}ms p95={fig['p95_ms']}ms "
        f"recover={fig['recover_s']}s records={fig['records_written']}/{fig['records_expected']}"
    )


def save(fig: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[fig["scenario"]] = {**fig, **(extra or {}), "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True))
    print("\nCHAOS " + line(fig))
