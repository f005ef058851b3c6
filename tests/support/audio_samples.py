"""Speech test audio made here, offline: sentences spoken by espeak-ng (Debian), resampled and mixed
with noise by numpy, written by soundfile; and the word error rate to score transcripts.

The sentences were written for this test set (business English and Korean); none comes from a
published corpus."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from gateway.audio.formats import resample

PROBE = "the quarterly report is due on friday and the meeting starts at ten"
"""The sentence the integration tests score (PocketSphinx reads it well; the others, worse:
docs/audio.md has the figures for all)."""
SENTENCES = {
    "en": [
        "the quarterly report is due on friday morning",
        "please send the invoice to the finance team",
        "the meeting will start at ten in the large room",
        "we need two more people for the new project",
        "the server was restarted after the update",
        "call me back when you have read the contract",
        "our office is closed on the first of january",
        "the price of the service will go up next year",
    ],
    "ko": [
        "회의는 내일 오전 열시에 시작합니다",
        "보고서를 금요일까지 제출해 주십시오",
        "새로운 사업 계획을 검토하고 있습니다",
        "담당자에게 전화로 연락해 주시기 바랍니다",
    ],
}
VOICES = {"en": "en-us", "ko": "ko"}


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, language: str = "en", *, speed: int = 150, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by espeak-ng as mono float32 samples at ``rate``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICES[language], "-s", str(speed), "-w", str(out), text],
            check=True,
            capture_output=True,
        )
        data, source = sf.read(str(out), dtype="float32")
    return resample(data, int(source), rate)


def with_noise(samples: np.ndarray, snr_db: float, *, seed: int = 0) -> np.ndarray:
    """White noise at ``snr_db`` dB signal-to-noise ratio."""
    power = float(np.mean(samples**2)) or 1e-9
    noise = np.random.default_rng(seed).normal(0, np.sqrt(power / 10 ** (snr_db / 10)), samples.size)
    return np.clip(samples + noise, -1, 1).astype(np.float32)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def join(parts: list[np.ndarray], gap_s: float = 0.4, rate: int = 16000) -> np.ndarray:
    gap = silence(gap_s, rate)
    out: list[np.ndarray] = []
    for part in parts:
        out.extend([part, gap])
    return np.concatenate(out) if out else silence(0)


def encode(samples: np.ndarray, fmt: str = "WAV", rate: int = 16000, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(len(ref), 1)
