"""Speech-to-text units (docs/audio.md): magic bytes, declared kinds, decoding and measuring each
format, truncated files, request fields, subtitles, and the jobs' token budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from gateway.audio.formats import check_kind, declared_kind, decode_pcm16, probe, resample, sniff
from gateway.audio.service import parse_params, subtitles
from gateway.errors import InvalidRequest, UnsupportedMediaType
from gateway.pipelines.budget import JobTokenQuotaExceeded, TokenBudget
from tests.support.audio_samples import encode, wer

TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 2) / 16000)).astype(np.float32)


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [("WAV", "audio/wav"), ("FLAC", "audio/flac"), ("OGG", "audio/ogg"), ("MP3", "audio/mpeg")],
)
def test_each_format_is_sniffed_decoded_and_measured(tmp_path: Path, fmt: str, kind: str) -> None:
    path = tmp_path / f"tone.{fmt.lower()}"
    path.write_bytes(encode(TONE, fmt))
    assert sniff(path.read_bytes()[:64]) == kind
    info = probe(path, kind)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert decode_pcm16(path, kind).size == pytest.approx(32000, abs=1600)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg (Debian) decodes WebM and M4A")
def test_webm_and_m4a_through_ffmpeg(tmp_path: Path) -> None:
    import subprocess

    wav = tmp_path / "tone.wav"
    wav.write_bytes(encode(TONE))
    for suffix, kind, codec in (("webm", "audio/webm", "libopus"), ("m4a", "audio/mp4", "aac")):
        out = tmp_path / f"tone.{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", codec, str(out)], check=True)
        assert sniff(out.read_bytes()[:64]) == kind
        assert probe(out, kind).duration_s == pytest.approx(2.0, abs=0.15)
        truncated = tmp_path / f"cut.{suffix}"
        truncated.write_bytes(out.read_bytes()[: out.stat().st_size // 3])
        with pytest.raises(InvalidRequest):
            probe(truncated, kind)


def test_truncated_and_corrupt_files_are_400(tmp_path: Path) -> None:
    for fmt, kind in (("WAV", "audio/wav"), ("FLAC", "audio/flac")):
        data = encode(TONE, fmt)
        path = tmp_path / f"cut.{fmt}"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(InvalidRequest) as caught:
            probe(path, kind)
        assert caught.value.code == "invalid_audio"
    garbage = tmp_path / "x.mp3"
    garbage.write_bytes(b"ID3" + b"\x00" * 2000)
    with pytest.raises(InvalidRequest):
        probe(garbage, "audio/mpeg")


def test_kinds_declared_and_refused() -> None:
    assert declared_kind("a.m4a", "application/octet-stream") == "audio/mp4"
    assert declared_kind(None, "audio/x-wav") == "audio/wav"
    with pytest.raises(UnsupportedMediaType) as caught:
        check_kind(b"PK\x03\x04rest", declared="audio/wav")
    assert caught.value.code == "content_mismatch" and "ZIP" in caught.value.message
    with pytest.raises(UnsupportedMediaType):
        check_kind(b"hello world", declared=None)


def test_request_fields() -> None:
    params = parse_params(
        {"response_format": "verbose_json", "timestamp_granularities[]": "word", "language": "KO"}
    )
    assert params.timestamp_granularities == ("word",) and params.language == "ko"
    for bad in ({"response_format": "mp3"}, {"temperature": "2"}, {"timestamp_granularities[]": "word"}):
        with pytest.raises(InvalidRequest):
            parse_params(bad)


def test_subtitles_and_wer() -> None:
    segments = [{"start": 0.0, "end": 1.5, "text": "hello"}, {"start": 3661.25, "end": 3662.0, "text": "bye"}]
    assert subtitles(segments, vtt=False).startswith("1\n00:00:00,000 --> 00:00:01,500\nhello\n")
    assert "01:01:01.250 --> 01:01:02.000" in subtitles(segments, vtt=True)
    assert wer("the cat sat", "the cat sat") == 0 and wer("the cat sat", "a cat") == pytest.approx(2 / 3)


def test_resampling_keeps_a_tone() -> None:
    out = resample(TONE, 16000, 8000)
    assert out.size == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(np.argmax(spectrum)) * 8000 / out.size - 440) < 2


def test_token_budget() -> None:
    budget = TokenBudget(limit=10)
    budget.check()
    budget.add(12)
    with pytest.raises(JobTokenQuotaExceeded):
        budget.check()
    TokenBudget(limit=None, used=10**9).check()


def test_models_resolve_with_the_keys_allow_lists() -> None:
    from gateway.audio.service import AudioModels
    from gateway.config.audio import TranscriptionModelConfig
    from gateway.errors import ModelNotFound, PermissionDenied
    from gateway.security.principal import Principal, Role

    config = {
        "sphinx-en": TranscriptionModelConfig(provider="local"),
        "whisper": TranscriptionModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1"),
        "gated": TranscriptionModelConfig(provider="local", enabled_if_env="NOT_SET_HERE"),
    }
    models = AudioModels(lambda: config, {})
    anyone = Principal(user_id="u", role=Role.USER, tier="free")
    assert models.resolve(None, anyone)[0] == "sphinx-en"  # the first configured
    limited = Principal(user_id="u", role=Role.USER, tier="free", allowed_models=frozenset({"whisper"}))
    assert models.resolve("whisper", limited)[0] == "whisper"
    with pytest.raises(PermissionDenied):
        models.resolve("sphinx-en", limited)
    with pytest.raises(ModelNotFound):
        models.resolve("gated", anyone)  # its environment variable is unset
