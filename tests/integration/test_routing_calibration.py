"""``make calibrate-routing`` end to end (issue #21): judged shadow pairs seeded through the ORM into a
fresh Postgres database (migrated by Alembic, so migration 0014's columns are real), the script's
proposal, and the fragment applied to a running gateway's routing YAML through ``POST
/admin/config/reload`` changing where ``model: "auto"`` sends prompts, per intent and language."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from gateway.config.routing import RoutingConfig
from gateway.db.models import ShadowJudgement, ShadowResult
from gateway.routing.calibration import apply_fragment, load_shadow_pairs
from scripts.calibrate_routing import main as calibrate
from tests.integration.db_fixtures import pg_url, sqlite_url  # noqa: F401  (fixtures)
from tests.support.gateway_proc import running_gateway

pytestmark = pytest.mark.integration

CONFIG = """
models:
  mock-fast: {provider: mock, tier: cheap, price_input_per_mtok: 0.15, price_output_per_mtok: 0.6}
  mock-smart: {provider: mock, tier: strong, price_input_per_mtok: 2.5, price_output_per_mtok: 10.0}
  mock-other: {provider: mock, tier: cheap, price_input_per_mtok: 1.0, price_output_per_mtok: 1.0}
aliases:
  auto: {smart: true}
  auto-shadow: {smart: true, shadow: [mock-other]}
routing:
  tiers: [cheap, strong]
  sticky_upgrade_s: 0
