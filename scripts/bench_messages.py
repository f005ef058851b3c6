"""What the Anthropic edge costs: the same prompt through ``/v1/chat/completions`` and ``/v1/messages``,
to the mock model and to ``provider: anthropic`` (the fake Anthropic upstream), in alternating rounds
on one gateway process (auth off, SQLite), sequential requests, latency percentiles per path.

    python scripts/bench_messages.py [--n 400] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.anthropic_upstream import running_fake_anthropic  # noqa: E402
from tests.support.gateway_proc import running_gateway  # noqa: E402


def _config(base_url: str) -> str:
    config = yaml.safe_load((ROOT / "config" / "prism.yaml").read_text())
    config["models"] = {"mock-fast": config["models"]["mock-fast"]} | {
        "claude": {"provider": "anthropic", "base_url": base_url, "model": "claude-fake"}
    }
    config["fallbacks"] = {}
    config["cache"] = {"enabled": False}
    return yaml.safe_dump(config)


def _bodies(model: str, text: str) -> dict[str, tuple[str, dict[str, object]]]:
    chat = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    return {
        "chat": ("/v1/chat/completions", chat),
        "messages": ("/v1/messages", chat),
        "chat-stream": ("/v1/chat/completions", {**chat, "stream": True}),
        "messages-stream": ("/v1/messages", {**chat, "stream": True}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400, help="requests per path and round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    with (
        running_fake_anthropic() as fake,
        tempfile.TemporaryDirectory() as tmp,
        running_gateway(Path(tmp), config=_config(fake.base_url)) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        for round_ in range(args.rounds):
            for model in ("mock-fast", "claude"):
                for name, (path, body) in _bodies(model, f"round {round_} hello there").items():
                    times = samples.setdefault(f"{model:9s} {name}", [])
                    for _ in range(args.n):
                        started = time.perf_counter()
                        response = client.post(path, json=body)
                        response.read()
                        times.append(time.perf_counter() - started)
                        assert response.status_code == 200, response.text
    print(f"{'model / path':28s} {'p50 ms':>8s} {'p95 ms':>8s}  (n={args.n * args.rounds} each)")
    for label, times in samples.items():
        times.sort()
        p50 = statistics.median(times) * 1000
        p95 = times[int(len(times) * 0.95)] * 1000
        print(f"{label:28s} {p50:8.3f} {p95:8.3f}")


if __name__ == "__main__":
    main()
