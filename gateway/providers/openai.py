"""OpenAI and any OpenAI-compatible server through ``langchain-openai`` (``client: langchain``).

All models share one aiohttp-backed HTTP client owned by the lifespan (measured
~9x the throughput of httpx's default transport here). LangChain's own retries
are off: the graph owns retries, fallbacks and deadlines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from gateway.errors import (
    ProviderBadResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    UnsupportedParameter,
)
from gateway.providers.base import Choice, Completion, Delta, ModelCall, Provider, Usage
from gateway.providers.lc_messages import (
    StreamTally,
    openai_tool_calls,
    relay_chunks,
    text_of,
    to_langchain,
    usage_of,
)
from gateway.providers.tokens import count_messages, count_text
from gateway.providers.upstream_errors import error_for_status
from gateway.schemas.openai import SAMPLING_FIELDS

_IN_EXTRA_BODY = ("n", "stop", "response_format", "max_tokens")
_FORWARDED = tuple(field for field in SAMPLING_FIELDS if field not in _IN_EXTRA_BODY)
"""ChatOpenAI call kwargs; ``stop`` is its own argument, ``response_format`` and ``max_tokens`` ride in
``extra_body`` (as kwargs, LangChain would switch to its ``parse`` helper, or rename ``max_tokens`` to
``max_completion_tokens``)."""


def translate_openai_error(exc: Exception, *, target: str) -> ProviderError:
    """Map an ``openai`` SDK exception to the gateway's provider errors."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(f"{target}: upstream timed out", target=target)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailable(f"{target}: cannot connect to upstream", target=target)
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {"message": exc.message}
        return error_for_status(exc.status_code, body, target=target, headers=exc.response.headers)
    return ProviderBadResponse(f"{target}: unexpected upstream failure ({type(exc).__name__})", target=target)


def forwarded_params(params: dict[str, Any]) -> tuple[list[str] | None, dict[str, Any]]:
    """Split ``stop`` (its own argument in LangChain) from the payload kwargs.

    ``response_format`` and unknown client fields travel in ``extra_body``: given as a kwarg,
    LangChain switches to the SDK's ``parse`` helper, which rejects non-strict tools and parses the
    answer itself; the gateway relays the upstream's JSON untouched instead."""
    if int(params.get("n") or 1) != 1:
        raise UnsupportedParameter(
            "n > 1 is not supported for this model; send n separate requests", param="n"
        )
    stop = params.get("stop")
    stop_list = [stop] if isinstance(stop, str) else stop
    kwargs = {key: params[key] for key in _FORWARDED if params.get(key) is not None}
    extra = dict(params.get("extra") or {})
    for key in ("response_format", "max_tokens"):
        if params.get(key) is not None:
            extra[key] = params[key]
    if extra:
        kwargs["extra_body"] = extra
    return stop_list, kwargs


class OpenAIProvider(Provider):
    kind = "openai"

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        http_client: Any,
        is_local: bool,
        timeout_s: float,
        connect_s: float,
    ) -> None:
        super().__init__(name=name, is_local=is_local)
        self.base_url = base_url
        self._client = http_client
        self._models: dict[str, ChatOpenAI] = {}
        self._api_key = SecretStr(api_key or "not-needed")
        self._timeout = openai.Timeout(timeout_s, connect=connect_s)

    def _model(self, model: str) -> ChatOpenAI:
        chat = self._models.get(model)
        if chat is None:
            chat = ChatOpenAI(
                model=model,
                base_url=self.base_url,
                api_key=self._api_key,
                max_retries=0,
                timeout=self._timeout,
                http_async_client=self._client,
                stream_usage=True,
            )
            self._models[model] = chat
        return chat

    async def complete(self, call: ModelCall) -> Completion:
        stop, kwargs = forwarded_params(call.params)
        if call.headers:
            kwargs["extra_headers"] = call.headers  # W3C traceparent for the upstream's own traces
        try:
            message = await self._model(call.model).ainvoke(
                to_langchain(call.messages, openai_wire=True), stop=stop, **kwargs
            )
        except openai.OpenAIError as exc:
            raise translate_openai_error(exc, target=self.name) from exc
        if not isinstance(message, AIMessage):
            raise ProviderBadResponse(f"{self.name}: unexpected message type", target=self.name)
        content = text_of(message.content)
        finish = str(message.response_metadata.get("finish_reason") or "stop")
        usage = usage_of(message) or Usage(
            prompt_tokens=count_messages(call.messages), completion_tokens=count_text(content)
        )
        tool_calls = openai_tool_calls(message)
        served = str(message.response_metadata.get("model_name") or call.model)
        choice = Choice(
            index=0,
            content=content if not tool_calls or content else None,
            finish_reason=finish,
            tool_calls=tool_calls,
        )
        return Completion(model=served, choices=[choice], usage=usage)

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        stop, kwargs = forwarded_params(call.params)
        if call.headers:
            kwargs["extra_headers"] = call.headers  # W3C traceparent for the upstream's own traces
        tally = StreamTally(finish_key="finish_reason")
        stream = self._model(call.model).astream(
            to_langchain(call.messages, openai_wire=True), stop=stop, **kwargs
        )
        try:
            async for delta in relay_chunks(stream, tally):
                yield delta
        except openai.OpenAIError as exc:
            raise translate_openai_error(exc, target=self.name) from exc
        if tally.finish is None:
            raise ProviderUnavailable(f"{self.name}: stream ended without a finish reason", target=self.name)
        usage = tally.usage or Usage(
            prompt_tokens=count_messages(call.messages), completion_tokens=tally.relayed
        )
        yield Delta(finish_reason=str(tally.finish), usage=usage)

    async def list_models(self) -> list[str]:
        return sorted(self._models)
