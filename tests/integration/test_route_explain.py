"""`model: "auto"` routes a Korean greeting to the cheap model and a Korean multi-step reasoning
question to the strong one — visible in `x-prism-model` — and `/v1/route/explain` says why."""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway_proc import GatewayProcess, running_gateway

pytestmark = pytest.mark.integration

GREETING = "안녕하세요! 오늘 기분 어때요?"
REASONING = (
    "기차 A는 오전 9시에 시속 80km로 출발하고 "
    "기차 B는 10시에 같은 역에서 시속 120km로 같은 방향으로 출발합니다. "
    "B가 A를 따라잡는 시각을 단계별로 풀이하고, "
    "중간에 정차가 15분 있다면 답이 어떻게 바뀌는지도 증명해 주세요."
)


def test_auto_routes_korean_prompts_by_difficulty(gateway: GatewayProcess) -> None:
    with openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0) as client:
        cheap = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": GREETING}]
        )
        strong = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": REASONING}]
        )
    assert cheap.headers["x-prism-model"] == "mock-fast"
    assert (
        "intent=small_talk" in cheap.headers["x-prism-route"]
        and "tier=cheap" in cheap.headers["x-prism-route"]
    )
    assert strong.headers["x-prism-model"] == "mock-smart"
    assert "tier=strong" in strong.headers["x-prism-route"]


def _provider_calls(gateway: GatewayProcess) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prism_provider_requests_total{")
    )


