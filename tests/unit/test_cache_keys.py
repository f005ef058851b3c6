"""Cache keys, cacheability, streamed replay, duration format, in-process bounds and degradation."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.cache import (
    CachedEntry,
    EffectiveLimits,
    MemoryResponseStore,
    QuotaLimiter,
    ResponseCache,
    ScopeLimits,
    cache_key,
    cacheable,
    format_duration,
    replay_chunks,
)
from gateway.cache.quota_backends import (
    MemoryQuotaBackend,
    ReserveArgs,
    ReserveResult,
    SettleArgs,
    UsageResult,
)
from gateway.config.quotas import QuotaConfig
from gateway.errors import ServiceUnavailable
from gateway.schemas.openai import ChatCompletionRequest
from gateway.security.principal import Principal

BASE: dict[str, Any] = {
    "model": "alias",
    "messages": [{"role": "user", "content": "What is 2+2?"}],
    "temperature": 0,
    "max_tokens": 50,
}


def key(req: dict[str, Any], **kw: Any) -> str:
    return cache_key(req, route=kw.pop("route", "gpt-4o-mini"), tenant=kw.pop("tenant", "u1"), **kw)


def test_canonicalisation() -> None:
    k = key(BASE)
    reordered = {"max_tokens": 50, "temperature": 0.0, "messages": BASE["messages"], "model": "other-alias"}
    assert key(reordered) == k
    ignored = BASE | {
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "x",
        "metadata": {"a": "b"},
    }
    assert key(ignored) == k
    assert key(BASE | {"top_p": None, "seed": None}) == k
    assert key(ChatCompletionRequest.model_validate(BASE)) == k
    for change in (
        {"temperature": 0.5},
        {"max_tokens": 51},
        {"stop": ["\n"]},
        {"seed": 1},
        {"n": 2},
        {"presence_penalty": 0.1},
        {"logit_bias": {"1": 5}},
        {"response_format": {"type": "json_object"}},
        {"tool_choice": "none"},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"messages": [{"role": "user", "content": "What is 2+3?"}]},
    ):
        assert key(BASE | change) != k, change
    assert key(BASE, route="other-model") != k


def test_tenant_scope() -> None:
    assert key(BASE, tenant="a") != key(BASE, tenant="b")
    assert key(BASE, tenant="a", shared=True) == key(BASE, tenant="b", shared=True)
    assert key(BASE, tenant="a", shared=True) != key(BASE, tenant="a")


def test_cacheable() -> None:
    assert cacheable(BASE)
    unset = {k: v for k, v in BASE.items() if k != "temperature"}
    assert not cacheable(unset)  # OpenAI's default temperature is 1: unset is not deterministic
    assert cacheable(unset | {"seed": 7})
    assert cacheable(BASE | {"temperature": 0.7, "seed": 7})
    hot = BASE | {"temperature": 0.7}
    assert not cacheable(hot)
    assert cacheable(hot, cache_non_deterministic=True)
    assert cacheable(hot, opt_in=True)
    assert cacheable(ChatCompletionRequest.model_validate(BASE))


def _entry(message: dict[str, Any], finish: str = "stop") -> CachedEntry:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    return CachedEntry(
        response={
            "id": "chatcmpl-orig",
            "object": "chat.completion",
            "created": 123,
            "model": "gpt-4o-mini",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        },
        model_served="gpt-4o-mini",
        usage=usage,
    )


def test_replay_content_with_usage() -> None:
    chunks = replay_chunks(
        _entry({"role": "assistant", "content": "Hello world"}),
        include_usage=True,
        request_id="new",
        chunk_chars=5,
    )
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-new" for c in chunks)
    assert all(c["model"] == "gpt-4o-mini" and c["created"] == 123 for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello world"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, None, "stop"]
    assert chunks[-2]["choices"][0]["delta"] == {}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_replay_tool_calls_without_usage() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    msg = {"role": "assistant", "content": None, "tool_calls": [call]}
    chunks = replay_chunks(_entry(msg, "tool_calls"), include_usage=False)
    assert chunks[0]["id"] == "chatcmpl-orig"
    assert all("usage" not in c for c in chunks)
    assert chunks[1]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, **call}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert len(chunks) == 3


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (360, "6m0s"),
        (3723, "1h2m3s"),
        (59.999, "59.999s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


async def test_memory_store_is_bounded() -> None:
    store = MemoryResponseStore(max_entries=3, max_bytes=100)
    for i in range(5):
        await store.set(f"k{i}", b"x" * 10, 60)
    assert len(store) == 3 and await store.get("k0") is None and await store.get("k4") is not None
    await store.get("k2")  # recently used survives
    await store.set("big", b"y" * 80, 60)
    assert store.size_bytes <= 100 and await store.get("big") is not None and await store.get("k3") is None
    await store.set("huge", b"z" * 101, 60)
    assert await store.get("huge") is None


class BrokenStore(MemoryResponseStore):
    distributed = True

    async def get(self, key: str) -> bytes | None:
        raise ConnectionError("down")

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        raise ConnectionError("down")

    async def lookup_or_lock(self, key: str, token: str, ttl_ms: int) -> tuple[bytes | None, bool]:
        raise ConnectionError("down")


async def test_cache_failures_never_fail_a_request() -> None:
    cache = ResponseCache(BrokenStore())
    assert await cache.get("k") is None
    await cache.set("k", CachedEntry(response={}, model_served="m"), 10)
    async with cache.single_flight("k") as flight:
        assert flight
        # the failed lookup counts as the lookup: the pipeline does not ask a slow Redis twice
        assert flight.checked and flight.entry is None


class BrokenQuota(MemoryQuotaBackend):
    async def reserve(self, args: ReserveArgs) -> ReserveResult:
        raise TimeoutError("slow")

    async def settle(self, args: SettleArgs) -> bool:
        raise TimeoutError("slow")

    async def usage(self, prefix: str, day_id: str, month_id: str) -> UsageResult:
        raise TimeoutError("slow")


async def test_quota_fail_modes() -> None:
    limits = EffectiveLimits((ScopeLimits("key:k", rpm=1),))
    p = Principal(user_id="u", api_key_id="k")
    ticket = await QuotaLimiter(BrokenQuota(), QuotaConfig(fail_mode="open")).check_and_reserve(
        request_id="r", principal=p, estimated_tokens=1, estimated_cost_usd=0, limits=limits
    )
    assert ticket.degraded
    closed = QuotaLimiter(BrokenQuota(), QuotaConfig(fail_mode="closed"))
    with pytest.raises(ServiceUnavailable):
        await closed.check_and_reserve(
            request_id="r", principal=p, estimated_tokens=1, estimated_cost_usd=0, limits=limits
        )
    await closed.settle(ticket, actual_tokens=1, actual_cost_usd=0)  # never raises
    with pytest.raises(ServiceUnavailable):
        await closed.usage(principal_scope="key:k")


async def test_pipeline_cache_adapter() -> None:
    from gateway.cache.service import PipelineCache
    from gateway.config.routing import RoutingConfig

    config = RoutingConfig.model_validate(
        {"models": {"private": {"provider": "mock"}, "public": {"provider": "mock", "shared_cache": True}}}
    )
    adapter = PipelineCache(ResponseCache(MemoryResponseStore()), lambda: config)
    req = {"messages": BASE["messages"], "temperature": 0}
    assert adapter.key_for(tenant="a", model="private", request=req) != adapter.key_for(
        tenant="b", model="private", request=req
    )
    shared = adapter.key_for(tenant="a", model="public", request=req)
    assert shared is not None and shared == adapter.key_for(tenant="b", model="public", request=req)
    assert adapter.key_for(tenant="a", model="private", request=req | {"temperature": 1}) is None
    assert await adapter.lookup(key=shared) is None
    await adapter.store(key=shared, response={"id": "x", "choices": [], "usage": None}, model_served="public")
    assert await adapter.lookup(key=shared) == {"id": "x", "choices": [], "usage": None}
