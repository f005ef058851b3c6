"""OpenAI's ``POST /v1/embeddings``: the request, parsed and checked into an ``EmbeddingRequest``, and
the vectors' two wire encodings (JSON numbers, or ``base64`` of little-endian float32).

``input`` is a string, a list of strings, a list of token ids or a list of token id lists (tiktoken
``cl100k_base`` ids, as LangChain's ``OpenAIEmbeddings`` sends them). Token arrays go unchanged to
OpenAI-compatible upstreams and are decoded to text (cl100k) for the others.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

from gateway.errors import InvalidRequest

KNOWN_FIELDS: Final = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
ENCODINGS: Final = ("float", "base64")
MAX_TOKEN_ID: Final = 2**31 - 1


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    texts: list[str] | None
    """The inputs as text (``None`` when they came as token arrays)."""
    token_arrays: list[list[int]] | None
    """The inputs as token id arrays (``None`` when they came as text)."""
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    single: bool = False
    """``input`` was one string or one flat token array (not in a list): forwarded in that shape."""

    @property
    def count(self) -> int:
        return len(self.texts if self.texts is not None else self.token_arrays or [])

    def cache_material(self) -> dict[str, Any]:
        """What determines the vectors (not ``encoding_format``: the cache keeps numbers)."""
        return {
            "endpoint": "embeddings",
            "input": self.texts if self.texts is not None else self.token_arrays,
            "dimensions": self.dimensions,
            **self.extra,
        }


def texts_request(model: str, texts: list[str], *, max_chars: int, max_inputs: int) -> EmbeddingRequest:
    """An in-process request for ``texts``, checked as ``input`` would be over HTTP."""
    texts_, _ = _inputs(list(texts), True, max_chars=max_chars, max_inputs=max_inputs)
    if texts_ is None or any("\x00" in text for text in texts_):
        raise _invalid("input must be non-empty strings without NUL characters", "input")
    return EmbeddingRequest(model=model, texts=texts_, token_arrays=None)


def _invalid(message: str, param: str | None, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def parse_embedding_request(body: bytes, *, max_chars: int, max_inputs: int) -> EmbeddingRequest:
    """Bytes → a checked request, or an ``InvalidRequest`` (400) naming the offending field."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid("The request body is not valid JSON (or not UTF-8)", None, "invalid_json") from exc
    if not isinstance(raw, dict):
        raise _invalid("The request body must be a JSON object", None, "invalid_json")
    model = raw.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= 128:
        raise _invalid("model must be a string of 1 to 128 characters", "model")
    value = raw.get("input")
    texts, arrays = _inputs(value, "input" in raw, max_chars=max_chars, max_inputs=max_inputs)
    encoding = raw.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise _invalid("encoding_format must be 'float' or 'base64'", "encoding_format")
    dimensions = raw.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or not 1 <= dimensions <= 65_536):
        raise _invalid("dimensions must be an integer from 1 to 65536", "dimensions")
    user = raw.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("user must be a string", "user")
    if _has_nul(raw):
        raise _invalid("The request body contains a NUL character in a string", "input", "invalid_text")
    extra = {key: value for key, value in raw.items() if key not in KNOWN_FIELDS and value is not None}
    return EmbeddingRequest(
        model=model,
        texts=texts,
        token_arrays=arrays,
        encoding_format=encoding,
        dimensions=dimensions,
        user=user,
        extra=extra,
        single=isinstance(value, str) or all(_is_token(item) for item in value or ()),
    )


def _inputs(
    value: Any, present: bool, *, max_chars: int, max_inputs: int
) -> tuple[list[str] | None, list[list[int]] | None]:
    if not present or value is None:
        raise _invalid("input is required", "input", "missing_required_parameter")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _invalid("input must be a non-empty string, array of strings or array of tokens", "input")
    if len(value) > max_inputs:
        raise _invalid(f"input holds {len(value)} items; at most {max_inputs} are allowed", "input")
    if all(isinstance(item, str) for item in value):
        empty = next((i for i, item in enumerate(value) if not item), None)
        if empty is not None:
            raise _invalid(
                "input must not contain empty strings", f"input[{empty}]" if len(value) > 1 else "input"
            )
        if sum(len(item) for item in value) > max_chars:
            raise _invalid(f"input exceeds {max_chars} characters", "input")
        return list(value), None
    if all(_is_token(item) for item in value):
        value = [value]  # one token array
    if all(isinstance(item, list) and item and all(_is_token(t) for t in item) for item in value):
        if sum(len(item) for item in value) > max_chars:
            raise _invalid(f"input exceeds {max_chars} tokens", "input")
        return None, [list(item) for item in value]
    raise _invalid(
        "input must be a string, an array of non-empty strings, an array of token ids or an array of "
        "non-empty token id arrays (not a mix)",
        "input",
    )


def _is_token(item: Any) -> bool:
    return type(item) is int and 0 <= item <= MAX_TOKEN_ID


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(x for x in item if not isinstance(x, int))
    return False


# -- vectors on the wire ---------------------------------------------------------------------------


def decode_vector(value: Any) -> list[float] | None:
    """An upstream's embedding (JSON numbers or base64 float32) as numbers; ``None`` if it is neither."""
    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not data or len(data) % 4:
            return None
        vector: list[float] = np.frombuffer(data, dtype="<f4").tolist()
        return vector if all(map(math.isfinite, vector)) else None
    if isinstance(value, list) and value and all(type(x) in (float, int) for x in value):
        return [float(x) for x in value]
    return None


def encode_vector(vector: list[float], encoding_format: str | None) -> list[float] | str:
    """The client's encoding: numbers (``float``, the default), or base64 of little-endian float32."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def embeddings_body(
    vectors: list[list[float]],
    *,
    model: str,
    prompt_tokens: int,
    encoding_format: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """OpenAI's answer; ``extra``: an upstream's own other top-level fields, passed through."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode_vector(vector, encoding_format)}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        **(extra or {}),
    }