def test_route_explain_calls_no_model(gateway: GatewayProcess) -> None:
    before = _provider_calls(gateway)
    body = {"model": "auto", "messages": [{"role": "user", "content": REASONING}]}
    explained = httpx.post(f"{gateway.openai_base_url}/route/explain", json=body)
    assert explained.status_code == 200
    decision = explained.json()
    assert decision["tier"] == "strong" and decision["model"] == "mock-smart"
    assert decision["intent"]["label"] == "reasoning" and 0 <= decision["intent"]["confidence"] <= 1
    assert "tier=strong" in decision["route"]
    unknown = httpx.post(
        f"{gateway.openai_base_url}/route/explain",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert _provider_calls(gateway) == before


# ------------------------------------------------------------------ per-key policy, stickiness, usage
ADMIN = ("route-admin@example.com", "An-admin-passphrase-42")
PASSWORD = "violet-harbour-kettle-91"
POLICY_CONFIG = """
models:
  mock-fast: {provider: mock, tier: cheap, price_input_per_mtok: 0.15, context_window: 16384}
  mock-smart: {provider: mock, tier: strong, price_input_per_mtok: 2.5, context_window: 128000}
aliases:
  auto: {smart: true}
fallbacks:
  mock-fast: [mock-smart]
routing:
  tiers: [cheap, strong]
  low_confidence: 0.45
  sticky_upgrade_s: 60
cache: {enabled: false}  # the response cache answers before routing; here every request must be routed
"""


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(http: httpx.Client, email: str, password: str) -> str:
    token: str = http.post("/auth/login", json={"email": email, "password": password}).json()["access_token"]
    return token


def test_key_policy_caps_auto_and_conversations_stick_upward(tmp_path: Path) -> None:
    env = {
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_ADMIN_EMAIL": ADMIN[0],
        "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
        "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEWAY_REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "GATEWAY_REDIS_TIMEOUT_MS": "3000",
    }
    with (
        running_gateway(tmp_path, config=POLICY_CONFIG, env=env) as gateway,
        httpx.Client(base_url=gateway.url) as http,
        contextlib.ExitStack() as clients,
    ):
        email = f"route-{uuid.uuid4().hex[:8]}@example.com"
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 202
        user = _bearer(_login(http, email, PASSWORD))
        admin = _bearer(_login(http, *ADMIN))
        user_id = http.get("/users/me", headers=user).json()["id"]

        capped_key = http.post("/api/keys", json={"name": "agent", "max_route_tier": "cheap"}, headers=user)
        assert capped_key.status_code == 201 and capped_key.json()["max_route_tier"] == "cheap"
        free_key = http.post("/api/keys", json={"name": "free"}, headers=user).json()
        sdk, free = (
            clients.enter_context(openai.OpenAI(base_url=gateway.openai_base_url, api_key=key, max_retries=0))
            for key in (capped_key.json()["key"], free_key["key"])
        )

        def ask(client: openai.OpenAI, prompt: str, conversation: str | None = None) -> tuple[str, str]:
            headers = {"X-Prism-Conversation-Id": conversation} if conversation else {}
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}], extra_headers=headers
            )
            return raw.headers["x-prism-model"], raw.headers["x-prism-route"]

        # the capped key: a strong prompt stays cheap, and the route header says it was capped
        model, route = ask(sdk, REASONING)
        assert model == "mock-fast" and "tier=cheap" in route and "capped_from=strong" in route
        assert "model=mock-fast" in route and "intent=reasoning" in route
        # the owner lifts the cap (effective at once), the admin caps the whole user
        key_id = capped_key.json()["id"]
        lifted = http.patch(f"/api/keys/{key_id}", json={"max_route_tier": None}, headers=user)
        assert lifted.status_code == 200 and lifted.json()["max_route_tier"] is None
        assert ask(sdk, REASONING)[0] == "mock-smart"
        bad = http.patch(f"/api/keys/{key_id}", json={"max_route_tier": "x y"}, headers=user)
        assert bad.status_code == 400
        assert http.patch("/api/keys/nope", json={"max_route_tier": None}, headers=user).status_code == 404
        scope = f"/admin/routing-policy/user:{user_id}"
        assert http.put(scope, json={"max_route_tier": "cheap"}, headers=user).status_code == 403
        put = http.put(scope, json={"max_route_tier": "cheap"}, headers=admin)
        assert put.status_code == 200
        assert put.json() == {"scope": f"user:{user_id}", "max_route_tier": "cheap"}
        assert http.get(scope, headers=admin).json()["max_route_tier"] == "cheap"
        assert http.get(f"/admin/routing-policy/key:{key_id}", headers=admin).json()["max_route_tier"] is None
        assert http.get("/admin/routing-policy/bogus", headers=admin).status_code == 400
        assert http.get("/admin/routing-policy/key:nope", headers=admin).status_code == 404
        model, route = ask(free, REASONING)
        assert model == "mock-fast" and "capped_from=strong" in route
        assert http.put(scope, json={"max_route_tier": None}, headers=admin).status_code == 200

        # stickiness: once conversation c1 needed the strong tier, a greeting in it stays strong (the
        # conversation store also merges c1's history into these requests; tenants are kept apart by
        # the store itself and by the stickiness key, see tests/unit/test_smart_routing.py)
        c1, c2 = f"c1-{uuid.uuid4().hex[:6]}", f"c2-{uuid.uuid4().hex[:6]}"
        assert ask(free, GREETING, c1)[0] == "mock-fast"  # cheap before anything hard happened
        assert ask(free, REASONING, c1)[0] == "mock-smart"
        model, route = ask(free, GREETING, c1)
        assert model == "mock-smart" and "tier=strong" in route and "sticky_from=cheap" in route
        assert ask(free, GREETING, c2)[0] == "mock-fast"  # another conversation is not affected
        assert ask(free, GREETING)[0] == "mock-fast"  # nor a request without one
        body = {
            "model": "auto",
            "messages": [{"role": "user", "content": GREETING}],
            "metadata": {"conversation_id": c1},
        }
        meta = http.post("/v1/chat/completions", json=body, headers=_bearer(free_key["key"]))
        assert meta.headers["x-prism-model"] == "mock-smart"  # metadata.conversation_id works too
        # usage records carry intent and routing tier; /admin/usage groups by them
        report: dict[str, Any] = {}
        for _ in range(150):  # records are written in batches off the request path
            report = http.get(
                f"/admin/usage?group_by=routing_tier,intent&user_id={user_id}", headers=admin
            ).json()
            if sum(row["requests"] for row in report.get("data", [])) >= 9:
                break
            time.sleep(0.1)
        by_tier: dict[str, int] = {}
        for row in report["data"]:
            by_tier[row["routing_tier"]] = by_tier.get(row["routing_tier"], 0) + row["requests"]
        assert by_tier == {"cheap": 5, "strong": 4}, report
        metrics_text = http.get("/metrics").text
        assert 'prism_route_sticky_lookups_total{result="hit"}' in metrics_text
        assert 'prism_route_capped_total{from_tier="strong",to_tier="cheap"}' in metrics_text


# ------------------------------------------------------------------------------------- escalation
ESCALATION_CONFIG = """
models:
  mock-fast: {provider: mock, tier: cheap, price_input_per_mtok: 0.15}
  mock-label: {provider: mock, tier: cheap, price_input_per_mtok: 1.0, mock: {latency_ms: %(latency)d}}
  mock-smart: {provider: mock, tier: strong, price_input_per_mtok: 2.5}
aliases:
  auto: {smart: true}
routing:
  tiers: [cheap, strong]
  escalation: {enabled: true, model: mock-label, below_confidence: 1.0, timeout_ms: 150}
cache: {enabled: false}
"""


