"""Prism in its production configuration for ``make bench``: Postgres, Redis, API-key auth, quotas,
cache (miss path), router and guardrails on, usage records written.

    bench_prism.py serve --fake-url URL --port P [--workers N]   # used as bench.py's --prism-cmd
    bench_prism.py key --url http://127.0.0.1:P                  # used as bench.py's --prism-setup
    bench_prism.py drop --port P                                 # used as bench.py's --prism-teardown

Each ``serve`` creates its own database (``prism_bench_<hex>``) and records its name next to the config;
``drop`` removes that database and the run's empty spill directory once the server has stopped, so
repeated runs do not pile up databases.

With ``--workers N`` above 1, ``python -m gateway`` runs N uvicorn workers and ``/metrics`` sums
them (a temporary ``PROMETHEUS_MULTIPROC_DIR`` made by the gateway).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "bench-admin@prism.local"
ADMIN_PASSWORD = "bench-admin-passphrase-7c1"

CONFIG = """
models:
  fake-gpt:
    provider: openai
    model: fake-gpt
    base_url: {fake_url}
    api_key_env: PRISM_BENCH_UPSTREAM_KEY
    local: false
    tier: cheap
    price_input_per_mtok: 0.15
    price_output_per_mtok: 0.60
    context_window: 128000
    timeouts: {{connect_s: 5, first_token_s: 30, total_s: 60, idle_s: 30}}
  fake-gpt-strong:
    provider: openai
    model: fake-gpt-strong
    base_url: {fake_url}
    api_key_env: PRISM_BENCH_UPSTREAM_KEY
    local: false
    tier: strong
    price_input_per_mtok: 2.50
    price_output_per_mtok: 10.00
    context_window: 128000
    timeouts: {{connect_s: 5, first_token_s: 30, total_s: 60, idle_s: 30}}
  mock-smart: {{provider: mock, tier: strong, price_input_per_mtok: 100, price_output_per_mtok: 100}}
aliases:
  auto: {{smart: true}}
fallbacks:
  fake-gpt: [mock-smart]
  fake-gpt-strong: [mock-smart]
quotas:
  fail_mode: open
  tiers:
    free: {{rpm: 10000000, tpm: 10000000000, monthly_budget_usd: 1000000}}
    enterprise: {{rpm: 10000000, tpm: 10000000000, monthly_budget_usd: 1000000}}
cache: {{enabled: true}}
"""


def serve(args: argparse.Namespace) -> None:
    workdir = ROOT / "var" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"prism-bench-{args.port}.yaml"  # one per port: concurrent runs must not share it
    config.write_text(CONFIG.format(fake_url=args.fake_url))
    database = f"prism_bench_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {database}")
    record(args.port).write_text(database)
    env = {
        **os.environ,
        "GATEWAY_ENV": "production",
        "GATEWAY_PORT": str(args.port),
        "GATEWAY_CONFIG": str(config),
        "GATEWAY_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
        "GATEWAY_REDIS_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        "GATEWAY_AUTH_ENABLED": "true",
        "GATEWAY_JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        # production needs a /metrics token; bench.py sends the same one (PRISM_METRICS_TOKEN)
        "GATEWAY_METRICS_TOKEN": os.environ.get("PRISM_METRICS_TOKEN", "prism-bench-metrics-token"),
        "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
        "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_WORKERS": str(args.workers),
        # its own spill directory: a spill file belongs to this run's database, not another run's
        "GATEWAY_USAGE_SPILL_DIR": str(workdir / f"spill-{database}"),
        "PRISM_BENCH_UPSTREAM_KEY": "sk-fake-bench",
    }
    os.execve(sys.executable, [sys.executable, "-m", "gateway"], env)


def record(port: int) -> Path:
    return ROOT / "var" / "bench" / f"prism-bench-{port}.database"


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)


def drop(args: argparse.Namespace) -> None:
    """Drop the database the last ``serve`` on this port created (its server has stopped)."""
    path = record(args.port)
    try:
        database = path.read_text().strip()
    except FileNotFoundError:
        return
    if not database.startswith("prism_bench_") or not database.replace("_", "").isalnum():
        raise SystemExit(f"{path} does not name a bench database: {database!r}")
    psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    path.unlink()
    spill = path.parent / f"spill-{database}"
    if spill.is_dir() and not any(spill.iterdir()):
        spill.rmdir()  # a non-empty one holds usage that never reached the database: kept for a look
    print(f"dropped {database}")


def key(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(args.url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    login = httpx.post(f"{args.url}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    login.raise_for_status()
    token = login.json()["access_token"]
    created = httpx.post(
        f"{args.url}/api/keys", json={"name": "bench"}, headers={"Authorization": f"Bearer {token}"}
    )
    created.raise_for_status()
    print(created.json()["key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--fake-url", required=True)
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--workers", type=int, default=1)
    key_parser = sub.add_parser("key")
    key_parser.add_argument("--url", required=True)
    drop_parser = sub.add_parser("drop")
    drop_parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    {"serve": serve, "key": key, "drop": drop}[args.command](args)


if __name__ == "__main__":
    main()
