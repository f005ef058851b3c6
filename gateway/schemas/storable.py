"""Text the database cannot store, refused at the edge.

Postgres ``text``/``varchar`` refuse the NUL character (``CharacterNotInRepertoireError``) and any
value that is not valid UTF-8 — in Python terms, a ``str`` holding an unpaired surrogate, which the
standard ``json`` module (FastAPI's request parser) accepts from a ``\\ud800`` escape. Such text
reaching a usage record, an account or a conversation made the database refuse whole batches, so
every route refuses it with a 400 in OpenAI's error shape before anything else runs: the
middleware checks the path, the query string and JSON/form bodies of every route but the hot one;
the hot route checks its body while parsing it (``gateway/api/openai.py``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import Scope


def text_problem(text: str) -> str | None:
    """What makes ``text`` unstorable, or ``None``."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired UTF-16 surrogate (not valid Unicode text)"
    return None


def unstorable_value(value: Any) -> str | None:
    """The first unstorable string (key or value) in a parsed JSON document, described with its path."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return f"{path or 'The body'} {problem}"
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and (problem := text_problem(key)) is not None:
                    return f"A key in {path or 'the body'} {problem}"
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def unstorable_in_target(scope: Scope) -> str | None:
    """A NUL character in the path or the query string (both reach lookups and logs)."""
    if "\x00" in scope.get("path", ""):
        return "The request path contains a NUL character"
    query: bytes = scope.get("query_string", b"")
    if query and (b"\x00" in query or b"%00" in query or b"\x00" in unquote_to_bytes(query)):
        return "The query string contains a NUL character"
    return None


def unstorable_in_body(body: bytes, content_type: str) -> str | None:
    """A NUL or unpaired surrogate anywhere in a JSON or form body; ``None`` for bodies that do not
    parse (the route answers those with its own validation error)."""
    if not body:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        if b"\x00" in body or b"\x00" in unquote_to_bytes(body.replace(b"+", b" ")):
            return "The form body contains a NUL character"
        return None
    if kind == "text/plain":
        if b"\x00" in body:
            return "The body contains a NUL character"
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return unstorable_value(document)
