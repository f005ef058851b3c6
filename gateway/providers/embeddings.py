"""The embedding provider interface, its normalised types, and the registry of configured models.

An ``EmbeddingProvider`` turns an ``EmbeddingCall`` (one batch of inputs for one upstream model) into
``Embeddings`` (one float vector per input, in order, and the input tokens the upstream counted).
Vendor failures become the ``ProviderError`` branch of ``gateway.errors`` at this edge, as for chat.
Vectors are plain ``list[float]``: values an upstream sent as JSON numbers reach the client unchanged,
and base64 (little-endian float32) is decoded to the same numbers it encodes
(``gateway/schemas/embeddings.py``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.config.embeddings import LOCAL_MODELS, EmbeddingModelConfig, EmbeddingTimeouts
from gateway.providers.http import UpstreamClients
from gateway.providers.transport import EndpointFactory, is_loopback

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"

Inputs = list[str] | list[list[int]]


@dataclass(slots=True)
class EmbeddingCall:
    model: str
    """The upstream model id."""
    inputs: Inputs
    """Texts, or token id arrays (only to providers with ``accepts_token_arrays``)."""
    dimensions: int | None = None
    encoding_format: str | None = None
    """What the client asked for, forwarded as is to OpenAI-compatible upstreams (the answer is
    decoded either way)."""
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown request fields, forwarded to OpenAI-compatible upstreams."""
    headers: dict[str, str] = field(default_factory=dict)
    """``traceparent`` for the upstream's own traces."""
    single: bool = False
    """The client sent one input unwrapped (a string or a flat token array): sent upstream so."""


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int | None
    """As counted by the upstream; ``None`` when it did not say."""
    model: str | None = None
    """The model the upstream named in its answer."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Top-level fields of the answer beyond OpenAI's (``object``, ``data``, ``model``, ``usage``)."""


class EmbeddingProvider(abc.ABC):
    kind: str = "base"
    accepts_token_arrays: bool = False

    def __init__(self, *, name: str, is_local: bool, supports_dimensions: bool) -> None:
        self.name = name
        self.is_local = is_local
        self.supports_dimensions = supports_dimensions

    @property
    def native_dimensions(self) -> int | None:
        """The vector size when fixed (a request for another size is refused), else ``None``."""
        return None

    @abc.abstractmethod
    async def embed(self, call: EmbeddingCall) -> Embeddings: ...

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class EmbeddingTarget:
    name: str
    config: EmbeddingModelConfig
    provider: EmbeddingProvider

    @property
    def upstream_model(self) -> str:
        if self.config.provider == "local":
            return self.config.model or LOCAL_MODELS[0]
        return self.config.model or self.name


def build_embedding_targets(
    models: Mapping[str, EmbeddingModelConfig], *, clients: UpstreamClients, env: Mapping[str, str]
) -> dict[str, EmbeddingTarget]:
    """One provider per configured embedding model; those whose ``enabled_if_env`` is unset are left out."""
    targets: dict[str, EmbeddingTarget] = {}
    endpoints = EndpointFactory(env)
    for name, config in models.items():
        if config.enabled_if_env and not env.get(config.enabled_if_env):
            continue
        targets[name] = EmbeddingTarget(
            name=name, config=config, provider=_provider(name, config, clients, env, endpoints)
        )
    return targets


def _provider(
    name: str,
    config: EmbeddingModelConfig,
    clients: UpstreamClients,
    env: Mapping[str, str],
    endpoints: EndpointFactory,
) -> EmbeddingProvider:
    if config.provider == "local":
        from gateway.providers.embeddings_local import LocalEmbeddings

        return LocalEmbeddings(name=name)
    from gateway.providers.embeddings_http import OllamaEmbeddings, OpenAIEmbeddings

    default_url = DEFAULT_OLLAMA_URL if config.provider == "ollama" else DEFAULT_OPENAI_URL
    base_url = (config.base_url or default_url).rstrip("/")
    is_local = config.local if config.local is not None else _loopback(base_url)
    timeouts: EmbeddingTimeouts = config.timeouts
    if config.provider == "ollama":
        return OllamaEmbeddings(
            name=name,
            endpoint=endpoints.endpoint(base_url + "/api/embed", config.http),
            http=clients.wire,
            is_local=is_local,
            timeouts=timeouts,
            supports_dimensions=bool(config.supports_dimensions),
        )
    api_key = env.get(config.api_key_env) if config.api_key_env else None
    return OpenAIEmbeddings(
        name=name,
        endpoint=endpoints.endpoint(base_url + "/embeddings", config.http),
        api_key=api_key,
        http=clients.wire,
        is_local=is_local,
        timeouts=timeouts,
        supports_dimensions=config.supports_dimensions is not False,
    )


def _loopback(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")
