"""The prompt engineer's scenario of issue #24, against a real uvicorn Prism with Postgres and the
fake OpenAI upstream (two chat models that echo, a judge model that answers a fixed verdict) and
the built-in embeddings: two prompt versions, an application called with ``model: "app:<name>"``
through the official SDK, a 50-case dataset imported from CSV, a run comparing both versions on two
models with mixed assertions, a significance verdict, a CI gate failing on a seeded regression,
a promptfoo config imported and run; and the bad inputs (template injection, a 100 MB CSV, 100,000
cases, a run over budget) refused with nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import text

from gateway.db.engine import create_engine
from tests.fakes import FakeUpstream, running_fake_openai
from tests.integration.db_fixtures import db_test_settings
from tests.support.gateway_proc import ROOT, GatewayProcess, start_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "prompt-admin@example.com"
ADMIN_PASSWORD = "Prompt-admin-passphrase-7"
V1 = [
    {"role": "system", "content": "You repeat words."},
    {"role": "user", "content": "Repeat the word {{word}} please"},
]
V2 = [  # the seeded regression: the word is gone from the prompt
    {"role": "system", "content": "You repeat words."},
    {"role": "user", "content": "Repeat the word please"},
]
JUDGE_REPLY = '{"pass": true, "score": 0.9, "reason": "it repeats the word"}'


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with running_fake_openai() as server:
        yield server


@pytest.fixture(scope="module")
def judge() -> Iterator[FakeUpstream]:
    with running_fake_openai(reply=JUDGE_REPLY) as server:
        yield server


def gateway_config(fake: FakeUpstream, judge: FakeUpstream) -> str:
    return f"""
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
embeddings:
  prism-embed:
    provider: local
    model: use-multilingual-v3
experiments:
  repeat-ab:
    alias: chat
    control: a
    sticky: request
    arms:
      a: {{model: small, weight: 50}}
      b: {{model: large, weight: 50}}