cache: {enabled: false}
"""
CODING_EN = "How do I reverse a list in Python?"  # coding: strong today
CODING_KO = "파이썬에서 리스트를 뒤집는 방법은?"
GENERAL_EN = "What is the capital of France?"  # general: cheap today
ADMIN = {"GATEWAY_ADMIN_EMAIL": "ops@example.com", "GATEWAY_ADMIN_PASSWORD": "Operator-passphrase-31"}


def _pair(n: int, *, intent: str | None, language: str, complexity: float, cheap: int, strong: int,
          cheap_primary: bool, shadow_model: str = "mock-smart") -> tuple[ShadowResult, ShadowJudgement]:
    pair_id = f"calib-{n:04d}"
    primary, shadow = ("mock-fast", shadow_model) if cheap_primary else (shadow_model, "mock-fast")
    primary_score, shadow_score = (cheap, strong) if cheap_primary else (strong, cheap)
    result = ShadowResult(
        pair_id=pair_id, request_id=f"req-{n}", alias="auto", primary_model=primary, shadow_model=shadow,
        primary_prompt_tokens=40, primary_completion_tokens=200, shadow_prompt_tokens=40,
        shadow_completion_tokens=220, intent=intent, language=language, complexity=complexity, confidence=0.9,
    )
    judgement = ShadowJudgement(
        pair_id=pair_id, alias="auto", shadow_model=shadow, judge_model="mock-smart",
        primary_score=primary_score, shadow_score=shadow_score, shadow_position="a",
        winner="tie" if cheap == strong else "primary" if primary_score > shadow_score else "shadow",
    )
    return result, judgement


def _seed_rows() -> list[ShadowResult | ShadowJudgement]:
    rows: list[ShadowResult | ShadowJudgement] = []
    n = 0

    def add(**kwargs: object) -> None:
        nonlocal n
        n += 1
        rows.extend(_pair(n, cheap_primary=n % 2 == 0, **kwargs))  # type: ignore[arg-type]

    for i in range(40):  # coding, en: the cheap answer as good everywhere → a threshold above 0.39
        add(intent="coding", language="en", complexity=i / 100, cheap=8, strong=8)
    for i in range(40):  # coding, ko: the cheap answer worse everywhere → 0
        add(intent="coding", language="ko", complexity=i / 100, cheap=3, strong=8)
    for i in range(40):  # general, en: worse everywhere → 0 (today: cheap below 0.6)
        add(intent="general", language="en", complexity=i / 100, cheap=4, strong=9)
    for i in range(5):  # translation, en: too few pairs → no entry
        add(intent="translation", language="en", complexity=i / 10, cheap=9, strong=9)
    add(intent=None, language="en", complexity=0.1, cheap=1, strong=9)  # not classified: skipped
    # both answers from the cheap tier, and a model no longer configured: skipped
    add(intent="coding", language="en", complexity=0.1, cheap=1, strong=9, shadow_model="mock-other")
    add(intent="coding", language="en", complexity=0.1, cheap=1, strong=9, shadow_model="gone")
    return rows


async def _seed(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            session.add_all(_seed_rows())
            failed = _pair(999, intent="coding", language="en", complexity=0.1, cheap=1, strong=9,
                           cheap_primary=True)
            failed[1].primary_score = failed[1].shadow_score = None  # a judge call that failed: skipped
            session.add_all(failed)
    finally:
        await engine.dispose()


async def _load(url: str, config: RoutingConfig) -> list[object]:
    engine = create_async_engine(url)
    try:
        return list(await load_shadow_pairs(engine, config=config))
    finally:
        await engine.dispose()


def _shadow_row(db: Path) -> tuple[str, str]:
    deadline = time.monotonic() + 10
    while True:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            row = conn.execute(
                "SELECT intent, language, complexity, confidence FROM shadow_results"
                " WHERE alias = 'auto-shadow'"
            ).fetchone()
        if row is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row is not None, "no shadow row written"
    assert 0 <= row[2] <= 1 and 0 <= row[3] <= 1
    return str(row[0]), str(row[1])


def _route(gw_url: str, prompt: str, model: str = "auto") -> tuple[str, str]:
    response = httpx.post(
        f"{gw_url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": prompt}]},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-prism-model"], response.headers["x-prism-route"]


def test_shadow_pairs_calibrate_and_reload_changes_routing(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    asyncio.run(_seed(pg_url))
    config = RoutingConfig.model_validate(yaml.safe_load(CONFIG))
    records = asyncio.run(_load(pg_url, config))
    assert len(records) == 125  # 40 + 40 + 40 + 5; unclassified, failed, cheap/cheap, unknown skipped
    assert all(r.cheap_worse() for r in records if r.intent == "general")  # both orientations read right
    assert not any(r.cheap_worse() for r in records if r.intent == "coding" and r.language == "en")

    config_path, out = tmp_path / "routing.yaml", tmp_path / "thresholds.yaml"
    config_path.write_text(CONFIG)
    code = calibrate([
        "--config", str(config_path), "--database-url", pg_url, "--data", "none", "--hard", "none",
        "--max-loss", "0.02", "--out", str(out),
    ])
    assert code == 0
    fragment = yaml.safe_load(out.read_text())
    assert fragment == {
        "routing": {"complexity_thresholds": {"coding": {"en": 0.391, "ko": 0.0}, "general": {"en": 0.0}}}
    }

    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    with running_gateway(gw_dir, config=CONFIG, env=ADMIN) as gw:
        assert _route(gw.url, CODING_EN)[0] == "mock-smart"
        assert _route(gw.url, GENERAL_EN)[0] == "mock-fast"
        # a classified request's shadow pair records the classification the calibration reads back
        assert _route(gw.url, CODING_KO, model="auto-shadow")[0] == "mock-smart"
        assert _shadow_row(gw_dir / f"prism-{gw.port}.db") == ("coding", "ko")
        login = httpx.post(
            f"{gw.url}/auth/login", json={"email": ADMIN["GATEWAY_ADMIN_EMAIL"],
                                          "password": ADMIN["GATEWAY_ADMIN_PASSWORD"]}
        )
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        gw.config_path.write_text(yaml.safe_dump(apply_fragment(yaml.safe_load(CONFIG), fragment)))
        reload = httpx.post(f"{gw.url}/admin/config/reload", headers=admin, timeout=20)
        assert reload.status_code == 200, reload.text
        model, route = _route(gw.url, CODING_EN)
        assert model == "mock-fast" and "intent=coding" in route and "tier=cheap" in route
        assert _route(gw.url, CODING_KO)[0] == "mock-smart"  # ko: its own (lower) threshold
        assert _route(gw.url, GENERAL_EN)[0] == "mock-smart"  # lowered below today's 0.6
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert 'prism_route_calibrated_total{intent="coding",language="en",tier="cheap"} 1.0' in metrics
        assert 'prism_route_calibrated_total{intent="general",language="en",tier="strong"} 1.0' in metrics
        # a bad fragment is refused by the reload, and the running thresholds stay
        bad_config = yaml.safe_load(CONFIG)
        bad_config["routing"]["complexity_thresholds"] = {"general": {"fr": 0.3}}
        gw.config_path.write_text(yaml.safe_dump(bad_config))
        bad = httpx.post(f"{gw.url}/admin/config/reload", headers=admin, timeout=20)
        assert bad.status_code == 400 and "complexity_thresholds" in bad.text
        assert _route(gw.url, CODING_EN)[0] == "mock-fast"


def test_shadow_pairs_load_from_sqlite(sqlite_url: str) -> None:  # noqa: F811
    asyncio.run(_seed(sqlite_url))
    records = asyncio.run(_load(sqlite_url, RoutingConfig.model_validate(yaml.safe_load(CONFIG))))
    assert len(records) == 125
    assert {(r.intent, r.language) for r in records} == {
        ("coding", "en"), ("coding", "ko"), ("general", "en"), ("translation", "en")
    }
