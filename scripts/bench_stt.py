"""Latency of ``POST /v1/audio/transcriptions`` through a real gateway (docs/audio.md): the relay to
an OpenAI-compatible server (a fake one on 127.0.0.1 answering at once, so the figure is the
gateway's own cost: multipart in, decode and measure, quota row, multipart out, usage record) and
the offline engine, each with the official ``openai`` SDK, sequential requests.

    PYTHONPATH=. python scripts/bench_stt.py --requests 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import openai

from tests.support.audio_samples import PROBE, encode, join, speak
from tests.support.fake_transcriber import running_fake_transcriber
from tests.support.gateway_proc import running_gateway


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    audio = encode(join([speak(PROBE)]))
    with running_fake_transcriber() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = (
            "models:\n  mock-fast: {provider: mock, tier: cheap}\n"
            f"audio:\n  relay: {{provider: openai, base_url: '{upstream.url}'}}\n"
            "  sphinx-en: {provider: local}\n"
        )
        env = {"GATEWAY_JOBS_STORAGE_DIR": str(Path(tmp) / "uploads")}
        with running_gateway(Path(tmp), config=config, env=env, ready_timeout=180.0) as gw:
            client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0, timeout=120)
            print(f"audio: {len(audio)} bytes WAV, {(len(audio) - 44) / 32000:.2f} s")
            print("| model | requests | p50 ms | p95 ms | max ms |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for model, count in (("relay", args.requests), ("sphinx-en", max(3, args.requests // 4))):
                client.audio.transcriptions.create(model=model, file=("a.wav", audio))  # warm up
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    client.audio.transcriptions.create(model=model, file=("a.wav", audio))
                    times.append((time.perf_counter() - started) * 1000)
                print(
                    f"| {model} | {count} | {statistics.median(times):.0f} | {percentile(times, 0.95):.0f} "
                    f"| {max(times):.0f} |"
                )


if __name__ == "__main__":
    main()
