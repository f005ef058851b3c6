"""Experiments end to end through the real gateway: an 80/20 A/B split (stickiness, observed
split, report significance), equal arms, canary rollback and ramp, shadow traffic that never slows
or fails the primary, and feedback limited to the caller's own requests."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.experiments.stats import percentile
from tests.fakes.openai_upstream import FakeOpenAIUpstream, run_in_thread
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "exp-admin@example.com"
ADMIN_PASSWORD = "An-admin-passphrase-42"
PASSWORD = "violet-harbour-kettle-91"

CONFIG = """
models:
  fast: {provider: mock, price_input_per_mtok: 1, price_output_per_mtok: 2, mock: {latency_ms: 2}}
  slow: {provider: mock, price_input_per_mtok: 3, price_output_per_mtok: 6,
         mock: {latency_ms: 25, failure_rate: 0.03}}
  fast2: {provider: mock, price_input_per_mtok: 1, price_output_per_mtok: 2, mock: {latency_ms: 2}}
  flaky: {provider: mock, mock: {latency_ms: 2, failure_rate: 0.5, failure_kind: "500", seed: 7}}
  shadow-slow: {provider: mock, price_input_per_mtok: 5, price_output_per_mtok: 5,
                mock: {latency_ms: 2000, failure_rate: 0.5, seed: 3}}
  judge: {provider: openai, model: gpt-judge, base_url: "http://judge.invalid/v1", api_key_env: JUDGE_KEY,
          local: true}
  judge-mock: {provider: mock}
aliases:
  plain: {target: fast}
  shadowed: {target: fast, shadow: [shadow-slow], shadow_sample_rate: 1.0,
             shadow_judge: {model: judge, sample_rate: 1.0, max_concurrent: 4, deadline_s: 5}}
  judged: {target: fast, shadow: [fast2], shadow_judge: {model: judge, sample_rate: 1.0, max_concurrent: 4}}
  judged-by-mock: {target: fast, shadow: [fast2], shadow_judge: {model: judge-mock, max_concurrent: 4,
                                                                  sample_rate: 1.0}}
  judged-streams: {target: fast, shadow: [fast2], shadow_judge: {model: judge, sample_rate: 1.0,
                                                                  max_concurrent: 32}}
retry: {max_attempts: 1}
circuit_breaker: {failure_threshold: 1000}
cache: {enabled: false}
experiments:
  ab:
    alias: chat-ab
    control: a
    sticky: user
    arms:
      a: {model: fast, weight: 80}
      b: {model: slow, weight: 20}
  same:
    alias: chat-same
    control: a
    arms:
      a: {model: fast, weight: 50}
      b: {model: fast2, weight: 50}
  canary-bad:
    alias: chat-cbad
    control: stable
    arms: {stable: {model: fast}, next: {model: flaky}}
    canary: {arm: next, min_samples: 30, steps: [{percent: 50, after_requests: 100000}, {percent: 100}]}
  canary-good:
    alias: chat-cgood
    control: stable
    arms: {stable: {model: fast}, next: {model: fast2}}
    canary:
      arm: next
      min_samples: 30
      max_p95_latency_increase: 2.0
      latency_floor_ms: 250
      steps: [{percent: 10, after_requests: 20}, {percent: 50, after_requests: 40}, {percent: 100}]
