"""OpenAI Responses API ``input`` → chat messages, and the checks every Responses field uses.

Each refusal names the exact parameter the way OpenAI does (``input[2].content[0].image_url``).
"""

from __future__ import annotations

import math
from typing import Any

from gateway.errors import InvalidRequest, UnsupportedParameter

_ROLES = ("user", "assistant", "system", "developer")  # a tuple: `in` must not hash client values


def invalid(message: str, param: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def expect_string(value: Any, param: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise invalid(f"Invalid type for '{param}': expected a string, but got {type_name(value)}.", param)
    if not empty and not value:
        raise invalid(f"Invalid '{param}': empty string.", param, "empty_string")
    return value


def expect_object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"Invalid type for '{param}': expected an object, but got {type_name(value)}.", param)
    return value


def expect_array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"Invalid type for '{param}': expected an array, but got {type_name(value)}.", param)
    return value


def expect_number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"Invalid type for '{param}': expected a number, but got {type_name(value)}.", param)
    if not low <= value <= high:
        raise invalid(f"Invalid '{param}': {value} is outside [{low:g}, {high:g}].", param, "invalid_value")
    return float(value)


def expect_integer(value: Any, param: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"Invalid type for '{param}': expected an integer, but got {type_name(value)}.", param)
    if value < low:
        raise invalid(
            f"Invalid '{param}': integer below minimum value {low}.", param, "integer_below_min_value"
        )
    return value


def expect_boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"Invalid type for '{param}': expected a boolean, but got {type_name(value)}.", param)
    return value


def _part(part: Any, param: str, role: str) -> dict[str, Any]:
    part = expect_object(part, param)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": expect_string(part.get("text"), f"{param}.text")}
    if kind == "refusal":
        return {"type": "refusal", "refusal": expect_string(part.get("refusal"), f"{param}.refusal")}
    if kind == "input_image":
        if role not in ("user", "system", "developer"):
            raise invalid(f"Invalid '{param}': images are only allowed in user messages.", f"{param}.type")
        url = part.get("image_url")
        if url is None:
            raise UnsupportedParameter(
                f"'{param}': images by file_id are not supported; send image_url (a URL or a data URL).",
                param=f"{param}.file_id" if part.get("file_id") is not None else f"{param}.image_url",
            )
        image: dict[str, Any] = {"url": expect_string(url, f"{param}.image_url", empty=False)}
        if part.get("detail") is not None:
            detail = expect_string(part["detail"], f"{param}.detail")
            if detail not in ("auto", "low", "high", "original"):
                raise invalid(f"Invalid value for '{param}.detail': {detail!r}.", f"{param}.detail")
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if part.get("file_data") is None:
            raise UnsupportedParameter(
                f"'{param}': files by file_id or file_url are not supported; send file_data.",
                param=f"{param}.file_data",
            )
        file = {"file_data": expect_string(part["file_data"], f"{param}.file_data", empty=False)}
        if part.get("filename") is not None:
            file["filename"] = expect_string(part["filename"], f"{param}.filename")
        return {"type": "file", "file": file}
    if kind in ("input_audio",):
        raise UnsupportedParameter(f"'{param}': audio input is not supported.", param=f"{param}.type")
    raise invalid(f"Invalid value for '{param}.type': {kind!r}.", f"{param}.type")


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise invalid(
            f"Invalid value for '{param}.role': {role!r}; one of user, assistant, system, developer.",
            f"{param}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = [
        _part(p, f"{param}.content[{i}]", role)
        for i, p in enumerate(expect_array(content, f"{param}.content"))
    ]
    refusals = [p["refusal"] for p in parts if p["type"] == "refusal"]
    parts = [p for p in parts if p["type"] != "refusal"]
    if role == "assistant":
        # an assistant turn goes back to chat models as plain text (what they produced)
        message: dict[str, Any] = {"role": role, "content": "".join(p.get("text", "") for p in parts)}
        if refusals:
            message["refusal"] = "".join(refusals)
        return message
    return {"role": role, "content": parts}


def _function_output(value: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    return [_part(p, f"{param}[{i}]", "user") for i, p in enumerate(expect_array(value, param))]


def convert_input(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``input`` → (chat messages, the input items as the Responses API lists them)."""
    if isinstance(value, str):
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}
        return [{"role": "user", "content": value}], [item]
    items = expect_array(value, "input")
    if not items:
        raise invalid("Invalid 'input': empty array. Expected an array with at least one item.", "input")
    messages: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        param = f"input[{index}]"
        item = expect_object(raw, param)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = {
                "id": expect_string(item.get("call_id"), f"{param}.call_id", empty=False),
                "type": "function",
                "function": {
                    "name": expect_string(item.get("name"), f"{param}.name", empty=False),
                    "arguments": expect_string(item.get("arguments"), f"{param}.arguments"),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not last.get("refusal"):
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": expect_string(item.get("call_id"), f"{param}.call_id", empty=False),
                    "content": _function_output(item.get("output"), f"{param}.output"),
                }
            )
        elif kind == "reasoning":
            raise UnsupportedParameter(
                f"'{param}': reasoning items are not supported: the models behind this gateway are "
                "served through chat completions, which take no reasoning items. Leave them out.",
                param=f"{param}.type",
            )
        elif kind == "item_reference":
            raise UnsupportedParameter(
                f"'{param}': item references are not supported; use previous_response_id, or send the item.",
                param=f"{param}.type",
            )
        elif isinstance(kind, str):
            raise UnsupportedParameter(
                f"'{param}': input items of type {kind!r} are not supported; only message, "
                "function_call and function_call_output items are.",
                param=f"{param}.type",
            )
        else:
            raise invalid(f"Invalid type for '{param}.type': expected a string.", f"{param}.type")
        listed.append(item)
    return messages, listed
