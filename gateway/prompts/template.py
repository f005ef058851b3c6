"""Prompt templates: chat messages whose text holds ``{{ variable }}`` placeholders.

The renderer is deliberately minimal, a sandbox by construction: a placeholder is a bare name
(``[A-Za-z_][A-Za-z0-9_]*``) and nothing else — no attribute or item access, no filters, no
statements, no expressions — so a template (or a variable's value) can neither reach Python objects
nor run code. Anything else between ``{{``/``}}`` or inside ``{% %}``/``{# #}`` is refused when the
version is written, naming the expression. Values are inserted once, never re-rendered, so a value
holding ``{{ x }}`` stays literal text. The syntax is the common subset of Jinja2, Nunjucks
(promptfoo) and Mustache, so templates move between them unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant"})
MAX_TEMPLATE_CHARS = 100_000
MAX_MESSAGES = 50

_TAG = re.compile(r"\{\{(.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


class TemplateError(InvalidRequest):
    default_code = "invalid_template"


class MissingVariables(InvalidRequest):
    default_code = "missing_prompt_variables"


def _names(text: str, *, where: str) -> list[str]:
    names: list[str] = []
    for match in _TAG.finditer(text):
        inner = match.group(1)
        found = _NAME.match(inner) if inner is not None else None
        if found is None:
            snippet = match.group(0)[:60]
            raise TemplateError(
                f"Unsupported template expression {snippet!r} in {where}: only {{{{ name }}}} "
                "placeholders are allowed (no attribute access, filters or statements)",
                param=where,
            )
        names.append(found.group(1))
    return names


def normalise(
    template: str | Sequence[Mapping[str, Any]], *, param: str = "messages"
) -> list[dict[str, str]]:
    """A version's messages from a string (one system message) or a list of ``{role, content}``,
    checked: roles, text content, sizes and placeholders."""
    if isinstance(template, str):
        template = [{"role": "system", "content": template}]
    if not isinstance(template, Sequence) or not template:
        raise TemplateError("A prompt needs at least one message", param=param)
    if len(template) > MAX_MESSAGES:
        raise TemplateError(f"A prompt holds at most {MAX_MESSAGES} messages", param=param)
    messages: list[dict[str, str]] = []
    total = 0
    for index, message in enumerate(template):
        where = f"{param}[{index}]"
        if not isinstance(message, Mapping):
            raise TemplateError(f"{where} must be an object with role and content", param=where)
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise TemplateError(f"{where}.role must be one of {sorted(ROLES)}", param=f"{where}.role")
        if not isinstance(content, str):
            raise TemplateError(f"{where}.content must be a string", param=f"{where}.content")
        if "\x00" in content:
            raise TemplateError(f"{where}.content contains a NUL character", param=f"{where}.content")
        total += len(content)
        _names(content, where=f"{where}.content")
        messages.append({"role": str(role), "content": content})
    if total > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"A prompt holds at most {MAX_TEMPLATE_CHARS} characters", param=param)
    return messages


def variables(messages: Sequence[Mapping[str, str]]) -> list[str]:
    """The placeholders of checked messages, in order of first use."""
    seen: dict[str, None] = {}
    for index, message in enumerate(messages):
        for name in _names(message["content"], where=f"messages[{index}].content"):
            seen.setdefault(name, None)
    return list(seen)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return orjson.dumps(value).decode()


def render(
    messages: Sequence[Mapping[str, str]], values: Mapping[str, Any], *, param: str = "prompt_variables"
) -> list[dict[str, str]]:
    """The messages with every placeholder replaced; a 400 naming every missing variable."""
    missing = [name for name in variables(messages) if name not in values]
    if missing:
        raise MissingVariables(
            f"Missing prompt variables: {', '.join(missing)}", param=f"{param}.{missing[0]}"
        )

    def substitute(match: re.Match[str]) -> str:
        found = _NAME.match(match.group(1) or "")
        assert found is not None  # checked when the version was written
        return _text(values[found.group(1)])

    return [
        {"role": message["role"], "content": _TAG.sub(substitute, message["content"])} for message in messages
    ]


def render_text(text: str, values: Mapping[str, Any], *, param: str) -> str:
    """One string (an assertion's value, a case's input) rendered with the same rules."""
    return render([{"role": "user", "content": text}], values, param=param)[0]["content"]
