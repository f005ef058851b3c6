"""Local models served by Ollama, through ``langchain-ollama``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama
from langchain_core.messages import AIMessage
from langchain_ollama import ChatOllama

from gateway.errors import (
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
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

_UNSUPPORTED = ("logit_bias", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty")


def translate_ollama_error(exc: Exception, *, target: str) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{target}: Ollama timed out", target=target)
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return ProviderUnavailable(f"{target}: cannot connect to Ollama", target=target)
    if isinstance(exc, ollama.ResponseError):
        status = exc.status_code
        if status == 429:
            return ProviderRateLimited(f"{target}: Ollama is busy", target=target, upstream_status=status)
        if status >= 500:
            return ProviderUnavailable(
                f"{target}: Ollama returned {status}", target=target, upstream_status=status
            )
        return ProviderRejected(
            f"{target}: Ollama rejected the request: {exc.error}"[:500], target=target, upstream_status=status
        )
    return ProviderBadResponse(f"{target}: unexpected Ollama failure ({type(exc).__name__})", target=target)


def ollama_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """OpenAI parameters → ChatOllama call kwargs (``options`` plus tools and format)."""
    for key in _UNSUPPORTED:
        if params.get(key) is not None:
            raise UnsupportedParameter(f"{key} is not supported by Ollama models", param=key)
    if int(params.get("n") or 1) != 1:
        raise UnsupportedParameter("n > 1 is not supported by Ollama models", param="n")
    options: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed")):
        if params.get(ours) is not None:
            options[theirs] = params[ours]
    limit = params.get("max_completion_tokens") or params.get("max_tokens")
    if limit is not None:
        options["num_predict"] = limit
    stop = params.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else stop
    kwargs: dict[str, Any] = {"options": options}
    if params.get("tools"):
        kwargs["tools"] = params["tools"]
    response_format = params.get("response_format")
    if response_format:
        if response_format.get("type") == "json_object":
            kwargs["format"] = "json"
        elif response_format.get("type") == "json_schema":
            kwargs["format"] = (response_format.get("json_schema") or {}).get("schema") or "json"
    return kwargs


class OllamaProvider(Provider):
    kind = "ollama"

    def __init__(self, *, name: str, base_url: str, timeout_s: float) -> None:
        super().__init__(name=name, is_local=True)
        self.base_url = base_url
        self._timeout_s = timeout_s
        self._models: dict[str, ChatOllama] = {}
        self._client = ollama.AsyncClient(host=base_url, timeout=timeout_s)

    def _model(self, model: str) -> ChatOllama:
        chat = self._models.get(model)
        if chat is None:
            chat = ChatOllama(model=model, base_url=self.base_url, client_kwargs={"timeout": self._timeout_s})
            self._models[model] = chat
        return chat

    async def complete(self, call: ModelCall) -> Completion:
        kwargs = ollama_kwargs(call.params)
        try:
            message = await self._model(call.model).ainvoke(to_langchain(call.messages), **kwargs)
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise translate_ollama_error(exc, target=self.name) from exc
        if not isinstance(message, AIMessage):
            raise ProviderBadResponse(f"{self.name}: unexpected message type", target=self.name)
        content = text_of(message.content)
        tool_calls = openai_tool_calls(message)
        finish = "tool_calls" if tool_calls else _finish(message.response_metadata.get("done_reason"))
        usage = usage_of(message) or Usage(
            prompt_tokens=count_messages(call.messages), completion_tokens=count_text(content)
        )
        choice = Choice(
            index=0,
            content=content or (None if tool_calls else ""),
            finish_reason=finish,
            tool_calls=tool_calls,
        )
        return Completion(model=call.model, choices=[choice], usage=usage)

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        kwargs = ollama_kwargs(call.params)
        tally = StreamTally(finish_key="done_reason")
        stream = self._model(call.model).astream(to_langchain(call.messages), **kwargs)
        try:
            async for delta in relay_chunks(stream, tally):
                yield delta
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
            raise translate_ollama_error(exc, target=self.name) from exc
        if tally.finish is None and tally.usage is None:
            raise ProviderUnavailable(f"{self.name}: Ollama stream ended before done", target=self.name)
        finish = "tool_calls" if tally.saw_tool_calls else _finish(tally.finish)
        usage = tally.usage or Usage(
            prompt_tokens=count_messages(call.messages), completion_tokens=tally.relayed
        )
        yield Delta(finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        """Close the HTTP pools of the status client and of every per-model chat client."""
        for chat in self._models.values():
            await chat._async_client.close()  # type: ignore[no-untyped-call]
            chat._client._client.close()
        self._models.clear()
        await self._client.close()  # type: ignore[no-untyped-call]

    async def list_models(self) -> list[str]:
        try:
            listing = await self._client.list()
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError):
            return []
        return [str(model.model) for model in listing.models if model.model]

    async def health(self) -> bool:
        try:
            await self._client.list()
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError):
            return False
        return True


def _finish(done_reason: Any) -> str:
    return "length" if done_reason == "length" else "stop"
