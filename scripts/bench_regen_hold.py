"""What holding a stream's first window costs the client (issue #22, item 6; docs/tools.md).

One gateway with ``tools.regenerate`` on, two models on the same fake upstream (80 tokens per
answer, ``--chunk-delay`` between tokens): ``held`` has an output deny pattern that blocks (so its
streams' first window is judged before the 200), ``plain`` has only the shipped output policy
(nothing that blocks: nothing held). Clean answers only; the official ``openai`` SDK streams them,
alternating models, and the time to the first content chunk and to the end is reported.

    python scripts/bench_regen_hold.py --n 30 --chunk-delay 0.01
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openai_upstream import running_fake_openai
from tests.support.gateway_proc import running_gateway

CONFIG = """
models:
  held: {{provider: openai, model: gpt-4o-mini, base_url: {base}, api_key_env: BENCH_KEY, local: false}}
  plain: {{provider: openai, model: gpt-4o-mini, base_url: {base}, api_key_env: BENCH_KEY, local: false}}
cache: {{enabled: false}}
tools:
  regenerate: {{enabled: true}}
guardrails:
  models:
    held: {{output: {{deny_patterns: [{{name: codename, pattern: "PROJECT-ORCA", action: block}}]}}}}
"""


def _one(client: openai.OpenAI, model: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    for chunk in client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "tell me a story"}]
    ):
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first * 1000, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--chunk-delay", type=float, default=0.01)
    args = parser.parse_args()
    with (
        running_fake_openai(chunks=80, chunk_delay=args.chunk_delay) as fake,
        tempfile.TemporaryDirectory() as tmp,
        running_gateway(
            Path(tmp), config=CONFIG.format(base=fake.openai_base_url), env={"BENCH_KEY": "x"}
        ) as gateway,
        openai.OpenAI(base_url=gateway.openai_base_url, api_key="unused", max_retries=0) as client,
    ):
        for model in ("held", "plain"):
            _one(client, model)  # warm-up
        results: dict[str, list[tuple[float, float]]] = {"held": [], "plain": []}
        for _ in range(args.n):
            for model in ("held", "plain"):
                results[model].append(_one(client, model))
    print(f"n={args.n} per model, 80 tokens per answer, chunk delay {args.chunk_delay * 1000:g} ms")
    for model, rows in results.items():
        ttft = statistics.median(r[0] for r in rows)
        total = statistics.median(r[1] for r in rows)
        print(f"{model:6s} first token p50 {ttft:7.1f} ms   whole stream p50 {total:7.1f} ms")


if __name__ == "__main__":
    main()
