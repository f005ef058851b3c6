"""API key secrets: ``sk-prism-<random>``, shown once, stored as sha256 hash plus a visible prefix."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sk-prism-"
VISIBLE_CHARS = 4  # random characters kept after ``sk-prism-`` in the visible prefix


@dataclass(frozen=True, slots=True)
class NewApiKey:
    secret: str
    prefix: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(
        secret=secret, prefix=secret[: len(KEY_PREFIX) + VISIBLE_CHARS], key_hash=hash_api_key(secret)
    )


def hash_api_key(secret: str) -> str:
    """A fast hash is right here: the secret has 256 bits of entropy, there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def is_api_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX)
