"""Speech-to-text metrics (docs/audio.md), on the default registry with the others."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

AUDIO_TRANSCRIPTIONS = Counter(
    "prism_audio_transcriptions",
    "Transcriptions by model, mode (sync/job) and outcome",
    ["model", "mode", "outcome"],
)
AUDIO_SECONDS = Counter("prism_audio_seconds", "Audio seconds transcribed", ["model", "mode"])
AUDIO_LATENCY = Histogram(
    "prism_audio_transcription_duration_seconds",
    "Time of one provider call",
    ["model", "mode"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)
AUDIO_REJECTED = Counter("prism_audio_rejected", "Transcriptions refused before a provider call", ["reason"])
