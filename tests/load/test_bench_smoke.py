"""`make bench` in miniature, so the benchmark cannot rot: the fake upstream alone, then Prism in its
production configuration (Postgres, Redis, API key, quotas, guards, usage records) for a few seconds;
no LiteLLM, Portkey, multi-worker Prism or soak. It fails when either system errors on more than 0.1%
of requests or Prism's /metrics shows backend errors or fallbacks (the script exits non-zero)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_runs_clean(tmp_path: Path) -> None:
    python = sys.executable
    command = [
        python,
        "scripts/bench.py",
        "--smoke",
        "--logdir",
        str(tmp_path),
        "--json",
        str(tmp_path / "bench.json"),
        "--prism-url",
        "http://127.0.0.1:18090",
        "--prism-cmd",
        f"{python} scripts/bench_prism.py serve --fake-url {{fake_url}} --port {{port}}"
        " --workers {workers}",
        "--prism-setup",
        f"{python} scripts/bench_prism.py key --url {{url}}",
        "--prism-teardown",
        f"{python} scripts/bench_prism.py drop --port {{port}}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "prism    c=64" in result.stdout
    systems = json.loads((tmp_path / "bench.json").read_text())["systems"]
    assert [s["name"] for s in systems] == ["direct", "prism"]
    for phase in systems[1]["phases"]:  # read from Prism's /metrics after every phase
        assert set(phase["hidden_errors"]) == {"prism_backend_errors_total", "prism_fallbacks_total"}
    # the run's own database was dropped once its server stopped
    dropped = re.search(r"prism teardown: dropped (prism_bench_[0-9a-f]+)", result.stdout)
    assert dropped is not None, result.stdout[-2000:]
    left = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-Atc",
            f"SELECT 1 FROM pg_database WHERE datname = '{dropped[1]}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""
