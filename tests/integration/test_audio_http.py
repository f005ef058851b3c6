"""Speech-to-text over real HTTP (docs/audio.md), driven by the official ``openai`` SDK as a client
would: a real uvicorn gateway (SQLite, in-process jobs worker) with two transcription models — an
OpenAI-compatible server (a fake one speaking the real multipart protocol on 127.0.0.1) and the
offline PocketSphinx engine scored by WER on espeak-ng speech. Sync and job modes, the bad-input
list (each a 4xx in OpenAI's error shape), usage rows, metrics, and the daily audio quota."""

from __future__ import annotations

import io
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.audio_samples import PROBE, encode, espeak_available, join, silence, speak, wer
from tests.support.fake_transcriber import TRANSCRIPT, FakeTranscriber, running_fake_transcriber
from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng (Debian) makes the test speech")

SYNC_MAX_S = 8
QUOTA_S = 600
PRICE = 0.006


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeTranscriber]:
    with running_fake_transcriber() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeTranscriber) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("audio")
    config = f"""
models:
  mock-fast: {{provider: mock, tier: cheap}}
audio:
  whisper-fake:
    provider: openai
    model: Systran/faster-whisper-small
    base_url: {upstream.url}
    api_key_env: FAKE_WHISPER_KEY
    price_per_minute: {PRICE}
  sphinx-en:
    provider: local
    model: pocketsphinx-en-us
"""
    env = {
        "GATEWAY_JOBS_STORAGE_DIR": str(tmp / "uploads"),
        "GATEWAY_AUDIO_SYNC_MAX_SECONDS": str(SYNC_MAX_S),
        "GATEWAY_AUDIO_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
        "GATEWAY_AUDIO_SECONDS_PER_DAY": str(QUOTA_S),
        "FAKE_WHISPER_KEY": "sk-upstream",
    }
    with running_gateway(tmp, config=config, env=env, ready_timeout=180.0) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def english() -> tuple[str, bytes]:
    return PROBE, encode(join([speak(PROBE)]))


def database(gw: GatewayProcess) -> Path:
    return gw.config_path.parent / f"prism-{gw.port}.db"