retry: {{max_attempts: 1}}
"""


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, pg_database: str, fake: FakeUpstream, judge: FakeUpstream
) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path_factory.mktemp("evals"),
        config=gateway_config(fake, judge),
        env={
            "FAKE_KEY": "sk-fake",
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_DATABASE_URL": pg_database,
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_API_KEY_CACHE_TTL_S": "0",
            "GATEWAY_USAGE_FLUSH_INTERVAL_S": "0.05",
            "GATEWAY_EVAL_ASSERTIONS_MODULE": "tests.support.eval_assertions",
            "GATEWAY_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        },
        ready_timeout=120,  # the built-in embedding model loads too; a loaded machine is slow to start
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(gw: GatewayProcess) -> Iterator[httpx.Client]:
    r = httpx.post(gw.url + "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    key = httpx.post(
        gw.url + "/api/keys", json={"name": "evals"}, headers={"Authorization": f"Bearer {token}"}
    ).json()["key"]
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=120.0) as client:
        yield client


def _user(gw: GatewayProcess) -> httpx.Client:
    email, password = f"pe-{uuid.uuid4().hex[:8]}@example.com", "another-users-passphrase-5"
    assert (
        httpx.post(gw.url + "/auth/register", json={"email": email, "password": password}).status_code < 300
    )
    token = httpx.post(gw.url + "/auth/login", json={"email": email, "password": password}).json()[
        "access_token"
    ]
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)


def _sql(url: str, query: str, **params: Any) -> list[Any]:
    import asyncio

    async def go() -> list[Any]:
        engine = create_engine(db_test_settings(url))
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(query), params)).all())
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _wait_run(client: httpx.Client, run_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = client.get(f"/api/evaluations/{run_id}").json()
        return run if run["status"] not in ("queued", "running") else None

    return wait_until(finished, f"run {run_id} finished", within_s=180)


def _csv(rows: int) -> bytes:
    lines = ["word,expected,tags,verified"]
    lines += [
        f"word{i},word{i},{'golden' if i % 2 else 'smoke'},{'true' if i < 10 else 'false'}"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_prompt_versions_activation_diff_and_sandbox(admin: httpx.Client) -> None:
    r = admin.post("/api/prompts", json={"name": "repeat", "messages": V1, "note": "first"})
    assert r.status_code == 201, r.text
    prompt = r.json()
    assert prompt["active_version"]["version"] == 1
    assert prompt["active_version"]["variables"] == ["word"]
    r = admin.post(f"/api/prompts/{prompt['id']}/versions", json={"messages": V2, "note": "shorter"})
    assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["active"] is False
    diff = admin.get("/api/prompts/repeat/diff", params={"from": "1", "to": "2"}).json()
    assert "-Repeat the word {{word}} please" in diff["diff"] and diff["variables_removed"] == ["word"]
    assert (
        admin.post("/api/prompts/repeat/versions/2/activate").json()["prompt"]["active_version"]["version"]
        == 2
    )
    rolled = admin.post("/api/prompts/repeat/rollback").json()
    assert rolled["prompt"]["active_version"]["version"] == 1
    audit = admin.get("/api/prompts/repeat/activations").json()["data"]
    assert len(audit) == 3 and audit[0]["previous_version_id"] == audit[1]["version_id"]
    versions = admin.get("/api/prompts/repeat/versions").json()["data"]
    assert [v["active"] for v in versions] == [True, False]  # exactly one active
    for bad in (
        "{{ word.__class__ }}",
        "{% for x in y %}{% endfor %}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ word | upper }}",
        "{{ 7*7 }}",
    ):
        r = admin.post("/api/prompts/repeat/versions", json={"messages": bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_template"
    assert len(admin.get("/api/prompts/repeat/versions").json()["data"]) == 2  # nothing written


def test_application_through_the_openai_sdk(
    gw: GatewayProcess, admin: httpx.Client, fake: FakeUpstream, pg_database: str
) -> None:
    r = admin.post(
        "/api/applications",
        json={"name": "repeater", "model": "small", "prompt": "repeat", "options": {"temperature": 0.2}},
    )
    assert r.status_code == 201, r.text
    key = admin.headers["Authorization"].removeprefix("Bearer ")
    client = openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0)
    fake.reset()
    answer = client.chat.completions.create(
        model="app:repeater",
        messages=[{"role": "user", "content": "and {{ secret }} too"}],
        extra_body={"prompt_variables": {"word": "kiwi"}},
    )
    assert answer.choices[0].message.content == "echo: and {{ secret }} too"  # a value is never rendered
    sent = fake.last_request
    assert sent is not None
    body = sent.body
    assert [m["content"] for m in body["messages"]] == [
        "You repeat words.",
        "Repeat the word kiwi please",
        "and {{ secret }} too",
    ]
    assert body["model"] == "small" and body["temperature"] == 0.2 and "prompt_variables" not in body
    stream = client.chat.completions.create(
        model="app:repeater",
        messages=[{"role": "user", "content": "streamed"}],
        extra_body={"prompt_variables": {"word": "fig"}},
        stream=True,
    )
    assert (
        "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "echo: streamed"
    )
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(model="app:repeater", messages=[{"role": "user", "content": "x"}])
    assert "word" in str(missing.value) and missing.value.code == "missing_prompt_variables"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="app:nope", messages=[{"role": "user", "content": "x"}])
    run = admin.post("/v1/apps/repeater/run", json={"variables": {"word": "plum"}})
    assert run.status_code == 200, run.text
    assert run.json()["choices"][0]["message"]["content"] == "echo: Repeat the word plum please"
    assert run.headers["x-prism-prompt-version"] == "1"
    version_id = admin.get("/api/prompts/repeat").json()["active_version"]["id"]

    def logged() -> list[Any] | None:
        rows = _sql(
            pg_database,
            "SELECT application, prompt_version_id, traffic FROM usage_logs WHERE application = 'repeater'",
        )
        return rows if len(rows) >= 3 else None

    assert {tuple(row) for row in wait_until(logged, "usage rows of the application")} == {
        ("repeater", version_id, None)
    }
    with _user(gw) as other:  # object-level checks: another user sees none of it
        assert other.get("/api/applications/repeater").status_code == 404
        assert other.get("/api/prompts/repeat").status_code == 404
        assert other.post("/api/prompts/repeat/versions/2/activate").status_code == 404
        assert other.post("/v1/apps/repeater/run", json={"variables": {"word": "x"}}).status_code == 404
        assert other.get("/api/prompts").json()["data"] == []


def test_dataset_import_export_and_limits(admin: httpx.Client) -> None:
    r = admin.post("/api/datasets", json={"name": "words", "kind": "golden", "tags": ["smoke"]})
    assert r.status_code == 201, r.text
    r = admin.post(
        "/api/datasets/words/import",
        params={"format": "csv"},
        content=_csv(50),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["cases"] == 50 and r.json()["version"] == 2
    cases = admin.get("/api/datasets/words/cases").json()["data"]
    assert sum(c["verified"] for c in cases) == 10 and cases[0]["vars"] == {"word": "word0"}
    exported = admin.get("/api/datasets/words/export", params={"format": "jsonl"}).text.splitlines()
    assert len(exported) == 50 and json.loads(exported[3])["expected"] == "word3"
    assert admin.get("/api/datasets/words/cases", params={"version": 1}).json()["data"] == []
    huge = b"word\n" + b"x" * (100 * 1024 * 1024)
    r = admin.post("/api/datasets/words/import", params={"format": "csv"}, content=huge)
    assert r.status_code == 413, r.text[:300]
    r = admin.post("/api/datasets/words/import", params={"format": "csv"}, content=_csv(100_000))
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_cases", r.text[:300]
    r = admin.post("/api/datasets/words/import", params={"format": "json"}, content=b'[{"vars": 3}]')
    assert r.status_code == 400 and r.json()["error"]["param"] == "cases[0].vars"
    after = admin.get("/api/datasets/words").json()
    assert after["version"] == 2 and after["cases"] == 50  # nothing half-written


def _spec(**extra: Any) -> dict[str, Any]:
    return {
        "name": "v1 vs v2",
        "dataset": "words",
        "variants": [
            {"label": "v1-small", "application": "repeater", "prompt_version": "1", "model": "small"},
            {"label": "v1-large", "application": "repeater", "prompt_version": "1", "model": "large"},
            {"label": "v2-small", "application": "repeater", "prompt_version": "2", "model": "small"},
            {"label": "v2-large", "application": "repeater", "prompt_version": "2", "model": "large"},
        ],
        "assert": [
            {"type": "contains", "value": "{{word}}"},
            {"type": "regex", "value": "^echo: Repeat"},
            {"type": "not-contains", "value": ["ERROR", "forbidden"]},
            {"type": "similar", "value": "Repeat the word {{word}} please", "threshold": 0.5},
            {"type": "llm-rubric", "value": "The answer repeats the word"},
            {"type": "latency", "threshold": 30000},
            {"type": "cost", "threshold": 0.01},
            {"type": "python", "value": "echoes_word"},
        ],
        "judge_model": "judge",
        "embedding_model": "prism-embed",
        "baseline": "v1-small",
        "concurrency": 4,
        **extra,
    }


def test_run_compares_versions_and_models(admin: httpx.Client, pg_database: str) -> None:
    r = admin.post("/api/evaluations", json=_spec())
    assert r.status_code == 202, r.text
    run = _wait_run(admin, r.json()["id"])
    assert run["status"] == "completed" and run["progress"] == {"done": 200, "total": 200}
    assert run["dataset_version"] == 2
    report = admin.get(f"/api/evaluations/{run['id']}/report").json()
    v1, v2 = report["variants"]["v1-small"], report["variants"]["v2-small"]
    assert v1["pass_rate"] == 1.0 and v1["pass_rate_ci95"][0] > 0.9
    assert v2["pass_rate"] == 0.0 and report["variants"]["v2-large"]["pass_rate"] == 0.0
    assert report["variants"]["v1-large"]["cost_usd"] > v1["cost_usd"] > 0
    worse = report["comparisons"]["v2-small"]
    assert worse["verdict"] == "worse" and worse["mcnemar"]["p_value"] < 0.001
    assert worse["score_paired_t"]["p_value"] < 0.001 and len(worse["changed_cases"]) == 50
    assert report["comparisons"]["v1-large"]["verdict"] == "no significant difference"
    results = admin.get(f"/api/evaluations/{run['id']}/results").json()["data"]
    failed = next(r for r in results if r["variant"] == "v2-small")
    verdicts = {a["type"]: a["pass"] for a in failed["assertions"]}
    assert verdicts["contains"] is False and verdicts["regex"] is True and verdicts["python"] is False
    passed = next(r for r in results if r["variant"] == "v1-small")
    assert all(a["pass"] for a in passed["assertions"]), passed

    def tagged() -> list[Any] | None:
        rows = _sql(
            pg_database,
            "SELECT count(*) FROM usage_logs WHERE traffic = 'evaluation' AND application = 'repeater'",
        )
        return rows if rows[0][0] >= 200 else None

    assert wait_until(tagged, "evaluation usage rows")[0][0] == 200


def _cli(gw: GatewayProcess, admin: httpx.Client, spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    key = admin.headers["Authorization"].removeprefix("Bearer ")
    return subprocess.run(
        [sys.executable, "-m", "gateway", "eval", "run", "--url", gw.url, "--spec", str(spec), *args],
        cwd=ROOT,
        env={"PRISM_API_KEY": key, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ci_gate_fails_on_the_seeded_regression(
    gw: GatewayProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    spec = _spec()
    spec["variants"] = [spec["variants"][0], spec["variants"][2]]
    spec["assert"] = spec["assert"][:3]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(spec))
    ok = _cli(gw, admin, path, "--variant", "v1-small", "--fail-below", "0.9")
    assert ok.returncode == 0, ok.stderr
    bad = _cli(gw, admin, path, "--variant", "v2-small", "--fail-below", "0.9")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "pass rate 0.000 is below 0.9" in bad.stderr and "significantly worse" in bad.stderr


def test_run_over_budget_stops_with_a_clear_status(admin: httpx.Client) -> None:
    spec = _spec(max_cost_usd=0.0, concurrency=1)
    spec["assert"] = spec["assert"][:2]
    run = _wait_run(admin, admin.post("/api/evaluations", json=spec).json()["id"])
    assert run["status"] == "budget_exceeded" and run["progress"]["done"] == 0
    assert "spend cap" in run["error"]


def test_run_bad_input(admin: httpx.Client) -> None:
    cases = [
        ({"variants": []}, "variants"),
        ({"dataset": "words", "variants": [{"model": "small"}]}, "variants[0]"),
        ({"dataset": "words", "variants": [{"messages": "hi", "model": "nope"}]}, "model"),
        (
            {
                "dataset": "words",
                "variants": [{"messages": "hi", "model": "small"}],
                "assert": [{"type": "regex", "value": "("}],
            },
            "assert[0].value",
        ),
        (
            {
                "dataset": "words",
                "variants": [{"messages": "hi", "model": "small"}],
                "assert": [{"type": "python", "value": "os.system"}],
            },
            "assert[0].value",
        ),
        (
            {
                "dataset": "words",
                "variants": [{"messages": "hi", "model": "small"}],
                "assert": [{"type": "javascript", "value": "1"}],
            },
            "assert[0].type",
        ),
        (
            {"dataset": "words", "variants": [{"messages": "hi", "model": "small"}], "max_cost_usd": -1},
            "max_cost_usd",
        ),
    ]
    for body, param in cases:
        r = admin.post("/api/evaluations", json=body)
        assert r.status_code in (400, 404), (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)


def test_bad_input_on_the_registry_is_a_clear_4xx(admin: httpx.Client) -> None:
    for method, path, body in (
        ("POST", "/api/prompts", {"name": "nul", "description": "a\u0000b"}),
        ("POST", "/api/prompts", {"name": "../etc"}),
        ("POST", "/api/prompts", {"name": "deep", "messages": [{"role": "user", "content": [[[[]]]]}]}),
        ("GET", "/api/prompts/repeat/versions/99999999999999999999", None),
        ("GET", "/api/prompts/a%00b", None),
        ("GET", "/api/prompts/repeat/diff?from=1&to=%00", None),
        ("GET", "/api/datasets/words/cases?version=99999999999", None),
        ("PATCH", "/api/datasets/words/cases/%00", {"expected": "x"}),
        ("GET", "/api/evaluations/" + "x" * 300, None),
        (
            "POST",
            "/api/applications",
            {"name": "a", "model": "small", "prompt": "repeat", "options": {"bogus": 1}},
        ),
        ("POST", "/api/applications", {"name": "b", "model": "nope", "prompt": "repeat"}),
        ("POST", "/v1/apps/repeater/run", {"variables": {"word": "x"}, "messages": [{"role": "wizard"}]}),
        ("POST", "/api/datasets/words/import?format=xml", None),
    ):
        r = admin.request(method, path, json=body)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:300])
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text


PROMPTFOO = """
description: repeat words
prompts:
  - "Repeat the word {{word}} please"
  - label: terse
    raw: "Repeat"
