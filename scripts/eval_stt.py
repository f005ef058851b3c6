"""Word error rate and speed of the offline speech-to-text engine (docs/audio.md).

Test audio is made here: the sentences of ``tests/support/audio_samples.py`` (written for this set)
spoken by espeak-ng (en-us, ko voices), at 16 kHz, clean and with white noise at 20 and 10 dB SNR,
and at two speaking rates. Each sentence is one request to the engine as the gateway runs it
(``PocketSphinxTranscriber``: decoded, resampled and recognised in its child process).

    PYTHONPATH=. python scripts/eval_stt.py            # all conditions
    PYTHONPATH=. python scripts/eval_stt.py --quick    # clean only
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from gateway.audio.providers import PocketSphinxTranscriber, TranscriptionParams
from gateway.config.audio import TranscriptionModelConfig
from tests.support.audio_samples import SENTENCES, encode, speak, wer, with_noise


async def run(quick: bool) -> None:
    engine = PocketSphinxTranscriber("sphinx", TranscriptionModelConfig(provider="local"))
    conditions = (
        [("clean", None, 150)]
        if quick
        else [
            ("clean", None, 150),
            ("clean, slow (120 wpm)", None, 120),
            ("noise 20 dB SNR", 20.0, 150),
            ("noise 10 dB SNR", 10.0, 150),
        ]
    )
    print("| language | condition | sentences | WER | audio s | engine s | real-time factor |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for language in ("en", "ko"):
            for label, snr, speed in conditions:
                errors, words, audio_s, engine_s = 0.0, 0, 0.0, 0.0
                for i, sentence in enumerate(SENTENCES[language]):
                    samples = speak(sentence, language, speed=speed)
                    if snr is not None:
                        samples = with_noise(samples, snr, seed=i)
                    path = Path(tmp) / f"{language}-{i}.wav"
                    path.write_bytes(encode(samples))
                    started = time.perf_counter()
                    transcript = await engine.transcribe(
                        path,
                        kind="audio/wav",
                        file_name=path.name,
                        duration_s=samples.size / 16000,
                        params=TranscriptionParams(),
                    )
                    engine_s += time.perf_counter() - started
                    n = len(sentence.split())
                    errors += wer(sentence, transcript.text) * n
                    words += n
                    audio_s += samples.size / 16000
                print(
                    f"| {language} | {label} | {len(SENTENCES[language])} | {errors / words:.1%} | "
                    f"{audio_s:.1f} | {engine_s:.1f} | {engine_s / audio_s:.2f} |"
                )
    latencies = []
    probe = Path(tempfile.mkdtemp()) / "probe.wav"
    probe.write_bytes(encode(speak(SENTENCES["en"][0])))
    for _ in range(5):
        started = time.perf_counter()
        await engine.transcribe(
            probe, kind="audio/wav", file_name="p.wav", duration_s=3.0, params=TranscriptionParams()
        )
        latencies.append(time.perf_counter() - started)
    print(f"\none ~3 s English sentence, warm engine: median {statistics.median(latencies) * 1000:.0f} ms")
    await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(run(parser.parse_args().quick))


if __name__ == "__main__":
    main()
