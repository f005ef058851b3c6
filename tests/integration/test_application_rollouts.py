"""Issue #24 item 7, from offline to online: an application's live rollout (a sticky, weighted split
between two prompt versions on two models, and a judged shadow of a candidate version) on a real
uvicorn Prism with Postgres and the fake OpenAI upstream; usage records name the arm and version,
``/quality`` shows live traffic, feedback, shadow judge scores and offline results per version;
promote and rollback are audited; bad rollouts are clear 400s and other users get 404s."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeUpstream, running_fake_openai
from tests.integration.test_prompts_evals import _sql, _user, _wait_run
from tests.support.gateway_proc import GatewayProcess, start_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "rollout-admin@example.com"
ADMIN_PASSWORD = "Rollout-admin-passphrase-7"
V1 = [{"role": "system", "content": "You help {{company}} customers."}]
V2 = [{"role": "system", "content": "You help {{company}} customers, briefly."}]
JUDGE_REPLY = '{"a": 6, "b": 8}'


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with running_fake_openai() as server:
        yield server


@pytest.fixture(scope="module")
def judge() -> Iterator[FakeUpstream]:
    with running_fake_openai(reply=JUDGE_REPLY) as server:
        yield server


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, pg_database: str, fake: FakeUpstream, judge: FakeUpstream
) -> Iterator[GatewayProcess]:
    config = f"""
