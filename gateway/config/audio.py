"""Speech-to-text models of the routing config (``audio:`` in ``prism.yaml``, docs/audio.md).

Like ``embeddings:``, they live beside ``models:``: a transcription model never answers a chat
request and a chat model never answers ``/v1/audio/transcriptions``. Prices are US dollars per
minute of audio (how transcription is billed).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AudioProviderKind = Literal["openai", "local"]
"""``openai``: any OpenAI-compatible ``/v1/audio/transcriptions`` server (faster-whisper-server,
Speaches, vLLM, OpenAI); ``local``: the offline PocketSphinx engine in-process (English only)."""

LOCAL_ENGINES = ("pocketsphinx-en-us",)


class TranscriptionModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: AudioProviderKind
    model: str | None = None
    """The upstream model id (``local``: one of ``LOCAL_ENGINES``); defaults to the config key."""
    base_url: str | None = None
    """``openai``: the server's ``/v1`` base URL (``http://127.0.0.1:8000/v1``)."""
    api_key_env: str | None = None
    enabled_if_env: str | None = None
    price_per_minute: float = Field(default=0.0, ge=0)
    languages: tuple[str, ...] = ()
    """ISO-639-1 codes the model transcribes (empty: any); another ``language`` is a 400."""
    timeout_s: float = Field(default=300.0, gt=0)
    """One upstream call."""