def _escalations(gateway: GatewayProcess, outcome: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(f'prism_intent_escalations_total{{outcome="{outcome}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_low_confidence_escalates_to_a_small_model_within_its_budget(tmp_path: Path) -> None:
    with (
        running_gateway(tmp_path, config=ESCALATION_CONFIG % {"latency": 0}) as gateway,
        openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0) as client,
    ):

        def ask(prompt: str) -> tuple[str, str]:
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}]
            )
            return raw.headers["x-prism-model"], raw.headers["x-prism-route"]

        # the mock labeller echoes the prompt, so a prompt naming one label is a clear answer
        model, route = ask("reasoning, complex: is 91 prime")
        assert "escalation=used" in route and "intent=reasoning" in route and "confidence=0.90" in route
        assert model == "mock-smart"
        # an answer naming no label is unparseable: the fast label stands
        model, route = ask(GREETING)
        assert "escalation=error" in route and "intent=small_talk" in route and model == "mock-fast"
        assert _escalations(gateway, "used") == 1 and _escalations(gateway, "error") == 1
        assert '"intent_escalation": "used"' in gateway.log() or '"intent_escalation":"used"' in gateway.log()
        # explain runs the same decide steps, escalation included (it asks the labeller, no answer model)
        explained = httpx.post(
            f"{gateway.openai_base_url}/route/explain",
            json={"model": "auto", "messages": [{"role": "user", "content": GREETING}]},
        ).json()
        assert "escalation=error" in explained["route"] and explained["model"] == "mock-fast"
        assert _escalations(gateway, "error") == 2

        gateway.reload_config(ESCALATION_CONFIG % {"latency": 2000})
        started = time.perf_counter()
        model, route = ask("reasoning, complex: is 91 prime")
        assert time.perf_counter() - started < 1.5  # the 150 ms budget, not the labeller's 2 s
        assert "escalation=timeout" in route and _escalations(gateway, "timeout") == 1


# ------------------------------------------------------------------ one routing path: explain == served
SAME_PATH_CONFIG = """
models:
  mock-fast: {provider: mock, tier: cheap, price_input_per_mtok: 0.15}
  mock-label: {provider: mock, tier: cheap, price_input_per_mtok: 1.0}
  mock-smart: {provider: mock, tier: strong, price_input_per_mtok: 2.5}
  mock-mid: {provider: mock, tier: cheap, price_input_per_mtok: 0.5}
aliases:
  auto: {smart: true}
  chat: {target: mock-mid}
  split: {split: {mock-fast: 50, mock-mid: 50}, sticky: user}
experiments:
  ab:
    alias: chat-ab
    control: a
    sticky: user
    arms:
      a: {model: mock-fast, weight: 50}
      b: {model: mock-smart, weight: 50}
routing:
  tiers: [cheap, strong]
  sticky_upgrade_s: 60
  escalation: {enabled: true, model: mock-label, below_confidence: 0.5, timeout_ms: 500}
cache: {enabled: false}
"""


def test_explain_matches_the_served_route(tmp_path: Path) -> None:
    """Over a mixed set — ``auto`` with easy and hard prompts (escalation on for unsure ones), a
    conversation whose tier sticks upward, an alias, a sticky split and an A/B experiment keyed by
    user — ``/v1/route/explain`` names the route and model the request is then served with."""
    conversation = f"c-{uuid.uuid4().hex[:6]}"
    requests: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"model": "auto", "messages": [{"role": "user", "content": GREETING}]}, {}),
        ({"model": "auto", "messages": [{"role": "user", "content": REASONING}]}, {}),
        ({"model": "auto", "messages": [{"role": "user", "content": "reasoning, complex: is 91 prime"}]}, {}),
        ({"model": "auto", "messages": [{"role": "user", "content": "hmm"}]}, {}),
        ({"model": "chat", "messages": [{"role": "user", "content": "hello"}]}, {}),
        ({"model": "mock-smart", "messages": [{"role": "user", "content": "hello"}]}, {}),
    ]
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        for model in ("split", "chat-ab"):
            requests.append(
                ({"model": model, "user": user, "messages": [{"role": "user", "content": "x"}]}, {})
            )
    sticky = {"X-Prism-Conversation-Id": conversation}
    requests += [  # the conversation needs the strong tier once, then a greeting stays strong
        ({"model": "auto", "messages": [{"role": "user", "content": REASONING}]}, sticky),
        ({"model": "auto", "messages": [{"role": "user", "content": GREETING}]}, sticky),
    ]
    with running_gateway(tmp_path, config=SAME_PATH_CONFIG) as gateway, httpx.Client(timeout=30) as http:
        served_models: set[str] = set()
        for body, headers in requests:
            explained = http.post(f"{gateway.openai_base_url}/route/explain", json=body, headers=headers)
            assert explained.status_code == 200, explained.text
            served = http.post(f"{gateway.openai_base_url}/chat/completions", json=body, headers=headers)
            assert served.status_code == 200, served.text
            decision = explained.json()
            assert decision["model"] == served.headers["x-prism-model"], (body, decision)
            assert decision["route"] == served.headers["x-prism-route"], (body, decision)
            served_models.add(served.headers["x-prism-model"])
        last = http.post(
            f"{gateway.openai_base_url}/route/explain", json=requests[-1][0], headers=sticky
        ).json()
        assert "sticky_from=cheap" in last["route"] and last["model"] == "mock-smart"
        assert served_models >= {"mock-fast", "mock-smart", "mock-mid"}