providers:
  - openai:chat:small
  - id: openai:large
    config: {temperature: 0}
defaultTest:
  assert:
    - type: icontains
      value: "{{word}}"
tests:
  - vars: {word: apple}
    assert:
      - type: regex
        value: "^echo"
  - vars: {word: pear}
    description: second
"""


def test_promptfoo_config_imported_and_run(admin: httpx.Client) -> None:
    r = admin.post("/api/evaluations/promptfoo", content=PROMPTFOO.encode())
    assert r.status_code == 202, r.text
    run = _wait_run(admin, r.json()["id"])
    assert run["status"] == "completed" and run["progress"]["total"] == 8
    report = admin.get(f"/api/evaluations/{run['id']}/report").json()
    rates = {name: v["pass_rate"] for name, v in report["variants"].items()}
    assert rates == {"p1:small": 1.0, "p1:large": 1.0, "terse:small": 0.0, "terse:large": 0.0}
    for bad, param in (
        ("prompts: [file://x.txt]\nproviders: [small]\ntests: [{vars: {}}]", "prompts[0]"),
        ("prompts: [x]\nproviders: [anthropic:claude]\ntests: [{vars: {}}]", "providers[0]"),
        (
            "prompts: [x]\nproviders: [small]\ntests: [{assert: [{type: javascript, value: '1'}]}]",
            "tests[0].assert[0]",
        ),
        ("prompts: [x\n", "file"),
    ):
        r = admin.post("/api/evaluations/promptfoo", content=bad.encode())
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


PROMPTFOO_VERSION = "0.121.20"


def _promptfoo_bin() -> Path:
    """The real promptfoo CLI from npm, installed once into the git-ignored ``var/promptfoo``."""
    prefix = ROOT / "var" / "promptfoo"
    binary = prefix / "node_modules" / ".bin" / "promptfoo"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the promptfoo CLI cannot be installed")
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            f"promptfoo@{PROMPTFOO_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode != 0 or not binary.exists():
        pytest.skip(f"npm install promptfoo failed: {done.stderr[-500:]}")
    return binary


def test_the_real_promptfoo_cli_against_prism(
    gw: GatewayProcess, admin: httpx.Client, tmp_path: Path, pg_database: str
) -> None:
    binary = _promptfoo_bin()
    key = admin.headers["Authorization"].removeprefix("Bearer ")
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(f"""
description: Prism as an OpenAI provider
prompts:
  - "Repeat the word {{{{word}}}} please"
