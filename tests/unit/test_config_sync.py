"""ConfigHolder reload outcomes and ConfigSync without Redis (one process, and the file registry of
the workers of one parent). The cluster path runs in tests/integration/test_config_reload_cluster.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from gateway.config.routing import CircuitBreakerConfig, ConfigError
from gateway.config_sync import ConfigSync, FileRegistry, LocalRegistry, WorkerStatus
from gateway.routing.circuit import CircuitBreakers
from gateway.runtime import ConfigHolder, config_hash

CONFIG = "models:\n  fast: {provider: mock}\n"
MORE = CONFIG + "  new: {provider: mock}\n"


def _reloads(outcome: str) -> float:
    return REGISTRY.get_sample_value("prism_config_reloads_total", {"outcome": outcome}) or 0.0


def _holder(tmp_path: Path, text: str = CONFIG) -> ConfigHolder:
    path = tmp_path / "prism.yaml"
    path.write_text(text)
    holder = ConfigHolder(path=path, clients=None, circuits=CircuitBreakers(CircuitBreakerConfig()))
    return holder


def test_start_up_is_not_a_reload_and_reloads_are_counted_by_outcome(tmp_path: Path) -> None:
    before = {outcome: _reloads(outcome) for outcome in ("ok", "unchanged", "rejected")}
    holder = _holder(tmp_path)
    holder.load()
    assert holder.config_hash == config_hash(CONFIG.encode())
    assert {outcome: _reloads(outcome) for outcome in before} == before

    assert holder.reload()[1] == "unchanged"
    holder.path.write_text(MORE)
    snapshot, outcome = holder.reload()
    assert outcome == "ok" and "new" in snapshot.targets and holder.config_hash == config_hash(MORE.encode())
    holder.path.write_text("models: [")
    with pytest.raises(ConfigError):
        holder.reload()
    assert "new" in holder.current.targets and holder.last_error is not None  # the running config stays
    assert [_reloads(o) - before[o] for o in ("ok", "unchanged", "rejected")] == [1, 1, 1]


async def test_single_process_reload_reports_itself(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.load()
    sync = ConfigSync(holder, replica="r1", registry=LocalRegistry())
    await sync.start()
    try:
        holder.path.write_text(MORE)
        report = await sync.reload_everywhere(wait_s=0)
        assert report["scope"] == "process" and report["converged"] and report["outcome"] == "ok"
        assert [(w["replica"], w["hash"]) for w in report["workers"]] == [("r1", config_hash(MORE.encode()))]
        holder.path.write_text("models: [")
        with pytest.raises(ConfigError):
            await sync.reload_everywhere(wait_s=0)
        status = await sync.describe()
        assert status["workers"][0]["hash"] == config_hash(MORE.encode())
        assert status["workers"][0]["error"] is not None
    finally:
        await sync.aclose()


async def test_file_registry_lists_fresh_workers_and_waits_for_the_pending_one(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.load()
    registry = FileRegistry(tmp_path / "status")
    now = time.time()
    for pid, seen_at in ((999_999, now), (999_998, now - 60)):
        status = WorkerStatus("r1", pid, "old", loaded_at=now, error=None, notice=None, seen_at=seen_at)
        await registry.put(status)
    sync = ConfigSync(holder, replica="r1", registry=registry)  # no parent: nobody tells the sibling
    await sync.start()
    try:
        holder.path.write_text(MORE)
        started = time.monotonic()
        report = await sync.reload_everywhere(wait_s=0.3)
        assert time.monotonic() - started < 2
        assert not report["converged"] and report["pending"] == ["r1:999999"]
        by_pid = {w["pid"]: w for w in report["workers"]}
        assert set(by_pid) == {sync.pid, 999_999}  # the stale one is not listed
        assert by_pid[999_999]["current"] is False and by_pid[sync.pid]["current"] is True
    finally:
        await sync.aclose()
    assert [status.pid for status in await registry.list()] == [999_999]  # stopped and stale ones leave
    assert not (registry.directory / "999998.json").exists()
