"""`model: "auto"` routes a Korean greeting to the cheap model and a Korean multi-step reasoning
question to the strong one — visible in `x-prism-model` — and `/v1/route/explain` says why."""

from __future__ import annotations

import httpx
import openai

from tests.support.gateway_proc import GatewayProcess

GREETING = "안녕하세요! 오늘 기분 어때요?"
REASONING = (
    "기차 A는 오전 9시에 시속 80km로 출발하고 "
    "기차 B는 10시에 같은 역에서 시속 120km로 같은 방향으로 출발합니다. "
    "B가 A를 따라잡는 시각을 단계별로 풀이하고, "
    "중간에 정차가 15분 있다면 답이 어떻게 바뀌는지도 증명해 주세요."
)


def test_auto_routes_korean_prompts_by_difficulty(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0)
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
