"""OpenAI Responses API, response side: chat completion answers → response objects and output items.

Pure functions shared by the JSON path and the stream translator (``responses_stream.py``). Ids:
the response is ``resp_<request id>`` (the server-minted id that keys the usage record), its
message item ``msg_<request id>``, function calls ``fc_<request id>_<n>`` with the model's own
``call_id``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gateway.schemas.responses_api import ResponsesRequest

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def call_item_id(request_id: str, index: int) -> str:
    return f"fc_{request_id}_{index}"


def usage_of(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat ``usage`` → Responses ``usage`` (input/output/total tokens and their details)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def annotations_of(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chat ``annotations`` (``url_citation`` objects) in the Responses' flat shape."""
    out = []
    for annotation in message.get("annotations") or ():
        if isinstance(annotation, Mapping) and annotation.get("type") == "url_citation":
            out.append({"type": "url_citation", **dict(annotation.get("url_citation") or {})})
    return out


def logprobs_of(choice: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = (
        (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), Mapping) else None
    )
    return [
        {
            "token": entry.get("token"),
            "bytes": entry.get("bytes") or [],
            "logprob": entry.get("logprob"),
            "top_logprobs": entry.get("top_logprobs") or [],
        }
        for entry in content or ()
        if isinstance(entry, Mapping)
    ]


def text_part(
    text: str, *, annotations: list[dict[str, Any]] | None = None, logprobs: Any = None
) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": logprobs or []}


def message_item(request_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def call_item(
    request_id: str, index: int, call: Mapping[str, Any], status: str = "completed"
) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": call_item_id(request_id, index),
        "type": "function_call",
        "status": status,
        "call_id": call.get("id") or call_item_id(request_id, index),
        "name": function.get("name") or "",
        "arguments": function.get("arguments") or "",
    }


def output_items(request_id: str, choice: Mapping[str, Any], status: str) -> list[dict[str, Any]]:
    """The output items of one chat choice: a message (text and/or refusal), then function calls."""
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append(text_part(text, annotations=annotations_of(message), logprobs=logprobs_of(choice)))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        content.append({"type": "refusal", "refusal": message["refusal"]})
    items = [message_item(request_id, content, status)] if content else []
    first = len(items)  # function-call item ids carry their output index, as in the stream
    items += [
        call_item(request_id, first + i, call) for i, call in enumerate(message.get("tool_calls") or ())
    ]
    return items


def failure_detail(error: dict[str, Any]) -> dict[str, Any]:
    """A chat error frame → a response's ``error``, whose ``code`` is one of the Responses API's
    (``rate_limit_exceeded``, ``invalid_prompt``, ``server_error``); Prism's own code stays in the
    message."""
    code = str(error.get("code") or error.get("type") or "server_error")
    if "rate_limit" in code:
        kind = "rate_limit_exceeded"
    elif error.get("type") == "invalid_request_error":
        kind = "invalid_prompt"
    else:
        kind = "server_error"
    message = str(error.get("message") or "")
    return {"code": kind, "message": message if code == kind else f"{message} (code: {code})"}


def status_of(finish_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(
    request: ResponsesRequest,
    *,
    request_id: str,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    created_at: int | None = None,
    incomplete: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object; ``created_at`` is fixed by the caller for every event of a stream."""
    now = int(time.time())
    body: dict[str, Any] = {
        "id": response_id(request_id),
        "object": "response",
        "created_at": created_at if created_at is not None else now,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": request.instructions,
        "max_output_tokens": request.echo.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.echo.get("parallel_tool_calls", True),
        "previous_response_id": request.previous_response_id,
        "reasoning": request.echo.get("reasoning"),
        "store": request.store,
        "temperature": request.echo.get("temperature"),
        "text": request.echo.get("text"),
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_p": request.echo.get("top_p"),
        "truncation": request.truncation,
        "usage": usage,
        "user": request.echo.get("user"),
        "metadata": request.metadata,
    }
    if status in ("completed", "incomplete", "failed"):
        body["completed_at"] = now if status == "completed" else None
    for key in ("service_tier", "prompt_cache_key", "safety_identifier", "top_logprobs", "max_tool_calls"):
        if key in request.echo:
            body[key] = request.echo[key]
    return body


def from_chat_completion(
    request: ResponsesRequest, *, request_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """A chat completion body → the finished response object."""
    choices = body.get("choices") or [{}]
    choice = choices[0]
    status, incomplete = status_of(choice.get("finish_reason"))
    response = response_object(
        request,
        request_id=request_id,
        model=str(body.get("model") or request.model),
        status=status,
        output=output_items(request_id, choice, status),
        usage=usage_of(body.get("usage")),
        incomplete=incomplete,
    )
    if body.get("service_tier") is not None:  # the tier the upstream actually used
        response["service_tier"] = body["service_tier"]
    return response


def history_messages(output: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A response's output items as the chat message a continuation replays (``previous_response_id``)."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    for item in output:
        if item.get("type") == "message":
            parts = item.get("content") or []
            message["content"] = "".join(p.get("text", "") for p in parts if p.get("type") == "output_text")
            refusal = "".join(p.get("refusal", "") for p in parts if p.get("type") == "refusal")
            if refusal:
                message["refusal"] = refusal
        elif item.get("type") == "function_call":
            message.setdefault("tool_calls", []).append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
    if message["content"] is None and "tool_calls" not in message and "refusal" not in message:
        message["content"] = ""
    return [message]
