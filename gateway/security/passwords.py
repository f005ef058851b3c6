"""Password hashing (argon2id), policy and constant-shape verification.

Parameters: argon2id, m=19 MiB, t=2, p=1 (OWASP's minimum recommendation). Hashes made with
weaker parameters are upgraded on the next successful login (``needs_rehash``). Passwords are
8..128 characters, never truncated, and refused when they appear in the shipped common-password
list (with common suffixes and capitalisation) or are trivially repetitive/sequential.

Unknown users are verified against a dummy hash so that "no such user" and "wrong password" take
the same time and give the same answer.
"""

from __future__ import annotations

import asyncio
import functools
import unicodedata
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.errors import InvalidRequest

MIN_LENGTH = 8
MAX_LENGTH = 128
TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1

_HASHER = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)
_SUFFIXES = ("", "1", "12", "123", "1234", "12345", "!", "!!", "1!", "123!", "01", "69", "007", "99", "00")
_YEARS = tuple(str(y) for y in range(1960, 2031))
_SEQUENCES = ("0123456789", "9876543210", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm")


@functools.cache
def _common() -> frozenset[str]:
    text = resources.files("gateway.security").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def is_common(password: str) -> bool:
    lowered = _normalize(password).lower()
    common = _common()
    if lowered in common:
        return True
    for suffix in (*_SUFFIXES, *_YEARS):
        if suffix and lowered.endswith(suffix) and lowered[: -len(suffix)] in common:
            return True
    if len(set(lowered)) <= 2:
        return True
    return any(lowered in seq for seq in _SEQUENCES)


def validate_new_password(password: str, *, email: str | None = None) -> None:
    """Raise ``InvalidRequest`` when a new password breaks the policy."""
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"Password must be at least {MIN_LENGTH} characters", param="password")
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(f"Password must be at most {MAX_LENGTH} characters", param="password")
    if is_common(password):
        raise InvalidRequest("Password is too common; choose another", param="password", code="weak_password")
    if email:
        local = email.split("@", 1)[0].lower()
        if len(local) >= 4 and _normalize(password).lower() in (local, email.lower()):
            raise InvalidRequest("Password must not be your email", param="password", code="weak_password")


def hash_password(password: str) -> str:
    return _HASHER.hash(_normalize(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, _normalize(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash("dummy-password-for-unknown-users")


def verify_dummy(password: str) -> bool:
    """Spend the same work as a real verification; always False."""
    verify_password(_dummy_hash(), password)
    return False


async def averify_password(password_hash: str | None, password: str) -> bool:
    """Verify off the event loop; ``None`` (unknown user) verifies against the dummy hash."""
    if password_hash is None:
        return await asyncio.to_thread(verify_dummy, password)
    return await asyncio.to_thread(verify_password, password_hash, password)


async def ahash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)
