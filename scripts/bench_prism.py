"""Prism in its production configuration for ``make bench``: Postgres, Redis, API-key auth, quotas,
cache (miss path), router and guardrails on, usage records written.

    bench_prism.py serve --fake-url URL --port P [--workers N]   # used as bench.py's --prism-cmd
    bench_prism.py key --url http://127.0.0.1:P                  # used as bench.py's --prism-setup

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
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {database}"], check=True
    )
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
        "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
        "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_WORKERS": str(args.workers),
        # its own spill directory: a spill file belongs to this run's database, not another run's
        "GATEWAY_USAGE_SPILL_DIR": str(workdir / f"spill-{database}"),
        "PRISM_BENCH_UPSTREAM_KEY": "sk-fake-bench",
    }
    os.execve(sys.executable, [sys.executable, "-m", "gateway"], env)


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
    args = parser.parse_args()
    serve(args) if args.command == "serve" else key(args)


if __name__ == "__main__":
    main()