models:
  small:
    provider: openai
    base_url: {fake.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
    price_input_per_mtok: 1.0
    price_output_per_mtok: 2.0
  large:
    provider: openai
    base_url: {fake.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
    price_input_per_mtok: 5.0
    price_output_per_mtok: 10.0
  judge:
    provider: openai
    base_url: {judge.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
retry: {{max_attempts: 1}}
"""
    process = start_gateway(
        tmp_path_factory.mktemp("rollouts"),
        config=config,
        env={
            "FAKE_KEY": "sk-fake",
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


@pytest.fixture(scope="module")
def admin(gw: GatewayProcess) -> Iterator[httpx.Client]:
    r = httpx.post(gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    key = httpx.post(
        gw.url + "/api/keys", json={"name": "rollouts"}, headers={"Authorization": f"Bearer {token}"}
    ).json()["key"]
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def app(admin: httpx.Client) -> dict[str, Any]:
    prompt = admin.post("/api/prompts", json={"name": "helper", "messages": V1}).json()
    v2 = admin.post(f"/api/prompts/{prompt['id']}/versions", json={"messages": V2}).json()
    other = admin.post("/api/prompts", json={"name": "unrelated", "messages": "Other {{x}}"}).json()
    r = admin.post("/api/applications", json={"name": "helper", "model": "small", "prompt": "helper"})
    assert r.status_code == 201, r.text
    return {
        "app": r.json(),
        "v1": prompt["active_version"]["id"],
        "v2": v2["id"],
        "foreign": other["active_version"]["id"],
    }


def _error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    error: dict[str, Any] = r.json()["error"]
    return error


def test_bad_rollouts_are_400s_and_other_users_404s(
    gw: GatewayProcess, admin: httpx.Client, app: dict[str, Any]
) -> None:
    def arms(*items: tuple[str, Any, float]) -> dict[str, Any]:
        return {"arms": [{"name": n, "prompt_version": v, "weight": w} for n, v, w in items]}

    put = lambda body: admin.put("/api/applications/helper/rollout", json=body)  # noqa: E731
    error = _error(put(arms(("a", "1", 50), ("b", "2", 40))))
    assert error["code"] == "invalid_rollout_weights" and "sum to 90" in error["message"]
    error = _error(put(arms(("a", "1", 50), ("b", "7", 50))))
    assert error["param"] == "arms[1].prompt_version" and "no version '7'" in error["message"]
    error = _error(put(arms(("a", "1", 50), ("b", app["foreign"], 50))))
    assert "belongs to another prompt" in error["message"]
    assert _error(put(arms(("a", "1", 100))))["param"] == "arms"
    assert _error(put(arms(("a", "1", 50), ("a", "2", 50))))["param"] == "arms[1].name"
    bad_model = {"arms": [{"name": "a", "weight": 50}, {"name": "b", "model": "nope", "weight": 50}]}
    assert _error(put(bad_model))["param"] == "arms[1].model"
    assert _error(put({"shadow": {"prompt_version": "2", "sample_rate": 2}}))["param"] == "shadow.sample_rate"
    assert _error(put({"shadow": {"prompt_version": "2", "judge": {"model": "ghost"}}}))["param"] == (
        "shadow.judge.model"
    )
    assert _error(put({}))["param"] == "arms"
    assert admin.get("/api/applications/helper/rollout").json()["rollout"] is None  # nothing half-written
    assert admin.get("/api/applications/helper/rollout/history").json()["data"] == []
    with _user(gw) as other:
        for method, path in (
            ("GET", "/api/applications/helper/rollout"),
            ("PUT", "/api/applications/helper/rollout"),
            ("POST", "/api/applications/helper/rollout/promote"),
            ("POST", "/api/applications/helper/rollout/rollback"),
            ("GET", "/api/applications/helper/rollout/history"),
            ("GET", "/api/applications/helper/quality"),
        ):
            body = {"arm": "a"} if path.endswith("promote") else arms(("a", "1", 50), ("b", "2", 50))
            r = other.request(method, path, json=body if method != "GET" else None)
            assert r.status_code == 404, (method, path, r.text)


def test_split_shadow_judge_quality_promote_rollback(
    gw: GatewayProcess, pg_database: str, admin: httpx.Client, app: dict[str, Any]
) -> None:
    rollout = {
        "sticky": "user",
        "arms": [
            {"name": "control", "prompt_version": "1", "weight": 50},
            {"name": "candidate", "prompt_version": "2", "model": "large", "weight": 50},
        ],
        "shadow": {
            "prompt_version": "2",
            "sample_rate": 1.0,
            "judge": {"model": "judge", "sample_rate": 1.0},
        },
    }
    r = admin.put("/api/applications/helper/rollout", json=rollout)
    assert r.status_code == 200, r.text
    assert [a["prompt_version_id"] for a in r.json()["rollout"]["arms"]] == [app["v1"], app["v2"]]
    assert "principal" not in r.json()["rollout"]
    moved = admin.patch("/api/applications/helper", json={"prompt": "unrelated"})
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "rollout_live"

    arms_by_user: dict[str, set[str]] = {}
    request_ids: list[str] = []
    for i in range(24):
        user = f"end-user-{i}"
        for _ in range(2):
            r = admin.post(
                "/v1/chat/completions",
                json={
                    "model": "app:helper",
                    "messages": [{"role": "user", "content": f"question {i}"}],
                    "user": user,
                    "prompt_variables": {"company": "ACME"},
                },
            )
            assert r.status_code == 200, r.text
            request_ids.append(r.headers["x-request-id"])
            arms_by_user.setdefault(user, set()).add(r.json()["model"])
    assert all(len(models) == 1 for models in arms_by_user.values()), arms_by_user  # sticky per user
    assert {m for models in arms_by_user.values() for m in models} == {"small", "large"}
    control_user = next(user for user, models in arms_by_user.items() if models == {"small"})
    with admin.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "app:helper",
            "messages": [{"role": "user", "content": "streamed question"}],
            "user": control_user,
            "stream": True,
            "prompt_variables": {"company": "ACME"},
        },
    ) as streamed:
        assert streamed.status_code == 200
        events = [line[6:] for line in streamed.iter_lines() if line.startswith("data: {")]
        text = "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or ""
            for e in events
            if json.loads(e)["choices"]
        )
        assert text == "echo: streamed question"
    for request_id in request_ids[:3]:
        assert admin.post("/v1/feedback", json={"request_id": request_id, "score": 4}).status_code == 201

    def rows() -> list[Any] | None:
        found = _sql(
            pg_database,
            "SELECT app_arm, prompt_version_id, model_served, count(*) FROM usage_logs "
            "WHERE application = 'helper' AND traffic IS NULL GROUP BY 1, 2, 3",
        )
        return found if sum(r[3] for r in found) == 49 else None

    found = wait_until(rows, "the split's usage records")
    usage = {(r[0], r[1], r[2]) for r in found}
    control = sum(r[3] for r in found if r[0] == "control")  # the candidate arm already runs v2: no shadow
    assert usage == {("control", app["v1"], "small"), ("candidate", app["v2"], "large")}

    def judged() -> list[Any] | None:
        found = _sql(
            pg_database,
            "SELECT count(*), count(shadow_score) FROM shadow_judgements WHERE alias = 'app:helper'",
        )
        return found if found[0][1] >= control else None

    wait_until(judged, "the shadow judge's scores")
    shadow_usage = _sql(
        pg_database,
        "SELECT count(*) FROM usage_logs WHERE application = 'helper' AND traffic = 'shadow' "
        "AND prompt_version_id = :v AND app_arm = 'shadow'",
        v=app["v2"],
    )
    assert shadow_usage[0][0] == control  # the candidate answered through Prism's own flow

    spec = {
        "variants": [{"application": "helper", "prompt_version": "2", "label": "v2"}],
        "cases": [{"input": f"q{i}", "vars": {"company": "ACME"}} for i in range(4)],
        "assert": [{"type": "contains", "value": "echo"}],
    }
    run = _wait_run(admin, admin.post("/api/evaluations", json=spec).json()["id"])
    assert run["status"] == "completed"

    quality = admin.get("/api/applications/helper/quality").json()
    assert {row["app_arm"] for row in quality["online"]} == {"control", "candidate"}
    versions = {v["prompt_version"]: v for v in quality["versions"]}
    assert versions[1]["live"]["arms"] == ["control"] and versions[2]["live"]["arms"] == ["candidate"]
    assert versions[1]["live"]["requests"] + versions[2]["live"]["requests"] == 49
    assert sum(v["live"]["feedback"]["ratings"] for v in versions.values()) == 3
    judge = versions[2]["shadow_judge"]
    assert (
        judge["judged"] == control
        and judge["shadow_wins"] + judge["live_wins"] + judge["ties"] == judge["judged"]
    )
    # the judge always rates A 6 and B 8; the shadow is shown as A or B by a stable hash per pair
    assert judge["shadow_score_mean"] + judge["live_score_mean"] == pytest.approx(14.0)
    assert judge["shadow_wins"] + judge["live_wins"] == control
    assert versions[2]["offline"][0]["pass_rate"] == 1.0
    assert quality["shadow"][0]["candidate_version_id"] == app["v2"]

    assert admin.post("/api/applications/helper/rollout/promote", json={"arm": "nope"}).status_code == 404
    promoted = admin.post("/api/applications/helper/rollout/promote", json={"arm": "candidate"}).json()
    assert promoted["rollout"] is None
    state = admin.get("/api/applications/helper").json()
    assert (state["model"], state["pinned_version_id"]) == ("large", app["v2"])
    r = admin.post("/api/applications/helper/rollout/rollback")  # undoes the promote: the split is back
    assert r.status_code == 200 and r.json()["rollout"]["arms"][0]["name"] == "control"
    assert admin.post("/api/applications/helper/rollout/rollback").json()["rollout"] is None
    state = admin.get("/api/applications/helper").json()
    assert (state["model"], state["pinned_version_id"]) == ("small", None)
    again = admin.post("/api/applications/helper/rollout/rollback")
    assert again.status_code == 400 and again.json()["error"]["code"] == "nothing_to_roll_back"
    history = admin.get("/api/applications/helper/rollout/history").json()["data"]
    assert [h["action"] for h in history] == ["rollback", "rollback", "promote", "set"]
    assert history[2]["arm"] == "candidate" and history[2]["before"]["model"] == "small"
    assert all(h["actor_id"] for h in history)


def test_a_run_whose_evaluation_job_failed_reads_failed(pg_database: str, admin: httpx.Client) -> None:
    """A run handed to the jobs queue whose job ended failed (time limit, dead letter) is not left
    ``running``: reading it settles it as failed with the job's error."""
    spec = {"variants": [{"label": "v", "messages": "Hi", "model": "small"}], "cases": [{"input": "x"}]}
    run_id = admin.post("/api/evaluations", json=spec, params={}).json()["id"]
    _wait_run(admin, run_id)
    job_id = uuid.uuid4().hex
    error = json.dumps({"message": "the job ran past its time limit of 900s", "type": "timeout"})
    _write(
        pg_database,
        "INSERT INTO jobs (id, type, status, size_bytes, pages, options, progress, tokens, lease_token,"
        " attempts, created_at, updated_at, finished_at, error) VALUES (:j, 'evaluation', 'failed', 0, 0,"
        " '{}', '{}', 0, 0, 3, now(), now(), now(), CAST(:e AS json))",
        "UPDATE eval_runs SET job_id = :j, status = 'running', finished_at = NULL WHERE id = :r",
        j=job_id,
        e=error,
        r=run_id,
    )
    run = admin.get(f"/api/evaluations/{run_id}").json()
    assert run["status"] == "failed" and run["job_id"] == job_id
    assert run["error"] == "the evaluation job failed: the job ran past its time limit of 900s"


def _write(url: str, *statements: str, **params: Any) -> None:
    import asyncio

    from sqlalchemy import text

    from gateway.db.engine import create_engine
    from tests.integration.db_fixtures import db_test_settings

    async def go() -> None:
        engine = create_engine(db_test_settings(url))
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(text(statement), params)
        finally:
            await engine.dispose()

    asyncio.run(go())