"""


JUDGE_REPLY = '{"a": 4, "b": 8}'
"""The fake judge always prefers answer B; which side that is varies per pair (position bias)."""


@pytest.fixture(scope="module")
def judge_upstream() -> Iterator[FakeOpenAIUpstream]:
    with run_in_thread(FakeOpenAIUpstream(reply=JUDGE_REPLY)) as server:
        yield server


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, judge_upstream: FakeOpenAIUpstream
) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("experiments"),
        config=CONFIG.replace("http://judge.invalid/v1", judge_upstream.openai_base_url),
        env={
            "JUDGE_KEY": "sk-fake-judge",
            "GATEWAY_AUTH_ENABLED": "false",
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.2",
            "GATEWAY_QUOTA_ENABLED": "false",
        },
    )
    yield process
    process.stop()


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _arm(response: httpx.Response) -> str | None:
    route = response.headers.get("x-prism-route", "")
    parts = dict(part.split("=", 1) for part in route.split(";") if "=" in part)
    return parts.get("arm")


async def _send(
    client: httpx.AsyncClient, model: str, users: list[str], *, concurrency: int = 32, stream: bool = False
) -> list[tuple[str, httpx.Response, float]]:
    semaphore = asyncio.Semaphore(concurrency)
    out: list[tuple[str, httpx.Response, float]] = []

    async def one(user: str) -> None:
        async with semaphore:
            started = time.perf_counter()
            r = await client.post(
                "/v1/chat/completions",
                json={
                    "model": model,
                    "user": user,
                    "stream": stream,
                    "messages": [{"role": "user", "content": f"hello from {user}"}],
                },
            )
            if stream:
                await r.aread()
            out.append((user, r, time.perf_counter() - started))

    await asyncio.gather(*(one(user) for user in users))
    return out


async def test_ab_split_sticky_and_significant(gw: GatewayProcess) -> None:
    users = [f"ab-user-{i}" for i in range(1700)]
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        # 2,000 requests: 1,700 users, 300 of them twice (stickiness)
        results = await _send(client, "chat-ab", users + users[:300], concurrency=6)
        arms_by_user: dict[str, set[str | None]] = defaultdict(set)
        for user, response, _ in results:
            assert response.status_code in (200, 500, 502, 503), response.text
            if response.status_code == 200:  # error bodies carry no route header
                assert "experiment=ab" in response.headers["x-prism-route"]
                arms_by_user[user].add(_arm(response))
        assert all(len(arms) == 1 for arms in arms_by_user.values()), "a user changed arm"
        counts = Counter(next(iter(arms)) for arms in arms_by_user.values())
        share_b = counts["b"] / len(arms_by_user)
        assert abs(share_b - 0.2) <= 0.03, counts

        same = await _send(client, "chat-same", [f"same-{i}" for i in range(600)], concurrency=6)
        assert all(r.status_code == 200 for _, r, _ in same)

        headers = await _admin(client)
        report = (await client.get("/admin/experiments/ab", headers=headers)).json()
        b = report["comparisons"]["b"]
        assert report["arms"]["a"]["requests"] + report["arms"]["b"]["requests"] == 2000
        assert report["arms"]["b"]["latency_ms"]["p50"] > report["arms"]["a"]["latency_ms"]["p50"]
        assert b["latency"]["relative"] > 0 and b["latency"]["p_value"] < 0.01
        assert b["cost"]["relative"] > 0 and b["cost"]["p_value"] < 0.01
        # Absolute differences with intervals: the mock arms differ by ~23 ms of latency.
        assert b["latency_mean"]["significant"] and 10 < b["latency_mean"]["difference"] < 40
        assert b["latency_p50"]["ci95"][0] > 0 and b["latency_p95"]["difference"] > 0
        assert b["cost_per_request"]["significant"] and b["cost_per_request"]["ci95"][0] > 0
        assert "latency mean +" in b["verdict"] and "cost per request +" in b["verdict"]

        equal = (await client.get("/admin/experiments/same", headers=headers)).json()
        eq = equal["comparisons"]["b"]
        assert eq["latency"]["p_value"] > 0.01, eq
        # Same latency and error rate; the cost does differ for real: the mock's reply names the model
        # ("fast2 says: …" is one token longer than "fast says: …"). Exactly identical samples are
        # covered in tests/unit/test_reports_truth.py.
        assert set(eq["significant"]) <= {"cost_per_request"}, eq["verdict"]
        print("AB verdict:", b["verdict"], "| equal:", eq["verdict"], "| split b:", share_b)


async def test_streamed_requests_count_in_their_arm(gw: GatewayProcess) -> None:
    """A live stream's books are closed by the relay, not the settle node: its usage record must still
    name its experiment arm (and intent, tier, route), or an A/B report silently drops streamed traffic."""
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        headers = await _admin(client)

        async def total() -> int:
            report = (await client.get("/admin/experiments/same", headers=headers)).json()
            return sum(int(arm.get("requests", 0)) for arm in report.get("arms", {}).values())

        before = await total()
        streamed = await _send(
            client, "chat-same", [f"same-stream-{i}" for i in range(30)], concurrency=4, stream=True
        )
        assert all(r.status_code == 200 and r.text.endswith("data: [DONE]\n\n") for _, r, _ in streamed)
        after = before
        for _ in range(50):  # the report reads what the books observed: at most a moment behind
            after = await total()
            if after >= before + 30:
                break
            await asyncio.sleep(0.2)
        assert after == before + 30, (before, after)


async def test_canary_rolls_back_and_advances(gw: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        await _send(client, "chat-cbad", [f"cb-{i}" for i in range(300)], concurrency=8)
        after = await _send(client, "chat-cbad", [f"cb-late-{i}" for i in range(60)], concurrency=8)
        assert {_arm(r) for _, r, _ in after} == {"stable"}
        assert all(r.status_code == 200 for _, r, _ in after)

        await _send(client, "chat-cgood", [f"cg-{i}" for i in range(500)], concurrency=8)
        headers = await _admin(client)
        listing = {
            e["name"]: e for e in (await client.get("/admin/experiments", headers=headers)).json()["data"]
        }
        bad, good = listing["canary-bad"]["canary"], listing["canary-good"]["canary"]
        assert bad["status"] == "rolled_back" and "error rate" in bad["rollback_reason"]
        assert good["status"] == "complete" and good["percent"] == 100, good
        steps = [h for h in good["history"] if h["event"] in ("start", "advance")]
        assert [h["percent"] for h in steps] == [10, 50, 100]
        # The first step (20 requests) is shorter than min_samples (30): held until it can be checked.
        assert [h["event"] for h in good["history"]][:2] == ["start", "hold"]
        assert all("at" in h for h in good["history"])
        report = (await client.get("/admin/experiments/canary-bad", headers=headers)).json()
        assert report["canary"]["status"] == "rolled_back"
        errors = report["comparisons"]["next"]["error_rate"]
        assert errors["significant"] and errors["difference"] > 0 and errors["ci95"][0] > 0
        assert "error rate +" in report["comparisons"]["next"]["verdict"]
        assert report["run"]["scope"] == "all rows"

        # An admin reset: a new run (later reports start empty) and the canary starts over.
        reset = await client.post(
            "/admin/experiments/canary-bad/reset", headers=headers, json={"reason": "fixed build"}
        )
        assert reset.status_code == 201, reset.text
        assert reset.json()["canary"]["status"] == "ramping"
        assert reset.json()["canary"]["history"][-1]["event"] == "reset"
        fresh = (await client.get("/admin/experiments/canary-bad", headers=headers)).json()
        assert fresh["run"]["id"] == reset.json()["run"]["id"] and fresh["run"]["reason"] == "fixed build"
        assert sum(arm["requests"] for arm in fresh["arms"].values()) == 0
        everything = (await client.get("/admin/experiments/canary-bad?run=all", headers=headers)).json()
        assert sum(arm["requests"] for arm in everything["arms"].values()) >= 360
        runs = (await client.get("/admin/experiments/canary-bad/runs", headers=headers)).json()["data"]
        assert [r["id"] for r in runs] == [reset.json()["run"]["id"]]
        assert (await client.post("/admin/experiments/nope/reset", headers=headers)).status_code == 404


async def test_judge_scores_shadow_pairs_in_the_report(gw: GatewayProcess) -> None:
    """A judge model (the fake OpenAI upstream through Prism's openai provider) scores shadow pairs
    in the background; the report shows the score distribution and the win rate. A judge whose
    answers hold no scores (the mock echoes its prompt) is counted as parse errors, never fatal."""
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        for alias in ("judged", "judged-by-mock"):
            batch = await _send(client, alias, [f"{alias}-{i}" for i in range(40)], concurrency=4)
            assert all(r.status_code == 200 for _, r, _ in batch)
        headers = await _admin(client)
        deadline = time.monotonic() + 20
        while True:
            reports = {
                alias: (await client.get(f"/admin/shadow/{alias}", headers=headers)).json()
                for alias in ("judged", "judged-by-mock")
            }
            judges = {alias: r["models"].get("fast2", {}).get("judge") for alias, r in reports.items()}
            if (
                all(j is not None and j["calls"] >= 20 for j in judges.values())
                or time.monotonic() > deadline
            ):
                break
            await asyncio.sleep(0.5)
        judged, by_mock = judges["judged"], judges["judged-by-mock"]
        print("judge report:", judged, "| mock judge:", by_mock)
        assert judged is not None and judged["judged"] >= 20 and judged["errors"] == 0, judged
        assert judged["judge_models"] == ["judge"]
        histogram = judged["shadow_score"]["histogram"]
        assert sum(histogram.values()) == judged["judged"]
        assert {k for k, n in histogram.items() if n} <= {"4", "8"}  # the fake's scores, mapped back
        assert 0 < judged["shadow_win_rate"] < 1 and judged["tie_rate"] == 0
        assert judged["shadow_win_rate"] + judged["primary_win_rate"] == pytest.approx(1)
        assert reports["judged"]["judge"]["model"] == "judge"
        assert by_mock is not None and by_mock["judged"] == 0, by_mock
        assert by_mock["errors_by_type"] == {"parse_error": by_mock["calls"]}
        metrics_text = (await client.get("/metrics")).text
        assert 'prism_shadow_judge_calls_total{model="judge",outcome="ok"}' in metrics_text
        assert 'prism_shadow_judge_calls_total{model="judge-mock",outcome="parse_error"}' in metrics_text


async def test_streamed_primaries_are_scored_and_judged_like_plain_ones(gw: GatewayProcess) -> None:
    """Half of the primaries streamed: every pair, streamed or not, gets an agreement score and a
    judge verdict (before issue #26, streamed primaries' text was never captured: no score, no judge).
    The judge's concurrency bound is above what two clients can keep busy: none is dropped as busy."""
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        plain = await _send(client, "judged-streams", [f"js-plain-{i}" for i in range(20)], concurrency=2)
        streamed = await _send(
            client, "judged-streams", [f"js-stream-{i}" for i in range(20)], concurrency=2, stream=True
        )
        assert all(r.status_code == 200 for _, r, _ in plain + streamed)
        assert all(r.text.endswith("data: [DONE]\n\n") for _, r, _ in streamed)
        headers = await _admin(client)
        deadline = time.monotonic() + 30
        while True:
            report = (await client.get("/admin/shadow/judged-streams", headers=headers)).json()
            fast2 = report["models"].get("fast2", {})
            if (fast2.get("judged", 0) >= 40 and fast2.get("scored", 0) >= 40) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        print("streamed shadow report:", {k: fast2.get(k) for k in ("pairs", "streamed", "scored", "judged")})
        assert fast2["pairs"] == 40 and fast2["dropped"] == 0, fast2
        assert fast2["streamed"] == 20, fast2
        assert fast2["scored"] == 40 and fast2["agreement"]["n"] == 40, fast2["unscored_by_reason"]
        assert fast2["judged"] == 40, fast2["judge"]


async def _shadow_latency_rounds(
    client: httpx.AsyncClient, *, rounds: int, per_block: int, tag: str
) -> dict[str, list[float]]:
    """Alternating blocks of shadow-off (``plain``) and shadow-on (``shadowed``) requests.

    Both aliases send to the same primary model. Blocks are short (40 requests, ~0.3 s), alternate, and swap
    their order every other round (ABBA), so a burst of load from other processes on the shared
    machine hits both sides alike; every other round streams. The shadow's background work (calls
    finishing 2 s later, the agreement, the batched writer) lands in later blocks of both kinds; what
    differs between the blocks is the shadow's cost on its own request's path.
    """
    samples: dict[str, list[float]] = {"plain": [], "shadowed": []}
    for round_ in range(rounds):
        stream = round_ % 2 == 1
        order = ("plain", "shadowed") if round_ % 4 < 2 else ("shadowed", "plain")
        for model in order:
            users = [f"{tag}-{model}-{round_}-{i}" for i in range(per_block)]
            batch = await _send(client, model, users, concurrency=8, stream=stream)
            for _, response, elapsed in batch:
                assert response.status_code == 200, response.text  # no primary request fails
                if stream:
                    assert response.text.endswith("data: [DONE]\n\n"), response.text[-300:]
                samples[model].append(elapsed)
    return samples


async def test_shadow_never_slows_or_fails_primary(gw: GatewayProcess) -> None:
    """A 2 s shadow failing half the time: the primary's p95 stays within 5% of shadow-off.

    p95 over all samples of each side (1,280 per side per pass: the 64th slowest). On a shared
    2-core machine a single pass can be thrown by other work; when the comparison fails the
    measurement continues with another pass (at most seven more, ~4 s each) and the pooled samples
    decide — the bound itself (5%, no absolute slack) never moves. Three passes were not always
    enough in CI: +13.8% after one, +6.1% pooled after three, with equal p50s (11.0 / 11.2 ms).
    """
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        # Warm-up: connections, code paths, and the shadow queue, which fills (8 calls running, 256
        # waiting) and stays full: every request is mirrored, far more than a 2 s shadow can take,
        # so beyond the queue shadow calls are dropped and counted (``prism_shadow_dropped``).
        for model in ("plain", "shadowed"):
            await _send(client, model, [f"warm-{model}-{i}" for i in range(300)], concurrency=8)
        pooled: dict[str, list[float]] = {"plain": [], "shadowed": []}
        passes: list[str] = []
        for pass_ in range(8):
            samples = await _shadow_latency_rounds(client, rounds=32, per_block=40, tag=f"p{pass_}")
            for model, values in samples.items():
                pooled[model].extend(values)
            p95_plain, p95_shadow = percentile(pooled["plain"], 95), percentile(pooled["shadowed"], 95)
            passes.append(
                f"pass {pass_ + 1}: n={len(pooled['plain'])}/side, p95 shadow-off {p95_plain * 1000:.1f} ms, "
                f"shadow-on {p95_shadow * 1000:.1f} ms ({(p95_shadow / p95_plain - 1) * 100:+.1f}%); "
                f"p50 {percentile(pooled['plain'], 50) * 1000:.1f} / "
                f"{percentile(pooled['shadowed'], 50) * 1000:.1f} ms"
            )
            print("primary latency through the gateway,", passes[-1])
            if p95_shadow <= p95_plain * 1.05:
                break

        headers = await _admin(client)
        deadline = time.monotonic() + 30
        while True:
            report = (await client.get("/admin/shadow/shadowed", headers=headers)).json()
            model = report["models"].get("shadow-slow")
            if (model is not None and model["pairs"] >= 24) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert model is not None, report
        assert 0.15 <= model["error_rate"] <= 0.85, model
        assert model["errors_by_type"].get("upstream_unavailable", 0) > 0, model
        assert model["shadow_latency_ms"]["p50"] >= 1900
        assert model["latency_ratio_p50"] > 10
        assert model["agreement"]["n"] > 0 and model["cost_ratio"] > 1
        assert model["judge"] is not None and model["judge"]["judged"] > 0, model
        print("shadow report:", model)
        metrics_text = (await client.get("/metrics")).text
        counters = [line for line in metrics_text.splitlines() if line.startswith("prism_shadow_")]
        print("shadow counters:", counters)
        assert p95_shadow <= p95_plain * 1.05, passes


async def test_feedback_only_for_own_requests(tmp_path: Path) -> None:
    process = start_gateway(
        tmp_path,
        config=CONFIG,
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
            "GATEWAY_QUOTA_ENABLED": "false",
        },
    )
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
            tokens: list[dict[str, str]] = []
            for who in ("alice", "bob"):
                email = f"{who}-{time.time_ns()}@example.com"
                r = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
                assert r.status_code == 202, r.text
                r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
                tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})
            alice, bob = tokens
            r = await client.post(
                "/v1/chat/completions",
                headers=alice,
                json={"model": "chat-ab", "messages": [{"role": "user", "content": "rate me"}]},
            )
            assert r.status_code == 200, r.text
            request_id = r.headers["x-request-id"]
            arm = _arm(r)
            body: dict[str, Any] = {"request_id": request_id, "score": "up", "comment": "good"}
            assert (await client.post("/v1/feedback", headers=bob, json=body)).status_code == 404
            mine = await client.post("/v1/feedback", headers=alice, json=body)
            assert mine.status_code == 201, mine.text
            assert mine.json()["arm"] == arm and mine.json()["experiment"] == "ab"
            unknown = {"request_id": "nope", "score": 3}
            assert (await client.post("/v1/feedback", headers=alice, json=unknown)).status_code == 404
            admin = await _admin(client)
            assert (
                await client.post("/v1/feedback", headers=admin, json={**body, "score": 4})
            ).status_code == 201
            # Alice changes her mind: her rating is updated, not stacked.
            again = await client.post("/v1/feedback", headers=alice, json={**body, "score": "down"})
            assert (
                again.status_code == 200
                and again.json()["updated"]
                and again.json()["id"] == mine.json()["id"]
            )
            for bad in (float("nan"), float("inf"), 1e308, -5, 0, 6):
                raw = json.dumps({"request_id": request_id, "score": bad})  # NaN/Infinity as JSON literals
                refused = await client.post(
                    "/v1/feedback", headers={**alice, "content-type": "application/json"}, content=raw
                )
                assert refused.status_code == 400, (bad, refused.text)
                assert refused.json()["error"]["param"] == "score"
            assert (await client.get("/admin/experiments/ab", headers=alice)).status_code == 403
            report = (await client.get("/admin/experiments/ab", headers=admin)).json()
            feedback = report["arms"][arm]["feedback"]
            assert feedback["n"] == 2
            assert feedback["thumbs"] == {
                "votes": 1,
                "up": 0,
                "up_rate": 0.0,
                "ci95": [0.0, feedback["thumbs"]["ci95"][1]],
            }
            assert feedback["ratings"]["n"] == 1 and feedback["ratings"]["mean"] == 4.0
    finally:
        process.stop()
