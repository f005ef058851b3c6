"""Builds the provider for every configured model, sharing one HTTP client per kind.

The LangChain-based adapters (Ollama, ``client: langchain``) are imported when a model needs them:
``langchain-openai`` and the ``openai`` SDK cost ~50 MB of RSS per worker that the wire client does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.routing import ModelConfig, RoutingConfig
from gateway.providers.base import Provider
from gateway.providers.http import UpstreamClients
from gateway.providers.mock import MockProvider
from gateway.providers.openai_wire import OpenAIWireProvider
from gateway.providers.transport import EndpointFactory

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"


@dataclass(frozen=True, slots=True)
class Target:
    """A configured model ready to call: its config, its provider and its upstream model id."""

    name: str
    config: ModelConfig
    provider: Provider

    @property
    def upstream_model(self) -> str:
        return self.config.model or self.name


def build_targets(
    config: RoutingConfig, *, clients: UpstreamClients | None, env: Mapping[str, str]
) -> dict[str, Target]:
    """One provider per configured model. Models whose ``enabled_if_env`` is unset are left out."""
    targets: dict[str, Target] = {}
    endpoints = EndpointFactory(env)
    for name, model in config.models.items():
        if model.enabled_if_env and not env.get(model.enabled_if_env):
            continue
        provider = _provider(name, model, clients, env, endpoints)
        targets[name] = Target(name=name, config=model, provider=provider)
    return targets


def _provider(
    name: str,
    model: ModelConfig,
    clients: UpstreamClients | None,
    env: Mapping[str, str],
    endpoints: EndpointFactory,
) -> Provider:
    if model.provider == "mock":
        return MockProvider(name=name, settings=model.mock)
    if model.provider == "ollama":
        from gateway.providers.ollama import OllamaProvider  # LangChain loads only when configured

        return OllamaProvider(
            name=name, base_url=model.base_url or DEFAULT_OLLAMA_URL, timeout_s=model.timeouts.total_s
        )
    if clients is None:
        raise ValueError(f"model {name!r} needs an HTTP client for provider {model.provider!r}")
    api_key = env.get(model.api_key_env) if model.api_key_env else None
    if model.provider == "anthropic":
        from gateway.providers.anthropic import AnthropicProvider

        anthropic_url = model.base_url or DEFAULT_ANTHROPIC_URL
        return AnthropicProvider(
            name=name,
            base_url=anthropic_url,
            api_key=api_key,
            http=clients.wire,
            is_local=model.local if model.local is not None else _is_loopback(anthropic_url),
            timeout_s=model.timeouts.total_s,
            connect_s=model.timeouts.connect_s,
            max_output_tokens=model.max_output_tokens,
            endpoints=endpoints,
            transport=model.http,
        )
    base_url = model.base_url or DEFAULT_OPENAI_URL
    is_local = model.local if model.local is not None else _is_loopback(base_url)
    if model.client == "langchain":
        from gateway.providers.openai import OpenAIProvider  # LangChain loads only when configured

        return OpenAIProvider(
            name=name,
            base_url=base_url,
            api_key=api_key,
            http_client=clients.openai_client,
            is_local=is_local,
            timeout_s=model.timeouts.total_s,
            connect_s=model.timeouts.connect_s,
        )
    return OpenAIWireProvider(
        name=name,
        base_url=base_url,
        api_key=api_key,
        http=clients.wire,
        is_local=is_local,
        timeout_s=model.timeouts.total_s,
        connect_s=model.timeouts.connect_s,
        endpoints=endpoints,
        transport=model.http,
    )


def _is_loopback(url: str) -> bool:
    return any(host in url for host in ("://127.", "://localhost", "://[::1]"))
