"""Speech-to-text with authentication on (docs/audio.md): a request without a key is 401, a key's
``allowed_models`` applies to transcription models (403), and the daily audio quota is per key —
one key's spent day leaves another's untouched. Real gateway (SQLite), official ``openai`` SDK."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.audio_samples import PROBE, encode, espeak_available, join, speak
from tests.support.fake_transcriber import TRANSCRIPT, FakeTranscriber, running_fake_transcriber
from tests.support.gateway_proc import GatewayProcess, running_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng (Debian) makes the test speech")
PASSWORD = "amber-lantern-pebble-73"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, FakeTranscriber]]:
    tmp = tmp_path_factory.mktemp("audio-keys")
    with running_fake_transcriber() as upstream:
        config = (
            "models:\n  mock-fast: {provider: mock, tier: cheap}\n"
            f"audio:\n  whisper-fake: {{provider: openai, base_url: '{upstream.url}'}}\n"
            "  sphinx-en: {provider: local}\n"
        )
        env = {
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_JOBS_STORAGE_DIR": str(tmp / "uploads"),
            "GATEWAY_AUDIO_SECONDS_PER_DAY": "8",
        }
        with running_gateway(tmp, config=config, env=env, ready_timeout=180.0) as gw:
            yield gw, upstream


def new_key(gw: GatewayProcess, **body: object) -> str:
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        email = f"stt-{uuid.uuid4().hex[:8]}@example.com"
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 202
        token = http.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
        created = http.post(
            "/api/keys", json={"name": "stt", **body}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code in (200, 201), created.text
        return str(created.json()["key"])


def test_keys_allow_lists_and_per_key_audio_quota(setup: tuple[GatewayProcess, FakeTranscriber]) -> None:
    gw, _ = setup
    audio = encode(join([speak(PROBE)]))  # ~5 s: one fits the 8 s day, two do not
    limited = openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=new_key(gw, allowed_models=["whisper-fake"]), max_retries=0
    )
    other = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=new_key(gw), max_retries=0)
    anonymous = httpx.post(
        f"{gw.url}/v1/audio/transcriptions",
        data={"model": "whisper-fake"},
        files={"file": ("a.wav", audio, "audio/wav")},
        timeout=30,
    )
    assert anonymous.status_code == 401
    with pytest.raises(openai.PermissionDeniedError) as denied:
        limited.audio.transcriptions.create(model="sphinx-en", file=("a.wav", audio))
    assert denied.value.response.json()["error"]["code"] == "model_not_allowed"
    assert limited.audio.transcriptions.create(model="whisper-fake", file=("a.wav", audio)).text == TRANSCRIPT
    with pytest.raises(openai.RateLimitError) as spent:
        limited.audio.transcriptions.create(model="whisper-fake", file=("a.wav", audio))
    assert spent.value.response.json()["error"]["code"] == "audio_quota_exceeded"
    assert other.audio.transcriptions.create(model="whisper-fake", file=("a.wav", audio)).text == TRANSCRIPT
    database = gw.config_path.parent / f"prism-{gw.port}.db"

    def charged() -> list[tuple[object, ...]] | None:
        with sqlite3.connect(database) as conn:
            found = conn.execute(
                "SELECT u.api_key_id, u.status, a.seconds FROM usage_logs u LEFT JOIN audio_usage a"
                " ON a.request_id = u.request_id WHERE u.route = 'audio.transcriptions' ORDER BY u.created_at"
            ).fetchall()
        return found if len(found) >= 4 else None

    rows = wait_until(charged, "usage rows of the keyed transcriptions", within_s=20)
    ok = [r for r in rows if r[1] == "ok"]
    assert len(ok) == 2 and ok[0][0] != ok[1][0] and all(r[2] and r[2] > 4 for r in ok)
    assert [r[1] for r in rows if r[0] == ok[0][0]].count("rejected") == 2  # 403 and 429, no seconds