def rows(gw: GatewayProcess, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database(gw)) as conn:
        return conn.execute(sql, args).fetchall()


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_sync_relay_to_an_openai_compatible_server(
    client: openai.OpenAI, upstream: FakeTranscriber, gateway: GatewayProcess, english: tuple[str, bytes]
) -> None:
    _, audio = english
    result = client.audio.transcriptions.create(
        model="whisper-fake", file=("memo.wav", audio), language="en", prompt="finance", temperature=0.2
    )
    assert result.text == TRANSCRIPT
    seen = upstream.seen[-1]
    assert seen.data == audio and seen.file_name == "memo.wav" and seen.content_type == "audio/wav"
    assert seen.fields["model"] == ["Systran/faster-whisper-small"]  # the upstream id, not ours
    assert seen.fields["language"] == ["en"] and seen.fields["prompt"] == ["finance"]
    assert seen.fields["response_format"] == ["json"] and seen.authorization == "Bearer sk-upstream"
    text = client.audio.transcriptions.create(
        model="whisper-fake", file=("memo.wav", audio), response_format="text"
    )
    assert text.strip() == TRANSCRIPT
    srt = client.audio.transcriptions.create(
        model="whisper-fake", file=("memo.wav", audio), response_format="srt"
    )
    assert "-->" in srt and TRANSCRIPT in srt
    verbose = client.audio.transcriptions.create(
        model="whisper-fake",
        file=("memo.wav", audio),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.segments and verbose.segments[0].text == TRANSCRIPT
    assert upstream.seen[-1].fields["timestamp_granularities[]"] == ["word", "segment"]
    # the usage row: route, model, cost by the minute; the audio seconds beside it
    seconds = rows(gateway, "SELECT seconds FROM audio_usage WHERE model = 'whisper-fake'")[0][0]

    def recorded() -> list[tuple[Any, ...]] | None:
        found = rows(
            gateway,
            "SELECT model_served, provider, status, cost_usd FROM usage_logs"
            " WHERE route = 'audio.transcriptions' AND model_served = 'whisper-fake'",
        )
        return found if len(found) >= 4 else None

    usage = wait_until(recorded, "usage rows of the transcriptions", within_s=20)
    assert all(r[1] == "openai" and r[2] == "ok" for r in usage)
    assert usage[0][3] == pytest.approx(seconds / 60 * PRICE, abs=1e-7)
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert 'prism_audio_transcriptions_total{mode="sync",model="whisper-fake",outcome="ok"}' in metrics


def test_upstream_errors_are_relayed_in_openai_shape(
    client: openai.OpenAI, upstream: FakeTranscriber, english: tuple[str, bytes]
) -> None:
    upstream.fail_next.append(400)
    with pytest.raises(openai.BadRequestError) as rejected:
        client.audio.transcriptions.create(model="whisper-fake", file=("memo.wav", english[1]))
    assert "upstream says no" in error_of(rejected.value)["message"]
    upstream.fail_next.append(500)
    with pytest.raises(openai.APIStatusError) as failed:
        client.audio.transcriptions.create(model="whisper-fake", file=("memo.wav", english[1]))
    assert failed.value.status_code == 502


def test_sync_with_the_offline_engine_is_scored_by_wer(
    client: openai.OpenAI, english: tuple[str, bytes]
) -> None:
    reference, audio = english
    result = client.audio.transcriptions.create(
        model="sphinx-en",
        file=("memo.flac", encode_flac(audio)),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    score = wer(reference, result.text)
    assert score <= 0.4, (score, result.text)
    assert result.language == "english" and result.duration and result.duration > 3
    assert result.words and result.words[0].end >= result.words[0].start
    vtt = client.audio.transcriptions.create(
        model="sphinx-en", file=("memo.wav", audio), response_format="vtt"
    )
    assert vtt.startswith("WEBVTT") and "-->" in vtt


def encode_flac(wav: bytes) -> bytes:
    import soundfile as sf

    data, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return encode(data, "FLAC", rate)


def test_long_audio_is_refused_sync_and_transcribed_as_a_job(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    reference = " ".join([PROBE] * 3)
    long_audio = encode(join([speak(PROBE)] * 3, gap_s=1.0))
    with pytest.raises(openai.APIStatusError) as refused:
        client.audio.transcriptions.create(model="sphinx-en", file=("long.wav", long_audio))
    assert refused.value.status_code == 413
    error = error_of(refused.value)
    assert error["code"] == "audio_too_long" and "type=transcription" in error["message"]
    submitted = httpx.post(
        f"{gateway.url}/v1/jobs",
        data={"type": "transcription", "options": '{"model": "sphinx-en", "response_format": "srt"}'},
        files={"file": ("long.wav", long_audio, "audio/wav")},
        timeout=30,
    )
    assert submitted.status_code == 202, submitted.text

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{gateway.url}/v1/jobs/{submitted.json()['id']}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(done, "the transcription job", within_s=120)
    assert job["status"] == "succeeded", job
    assert job["usage"]["audio_seconds"] > SYNC_MAX_S
    result = httpx.get(f"{gateway.url}{job['result_url']}", timeout=10).json()["result"]
    assert wer(reference, result["text"]) <= 0.4, result["text"]
    assert result["model"] == "sphinx-en" and result["segments"] and "-->" in result["srt"]
    ((_, route, status),) = rows(
        gateway, "SELECT request_id, route, status FROM usage_logs WHERE request_id = ?", f"job-{job['id']}"
    )
    assert (route, status) == ("jobs.transcription", "ok")


def test_a_job_on_the_openai_compatible_server(gateway: GatewayProcess, upstream: FakeTranscriber) -> None:
    submitted = httpx.post(
        f"{gateway.url}/v1/jobs",
        data={"type": "transcription", "options": '{"model": "whisper-fake", "language": "ko"}'},
        files={"file": ("call.ogg", encode(silence(12), "OGG"), "audio/ogg")},
        timeout=30,
    )
    assert submitted.status_code == 202, submitted.text

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{gateway.url}/v1/jobs/{submitted.json()['id']}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_until(done, "the relayed transcription job", within_s=60)
    assert job["status"] == "succeeded", job
    assert upstream.seen[-1].fields["response_format"] == ["verbose_json"]
    assert upstream.seen[-1].fields["language"] == ["ko"]


def truncated_wav(wav: bytes) -> bytes:
    return wav[: len(wav) // 2]


def test_bad_input_is_a_clear_4xx(
    client: openai.OpenAI, gateway: GatewayProcess, english: tuple[str, bytes]
) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.txt", "not audio")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"model": "sphinx-en", "file": ("voice.wav", zipped.getvalue())}, 415, "content_mismatch"),
        ({"model": "sphinx-en", "file": ("voice.wav", truncated_wav(english[1]))}, 400, "invalid_audio"),
        (
            {"model": "sphinx-en", "file": ("voice.mp3", b"\xff\xfb\x90\x00" + b"\x00" * 4000)},
            400,
            "invalid_audio",
        ),
        (
            {"model": "sphinx-en", "file": ("voice.flac", encode_flac(english[1])[:3000])},
            400,
            "invalid_audio",
        ),
        ({"model": "sphinx-en", "file": ("empty.wav", b"")}, 400, "invalid_audio"),
        ({"model": "no-such-model", "file": ("voice.wav", english[1])}, 404, "model_not_found"),
        ({"model": "mock-fast", "file": ("voice.wav", english[1])}, 404, "model_not_found"),
        (
            {"model": "sphinx-en", "file": ("voice.wav", english[1]), "language": "ko"},
            400,
            "unsupported_language",
        ),
        ({"model": "sphinx-en", "file": ("voice.wav", english[1]), "temperature": 3}, 400, "invalid_value"),
        (
            {"model": "sphinx-en", "file": ("big.wav", encode(silence(14, 44100), "WAV", 44100, "FLOAT"))},
            413,
            "payload_too_large",
        ),
    ]
    before = rows(gateway, "SELECT count(*) FROM audio_usage")[0][0]
    for kwargs, status, code in cases:
        with pytest.raises(openai.APIStatusError) as caught:
            client.audio.transcriptions.create(**kwargs)
        assert caught.value.status_code == status, (kwargs.get("file", ("",))[0], caught.value.response.text)
        got = error_of(caught.value)["code"]
        assert code == "payload_too_large" or got == code, (kwargs.get("file", ("",))[0], got)
    bad_format = httpx.post(
        f"{gateway.url}/v1/audio/transcriptions",
        data={"model": "sphinx-en", "response_format": "mp3"},
        files={"file": ("voice.wav", english[1], "audio/wav")},
        timeout=30,
    )
    assert bad_format.status_code == 400 and bad_format.json()["error"]["param"] == "response_format"
    not_multipart = httpx.post(
        f"{gateway.url}/v1/audio/transcriptions", json={"model": "sphinx-en"}, timeout=10
    )
    assert not_multipart.status_code == 400
    job_zip = httpx.post(
        f"{gateway.url}/v1/jobs",
        data={"type": "transcription"},
        files={"file": ("voice.wav", zipped.getvalue(), "audio/wav")},
        timeout=10,
    )
    assert job_zip.status_code == 415, job_zip.text
    assert rows(gateway, "SELECT count(*) FROM audio_usage")[0][0] == before  # nothing charged
    assert not list((gateway.config_path.parent / "uploads" / "audio").glob("*"))  # nothing left on disk


def test_the_daily_audio_quota(
    client: openai.OpenAI, gateway: GatewayProcess, english: tuple[str, bytes]
) -> None:
    used = rows(gateway, "SELECT coalesce(sum(seconds), 0) FROM audio_usage")[0][0]
    too_long = httpx.post(
        f"{gateway.url}/v1/jobs",
        data={"type": "transcription", "options": '{"model": "whisper-fake"}'},
        files={"file": ("day.flac", encode(silence(QUOTA_S - used + 1), "FLAC"), "audio/flac")},
        timeout=30,
    )
    assert too_long.status_code == 429 and too_long.json()["error"]["code"] == "audio_quota_exceeded"
    filler = httpx.post(  # fill the day up to 1 s short of the quota
        f"{gateway.url}/v1/jobs",
        data={"type": "transcription", "options": '{"model": "whisper-fake"}'},
        files={"file": ("day.flac", encode(silence(QUOTA_S - used - 1), "FLAC"), "audio/flac")},
        timeout=30,
    )
    assert filler.status_code == 202, filler.text
    with pytest.raises(openai.RateLimitError) as exceeded:
        client.audio.transcriptions.create(model="whisper-fake", file=("memo.wav", english[1]))
    error = error_of(exceeded.value)
    assert error["code"] == "audio_quota_exceeded" and error["type"] == "insufficient_quota"
