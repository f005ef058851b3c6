"""Pure mappings between OpenAI wire messages and LangChain messages, both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from gateway.errors import InvalidRequest
from gateway.providers.base import Delta, Usage, aclose_quietly
from gateway.providers.tokens import count_text


def _content(message: Mapping[str, Any]) -> str | list[str | dict[Any, Any]]:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return [dict(part) for part in content]


def to_langchain(messages: Sequence[Mapping[str, Any]], *, openai_wire: bool = False) -> list[BaseMessage]:
    """OpenAI chat messages → LangChain messages, keeping names, tool calls and tool results.

    ``openai_wire`` (for langchain-openai): ``developer`` stays ``developer`` and an assistant's tool
    calls keep their arguments byte for byte (langchain-openai re-serialises parsed ones)."""
    converted: list[BaseMessage] = []
    for message in messages:
        role = message.get("role")
        name = message.get("name")
        if role == "developer" and openai_wire:
            converted.append(
                SystemMessage(
                    content=_content(message), name=name, additional_kwargs={"__openai_role__": "developer"}
                )
            )
        elif role in ("system", "developer"):
            converted.append(SystemMessage(content=_content(message), name=name))
        elif role == "user":
            converted.append(HumanMessage(content=_content(message), name=name))
        elif role == "assistant" and openai_wire and message.get("tool_calls"):
            raw_calls = [dict(call) for call in message["tool_calls"]]
            ai = AIMessage(content=_content(message), name=name, additional_kwargs={"tool_calls": raw_calls})
            # AIMessage parses these into ``tool_calls``, which langchain-openai would re-serialise;
            # without them it sends ``additional_kwargs['tool_calls']`` as they are
            ai.tool_calls = []
            ai.invalid_tool_calls = []
            converted.append(ai)
        elif role == "assistant":
            tool_calls = []
            for call in message.get("tool_calls") or ():
                function = call["function"]
                try:
                    args = orjson.loads(function.get("arguments") or "{}")
                except orjson.JSONDecodeError as exc:
                    raise InvalidRequest(
                        "tool_calls[].function.arguments must be a JSON object string", param="messages"
                    ) from exc
                tool_calls.append(
                    {"id": call["id"], "name": function["name"], "args": args, "type": "tool_call"}
                )
            converted.append(AIMessage(content=_content(message), name=name, tool_calls=tool_calls))
        elif role == "tool":
            converted.append(
                ToolMessage(content=_content(message), tool_call_id=message.get("tool_call_id") or "")
            )
        else:
            raise InvalidRequest(f"unsupported message role {role!r}", param="messages")
    return converted


def openai_tool_calls(message: AIMessage) -> list[dict[str, Any]] | None:
    if not message.tool_calls:
        return None
    return [
        {
            "id": call.get("id") or f"call_{index}",
            "type": "function",
            "function": {"name": call["name"], "arguments": orjson.dumps(call["args"]).decode()},
        }
        for index, call in enumerate(message.tool_calls)
    ]


def tool_call_deltas(chunk: AIMessageChunk) -> list[dict[str, Any]] | None:
    if not chunk.tool_call_chunks:
        return None
    deltas = []
    for position, part in enumerate(chunk.tool_call_chunks):
        delta: dict[str, Any] = {"index": part.get("index") if part.get("index") is not None else position}
        if part.get("id"):
            delta["id"] = part["id"]
            delta["type"] = "function"
        function: dict[str, Any] = {}
        if part.get("name"):
            function["name"] = part["name"]
        if part.get("args") is not None:
            function["arguments"] = part["args"]
        delta["function"] = function
        deltas.append(delta)
    return deltas


def text_of(content: str | list[str | dict[Any, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content)


def usage_of(message: AIMessage | AIMessageChunk) -> Usage | None:
    meta = message.usage_metadata
    if not meta:
        return None
    input_details = meta.get("input_token_details") or {}
    output_details = meta.get("output_token_details") or {}
    return Usage(
        prompt_tokens=int(meta.get("input_tokens", 0)),
        completion_tokens=int(meta.get("output_tokens", 0)),
        cached_tokens=int(input_details.get("cache_read", 0) or 0),
        reasoning_tokens=int(output_details.get("reasoning", 0) or 0),
    )


@dataclass(slots=True)
class StreamTally:
    """What a relayed LangChain stream reported along the way: usage, finish reason, tokens relayed."""

    finish_key: str
    usage: Usage | None = None
    finish: str | None = None
    relayed: int = 0
    saw_tool_calls: bool = False


async def relay_chunks(stream: AsyncIterator[Any], tally: StreamTally) -> AsyncIterator[Delta]:
    """LangChain message chunks → deltas (text and tool call pieces), filling ``tally``; the
    upstream stream is closed however the relay ends."""
    iterator = stream.__aiter__()
    try:
        async for part in iterator:
            if not isinstance(part, AIMessageChunk):
                continue
            tally.usage = usage_of(part) or tally.usage
            tally.finish = part.response_metadata.get(tally.finish_key) or tally.finish
            text = text_of(part.content)
            deltas = tool_call_deltas(part)
            tally.saw_tool_calls = tally.saw_tool_calls or bool(deltas)
            if text or deltas:
                tally.relayed += count_text(text)
                yield Delta(content=text or None, tool_calls=deltas)
    finally:
        await aclose_quietly(iterator)