providers:
  - id: openai:chat:small
    config:
      apiBaseUrl: {gw.openai_base_url}
      apiKey: {key}
  - id: openai:chat:large
    config:
      apiBaseUrl: {gw.openai_base_url}
      apiKey: {key}
tests:
  - vars: {{word: apple}}
    assert:
      - type: contains
        value: apple
  - vars: {{word: pear}}
    assert:
      - type: icontains
        value: PEAR
      - type: not-contains
        value: banana
""")
    out = tmp_path / "out.json"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PROMPTFOO_CONFIG_DIR": str(home / ".promptfoo"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "NO_PROXY": "127.0.0.1",
    }
    done = subprocess.run(
        [
            str(binary),
            "eval",
            "-c",
            str(config),
            "-o",
            str(out),
            "--no-cache",
            "--no-progress-bar",
            "--no-table",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert results["stats"]["successes"] == 4 and results["stats"]["failures"] == 0, results["stats"]
    outputs = {r["response"]["output"] for r in results["results"]}
    assert outputs == {"echo: Repeat the word apple please", "echo: Repeat the word pear please"}

    def served() -> list[Any] | None:
        rows = _sql(
            pg_database,
            "SELECT model_served, count(*) FROM usage_logs WHERE traffic IS NULL "
            "AND application IS NULL AND model_requested IN ('small', 'large') "
            "GROUP BY model_served ORDER BY model_served",
        )
        return rows if sum(r[1] for r in rows) >= 4 else None

    assert [tuple(r) for r in wait_until(served, "promptfoo's calls in the usage log")] == [
        ("large", 2),
        ("small", 2),
    ]


def test_application_in_an_ab_experiment_online_next_to_offline(
    gw: GatewayProcess, admin: httpx.Client
) -> None:
    """Item 7: an application whose model is an experiment's alias is A/B-split by the experiments
    machinery; its live traffic (per prompt version and arm, with feedback) reads next to its
    evaluation runs."""
    r = admin.post("/api/applications", json={"name": "repeater-ab", "model": "chat", "prompt": "repeat"})
    assert r.status_code == 201, r.text
    key = admin.headers["Authorization"].removeprefix("Bearer ")
    client = openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0)
    request_ids, arms = [], set()
    for i in range(20):
        raw = client.chat.completions.with_raw_response.create(
            model="app:repeater-ab",
            messages=[{"role": "user", "content": f"turn {i}"}],
            extra_body={"prompt_variables": {"word": f"w{i}"}},
        )
        request_ids.append(raw.headers["x-request-id"])
        arms.add(raw.headers["x-prism-route"].split("arm=")[1].split(";")[0])
    assert arms == {"a", "b"}
    for request_id in request_ids[:3]:
        assert admin.post("/v1/feedback", json={"request_id": request_id, "score": "up"}).status_code == 201
    spec = {
        "variants": [
            {"label": "ab-small", "application": "repeater-ab", "model": "small"},
            {"label": "ab-large", "application": "repeater-ab", "model": "large"},
        ],
        "cases": [{"vars": {"word": f"w{i}"}} for i in range(10)],
        "assert": [{"type": "contains", "value": "{{word}}"}],
    }
    run = _wait_run(admin, admin.post("/api/evaluations", json=spec).json()["id"])
    assert run["status"] == "completed"

    def both() -> dict[str, Any] | None:
        quality = admin.get("/api/applications/repeater-ab/quality").json()
        online = quality["online"]
        ready = (
            sum(row["requests"] for row in online) == 20 and sum(r["feedback"]["count"] for r in online) == 3
        )
        return quality if ready else None

    quality = wait_until(both, "the application's live usage and feedback")
    assert {(row["experiment"], row["arm"]) for row in quality["online"]} == {
        ("repeat-ab", "a"),
        ("repeat-ab", "b"),
    }
    assert {row["prompt_version_id"] for row in quality["online"]} == {
        quality["offline"][0]["prompt_version_id"]
    }
    assert {o["variant"]: o["pass_rate"] for o in quality["offline"]} == {"ab-small": 1.0, "ab-large": 1.0}
