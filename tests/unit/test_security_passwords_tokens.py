"""Passwords, JWT access tokens, refresh tokens, API key secrets, throttling, trim_history."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from argon2 import PasswordHasher

from gateway.config.settings import get_settings
from gateway.errors import AuthenticationFailed, InvalidRequest
from gateway.security import passwords
from gateway.security.api_keys import generate_api_key, hash_api_key
from gateway.security.tokens import KeyRing, TokenService, hash_token, new_refresh_token
from gateway.services.conversations import default_token_counter, trim_history


def test_password_policy() -> None:
    with pytest.raises(InvalidRequest):
        passwords.validate_new_password("short1")
    with pytest.raises(InvalidRequest):
        passwords.validate_new_password("x" * 129 + "y")
    for weak in ("password", "Password123", "qwerty2024", "iloveyou!", "aaaaaaaaaa", "12345678901"):
        with pytest.raises(InvalidRequest):
            passwords.validate_new_password(weak)
    passwords.validate_new_password("violet harbour kettle")
    passwords.validate_new_password("Grüße aus Köln, 東京 und überall — ein langer Satz ohne Ende! " * 2)


def test_hash_verify_no_truncation_and_params() -> None:
    long = "a-very-long-passphrase-" * 5  # > 72 bytes: bcrypt would truncate, argon2 must not
    h = passwords.hash_password(long)
    assert h.startswith("$argon2id$") and "m=19456,t=2,p=1" in h
    assert passwords.verify_password(h, long)
    assert not passwords.verify_password(h, long[:-1] + "X")
    assert not passwords.needs_rehash(h)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(long)
    assert passwords.verify_password(weak, long) and passwords.needs_rehash(weak)


def test_dummy_verification_costs_like_a_real_one() -> None:
    h = passwords.hash_password("correct horse battery")
    passwords.verify_dummy("warm")
    t0 = time.perf_counter()
    for _ in range(3):
        passwords.verify_password(h, "wrong password here")
    real = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):
        assert passwords.verify_dummy("wrong password here") is False
    dummy = time.perf_counter() - t0
    assert 0.33 < dummy / real < 3.0


def _service(**kw: object) -> TokenService:
    return TokenService(get_settings(**kw))


def test_access_token_roundtrip_and_claims() -> None:
    svc = _service()
    token, ttl = svc.issue_access(user_id="u1", role="admin", tier="pro", session_id="fam", token_version=3)
    claims = svc.verify_access(token)
    assert (claims.user_id, claims.role.value, claims.tier, claims.session_id, claims.token_version) == (
        "u1", "admin", "pro", "fam", 3,
    )  # fmt: skip
    assert ttl == 900
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "k1" and header["alg"] == "HS256"


@pytest.mark.parametrize(
    "mutate",
    [
        "alg_none",
        "wrong_secret",
        "wrong_aud",
        "wrong_iss",
        "expired",
        "refresh_typ",
        "unknown_kid",
        "garbage",
    ],
)
def test_access_token_rejections(mutate: str) -> None:
    svc = _service()
    secret = svc.keys.current.signing
    now = int(time.time())
    claims = {"sub": "u", "role": "user", "tier": "free", "typ": "access", "iss": "prism", "aud": "prism-api",
              "iat": now, "exp": now + 60, "ver": 0}  # fmt: skip
    headers = {"kid": "k1"}
    if mutate == "alg_none":

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        import json

        token = (
            b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
            + "."
            + b64(json.dumps(claims).encode())
            + "."
        )
    elif mutate == "garbage":
        token = "not.a.jwt"
    else:
        key = secret
        if mutate == "wrong_secret":
            key = b"another-secret-another-secret-another-secret"
        if mutate == "wrong_aud":
            claims["aud"] = "someone-else"
        if mutate == "wrong_iss":
            claims["iss"] = "evil"
        if mutate == "expired":
            claims["exp"] = now - 3600
        if mutate == "refresh_typ":
            claims["typ"] = "refresh"
        if mutate == "unknown_kid":
            headers = {"kid": "k9"}
        token = jwt.encode(claims, key, algorithm="HS256", headers=headers)
    with pytest.raises(AuthenticationFailed):
        svc.verify_access(token)


def test_algorithm_pinned_per_kid_rs256_confusion(tmp_path: object) -> None:
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert isinstance(tmp_path, Path)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv_path, pub_path = tmp_path / "k.pem", tmp_path / "k.pub"
    priv_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path.write_bytes(public_pem)
    svc = _service(jwt_algorithm="RS256", jwt_private_key_file=priv_path, jwt_public_key_file=pub_path)
    token, _ = svc.issue_access(user_id="u", role="user", tier="free", session_id=None, token_version=0)
    assert svc.verify_access(token).user_id == "u"
    # HS256 token signed with the public key as secret (classic confusion) must fail
    now = int(time.time())
    forged = jwt.api_jws.PyJWS().encode(
        jwt.utils.force_bytes(
            __import__("json").dumps(
                {
                    "sub": "admin",
                    "role": "admin",
                    "typ": "access",
                    "iss": "prism",
                    "aud": "prism-api",
                    "iat": now,
                    "exp": now + 60,
                }
            )
        ),
        key="x" * 32,
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthenticationFailed):
        svc.verify_access(forged)


def test_key_rotation_previous_keys_verify() -> None:
    old = _service(jwt_key_id="k0", jwt_secret="old-secret-old-secret-old-secret-0")
    token, _ = old.issue_access(user_id="u", role="user", tier="free", session_id=None, token_version=0)
    new = _service(jwt_key_id="k1", jwt_previous_keys={"k0": "HS256:old-secret-old-secret-old-secret-0"})
    assert new.verify_access(token).user_id == "u"
    assert isinstance(new.keys, KeyRing)
    without = _service(jwt_key_id="k1")
    with pytest.raises(AuthenticationFailed):
        without.verify_access(token)


def test_refresh_and_api_key_secrets() -> None:
    raw = new_refresh_token()
    assert raw.startswith("rt_") and len(raw) >= 3 + 43  # 256 bits
    assert hash_token(raw) != raw and len(hash_token(raw)) == 64
    key = generate_api_key()
    assert key.secret.startswith("sk-prism-") and key.prefix == key.secret[:13]
    assert key.key_hash == hash_api_key(key.secret) and key.secret not in key.key_hash


def test_trim_history_keeps_system_and_recent() -> None:
    count = default_token_counter()
    msgs = [{"role": "system", "content": "be brief"}]
    msgs += [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i} " * 20}
        for i in range(30)
    ]
    trimmed = trim_history(msgs, context_window=600, max_tokens=100, count_tokens=count)
    assert trimmed[0] == msgs[0]
    assert trimmed[-1] == msgs[-1]
    assert count(trimmed) <= 500
    assert len(trimmed) < len(msgs)
    assert trimmed[1:] == msgs[len(msgs) - len(trimmed) + 1 :]
    assert trim_history(msgs[:3], context_window=100_000, max_tokens=100, count_tokens=count) == msgs[:3]
    tiny = trim_history(msgs, context_window=10, max_tokens=5, count_tokens=count)
    assert tiny == [msgs[0], msgs[-1]]
