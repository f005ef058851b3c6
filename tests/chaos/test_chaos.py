"""Chaos suite (issue #10): steady mixed load through real gateway processes while one fault
is injected at a time; each scenario prints one line of figures and stores them in
``var/chaos/figures.json`` (``scripts/chaos_report.py`` writes them into docs/resilience.md).

Bounded for a loaded 2-core box: 24 concurrent clients for 16 s per scenario (the fault
from 4 s to 10 s), half of the requests streamed. The primary model is an ``openai``
provider pointed at the fake OpenAI upstream; the fallback is the in-process mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.chaos.harness import Load, answered, save, sqlite_rows
from tests.fakes.openai_upstream import FakeOpenAIUpstream, run_in_thread
from tests.integration.db_fixtures import PostgresInstance, postgres_available
from tests.support.gateway_proc import GatewayProcess, start_gateway
from tests.support.redis_proc import RedisProcess

pytestmark = pytest.mark.chaos

DURATION_S = float(os.environ.get("CHAOS_DURATION_S", "16"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "24"))
FAULT = (4.0, 10.0)
DEADLINE_S = 6.0
KEY_ENV = "PRISM_CHAOS_KEY"

CONFIG = """
models:
  primary:
    provider: openai
    model: gpt-4o-mini
    base_url: {base}
    api_key_env: {key_env}
    local: true
    tier: cheap
    max_output_tokens: 256
    timeouts: {{connect_s: 1.0, first_token_s: 1.0, idle_s: 3.0, total_s: 1.5}}
  lonely:
    provider: openai
    model: gpt-4o-mini
    base_url: {base}
    api_key_env: {key_env}
    local: true
    tier: cheap
    timeouts: {{connect_s: 1.0, first_token_s: 5.0, idle_s: 5.0, total_s: 5.0}}
  backup:
    provider: mock
    tier: cheap
    mock: {{latency_ms: 20, token_delay_ms: 2, answer_words: 12}}
aliases:
  chat: {{target: primary, deadline_s: {deadline}}}
fallbacks:
  primary: [backup]
retry: {{deadline_s: {deadline}, max_attempts: 2, base_delay_s: 0.05, max_delay_s: 0.5}}
circuit_breaker: {{failure_threshold: 5, cooldown_s: 2.0, max_cooldown_s: 4.0, min_requests: 20}}
cache: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIUpstream]:
    server = FakeOpenAIUpstream(chunks=8, chunk_delay=0.01, cut_after=3, hang_seconds=20.0, retry_after=1.0)
    with run_in_thread(server):
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeOpenAIUpstream) -> None:
    fake.reset()


def config(fake: FakeOpenAIUpstream) -> str:
    return CONFIG.format(base=fake.openai_base_url, key_env=KEY_ENV, deadline=DEADLINE_S)


def env(**extra: str) -> dict[str, str]:
    return {KEY_ENV: "sk-chaos", "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.2", **extra}


def db_path(gateway: GatewayProcess) -> Path:
    return gateway.log_path.parent / f"prism-{gateway.port}.db"


def check_deadlines(load: Load) -> None:
    """No non-streamed request outlives its deadline by more than 100 ms (client-side clock)."""
    worst = max((o.latency for o in load.outcomes if not o.streamed), default=0.0)
    assert worst <= DEADLINE_S + 0.1, f"a request took {worst:.3f}s (deadline {DEADLINE_S}s)"


def provider_fault(fake: FakeOpenAIUpstream, **during: Any) -> Any:
    async def inject(load: Load) -> None:
        await asyncio.sleep(FAULT[0])
        fake.configure(**during)
        await asyncio.sleep(FAULT[1] - FAULT[0])
        fake.configure(mode="ok")

    return inject


def run_provider_scenario(
    name: str,
    fake: FakeOpenAIUpstream,
    tmp_path: Path,
    *,
    stream_errors_ok: bool = False,
    expect_fallbacks: bool = True,
    **during: Any,
) -> tuple[Load, dict[str, Any]]:
    gateway = start_gateway(tmp_path, config=config(fake), env=env())
    try:
        load = Load([gateway.url], clients=CLIENTS)
        asyncio.run(load.run(DURATION_S, provider_fault(fake, **during)))
    finally:
        gateway.stop()
    fig = load.figures(
        name,
        fault=FAULT,
        records_expected=answered(load.outcomes),
        records_written=sqlite_rows(db_path(gateway)),
    )
    save(fig, {"upstream_requests": fake.total_requests})
    assert "unhandled_error" not in gateway.log()
    assert fig["records_written"] == fig["records_expected"], fig
    failures = [o for o in load.outcomes if not o.ok]
    if stream_errors_ok:
        assert all(o.streamed and str(o.status).startswith("stream:") for o in failures), fig
        assert "stream:cut" not in fig["failed"] and "stream:no_done" not in fig["failed"], fig
    else:
        assert not failures, fig
    if expect_fallbacks:
        assert fig["fallbacks"] > 0, fig
    assert fig["recover_s"] is not None, fig
    check_deadlines(load)
    return load, fig


