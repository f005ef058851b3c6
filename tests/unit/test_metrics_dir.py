"""``python -m gateway`` settles PROMETHEUS_MULTIPROC_DIR before any worker starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.__main__ import prepare_metrics_dir


def test_configured_dir_is_created_and_emptied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_12345.db").write_bytes(b"stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    assert prepare_metrics_dir(4) == str(directory)
    assert list(directory.iterdir()) == []


def test_single_worker_without_dir_keeps_the_in_process_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert prepare_metrics_dir(1) is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_several_workers_get_a_fresh_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    path = prepare_metrics_dir(2)
    assert path is not None and Path(path).is_dir() and not any(Path(path).iterdir())
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
    # Not monkeypatch.delenv: it would record this path and put it back at teardown, leaving every
    # later test (and the children they start) pointed at the directory removed here.
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    Path(path).rmdir()