def test_primary_500s(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    run_provider_scenario("primary 500s", fake, tmp_path, mode="500")


def test_primary_429_retry_after(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    run_provider_scenario("primary 429 + Retry-After", fake, tmp_path, mode="429")


def test_primary_hangs_before_first_byte(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    run_provider_scenario("primary hangs before first byte", fake, tmp_path, mode="hang")


def test_primary_dies_mid_stream(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    """``cut`` closes the connection after 3 chunks: streams already under way end with an error
    event (no [DONE]) and an ``incomplete`` record of the tokens relayed; non-streamed requests
    (a cut JSON body) fall back."""
    load, _ = run_provider_scenario(
        "primary dies mid-stream", fake, tmp_path, stream_errors_ok=True, mode="cut"
    )
    assert not [o for o in load.outcomes if not o.ok and not o.streamed]


def test_stream_stall_mid_answer(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    """``stall`` stops sending after 3 chunks: the idle guard (3 s) ends the stream with an error event.

    Non-streamed answers arrive whole and streams have relayed their first words before the stall
    (the output guard holds back only the last word), so they do not fall back either: a second
    model's answer after the first one's opening would be a different text spliced onto it. (Only
    the breaker, if the stalls trip it, sends later requests to the backup.)
    """
    load, _ = run_provider_scenario(
        "primary stalls mid-stream",
        fake,
        tmp_path,
        stream_errors_ok=True,
        expect_fallbacks=False,
        mode="stall",
    )
    stalled = [o for o in load.outcomes if not o.ok]
    assert stalled and all(o.status == "stream:upstream_timeout" for o in stalled)
    assert max(o.latency for o in stalled) <= 3.0 + 1.0, "the idle guard let a stalled stream hang on"


def test_deadline_exceeded_names_attempts(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    """X-Prism-Timeout caps the whole request; the 504 says what was tried, within 100 ms."""
    fake.configure(mode="hang")
    gateway = start_gateway(tmp_path, config=config(fake), env=env())
    try:
        warm = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "backup", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert warm.status_code == 200
        started = time.monotonic()
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "lonely", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Prism-Timeout": "1.2"},
            timeout=10,
        )
        elapsed = time.monotonic() - started
        error = response.json()["error"]
        assert response.status_code == 504 and error["code"] == "deadline_exceeded", response.text
        assert "lonely" in error["message"] and "tried" in error["message"]
        assert 1.2 <= elapsed <= 1.3 + 0.1, elapsed
        bad = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "lonely", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Prism-Timeout": "soon"},
            timeout=10,
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Prism-Timeout"
    finally:
        gateway.stop()


def test_redis_stopped_and_restarted(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path).start()
    gateway = start_gateway(
        tmp_path, config=config(fake), env=env(GATEWAY_REDIS_URL=redis.url, GATEWAY_REDIS_KEY_PREFIX="chaos")
    )
    recovered: list[float] = []

    async def inject(load: Load) -> None:
        await asyncio.sleep(FAULT[0])
        await asyncio.to_thread(redis.kill)
        await asyncio.sleep(FAULT[1] - FAULT[0])
        await asyncio.to_thread(redis.start)
        async with httpx.AsyncClient() as client:
            while load.now() < DURATION_S:
                ready = (await client.get(f"{gateway.url}/readyz")).json()
                if ready["checks"].get("redis"):
                    recovered.append(load.now())
                    return
                await asyncio.sleep(0.1)

    try:
        load = Load([gateway.url], clients=CLIENTS)
        asyncio.run(load.run(DURATION_S, inject))
    finally:
        gateway.stop()
        redis.kill()
    fig = load.figures(
        "Redis stopped and restarted",
        fault=FAULT,
        records_expected=answered(load.outcomes),
        records_written=sqlite_rows(db_path(gateway)),
        recovered_at=recovered[0] if recovered else None,
    )
    save(fig)
    assert not [o for o in load.outcomes if not o.ok], fig
    assert fig["records_written"] == fig["records_expected"], fig
    assert recovered, "the gateway did not see Redis again"
    check_deadlines(load)


def test_postgres_stopped_and_restarted(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    try:
        pg = PostgresInstance()
    except Exception as exc:
        pytest.skip(f"cannot start a private Postgres: {exc}")
    pg.start()
    url = f"{pg.base_url}/postgres"
    gateway = start_gateway(
        tmp_path, config=config(fake), env=env(GATEWAY_DATABASE_URL=url, GATEWAY_USAGE_SPILL_THRESHOLD="50")
    )
    recovered: list[float] = []

    async def inject(load: Load) -> None:
        await asyncio.sleep(FAULT[0])
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(FAULT[1] - FAULT[0])
        await asyncio.to_thread(pg.start)
        recovered.append(load.now())

    try:
        load = Load([gateway.url], clients=CLIENTS)
        asyncio.run(load.run(DURATION_S, inject))
    finally:
        gateway.stop(timeout=30)

    async def count() -> int:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(await conn.fetchval("SELECT count(*) FROM usage_logs"))
        finally:
            await conn.close()

    try:
        assert postgres_available(pg.base_url)
        written = asyncio.run(count())
    finally:
        pg.destroy()
    fig = load.figures(
        "Postgres stopped and restarted",
        fault=FAULT,
        records_expected=answered(load.outcomes),
        records_written=written,
        recovered_at=recovered[0] if recovered else None,
    )
    save(fig)
    assert not [o for o in load.outcomes if not o.ok], fig
    assert written == fig["records_expected"], fig
    check_deadlines(load)


def test_replica_sigkilled(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    """Two replicas; the client fails over on connection errors. The killed replica loses the
    records still in its buffer (at most one flush interval, 0.2 s): the survivor loses none."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    survivor = start_gateway(tmp_path / "a", config=config(fake), env=env())
    victim = start_gateway(tmp_path / "b", config=config(fake), env=env())
    killed_at: list[float] = []

    async def inject(load: Load) -> None:
        await asyncio.sleep(FAULT[0])
        victim.process.send_signal(signal.SIGKILL)
        killed_at.append(load.now())

    try:
        load = Load([survivor.url, victim.url], clients=CLIENTS)
        asyncio.run(load.run(DURATION_S, inject))
    finally:
        survivor.stop()
        victim.stop()
    survivor_answered = answered(load.outcomes, survivor.url)
    victim_answered = answered(load.outcomes, victim.url)
    written_survivor = sqlite_rows(db_path(survivor))
    written_victim = sqlite_rows(db_path(victim))
    fig = load.figures(
        "one of two replicas SIGKILLed",
        fault=FAULT,
        recover_from=FAULT[0],
        records_expected=survivor_answered + victim_answered,
        records_written=written_survivor + written_victim,
    )
    save(fig, {"victim_records_lost": victim_answered - written_victim})
    broken = [o for o in load.outcomes if not o.ok]
    # Only streams already under way on the victim can break (bytes were relayed; no replay).
    assert all(o.url == victim.url and o.streamed for o in broken), fig
    assert len(broken) <= CLIENTS, fig
    assert written_survivor == survivor_answered, (fig, survivor.log()[-3000:])
    assert 0 <= victim_answered - written_victim <= CLIENTS * 2, fig
    check_deadlines(load)


def test_sigterm_during_open_streams(fake: FakeOpenAIUpstream, tmp_path: Path) -> None:
    """SIGTERM: /readyz 503 at once; short streams finish; streams still open after the drain
    timeout end with ``server_shutting_down``; every record is flushed; exit status 0."""
    fake.configure(chunks=60, chunk_delay=0.1)  # ~6 s streams
    gateway = start_gateway(
        tmp_path,
        config=config(fake),
        env=env(GATEWAY_DRAIN_TIMEOUT_S="2", GATEWAY_DRAIN_DELAY_S="1"),
        entry="gateway",
    )
    ready_during: list[int] = []

    async def inject(load: Load) -> None:
        await asyncio.sleep(2.0)
        gateway.signal(signal.SIGTERM)
        async with httpx.AsyncClient() as client:
            await asyncio.sleep(0.3)
            with contextlib.suppress(httpx.HTTPError):
                ready_during.append((await client.get(f"{gateway.url}/readyz")).status_code)

    load = Load([gateway.url], clients=12, stream_ratio=1.0)
    started = time.monotonic()
    asyncio.run(load.run(2.5, inject))
    code = gateway.process.wait(timeout=30)
    elapsed = time.monotonic() - started
    gateway.stop()
    fig = load.figures(
        "SIGTERM during open streams",
        fault=(0.0, 2.5),
        records_expected=answered(load.outcomes),
        records_written=sqlite_rows(db_path(gateway)),
        recovered_at=2.0,
    )
    save(fig, {"exit_status": code, "shutdown_s": round(elapsed - 2.0, 2)})
    assert code == 0, gateway.log()[-3000:]
    assert ready_during == [503], ready_during
    statuses = {str(o.status) for o in load.outcomes}
    assert statuses <= {"200", "stream:server_shutting_down"}, fig
    assert "stream:server_shutting_down" in statuses, fig
    assert fig["records_written"] == fig["records_expected"], (fig, gateway.log()[-4000:])
