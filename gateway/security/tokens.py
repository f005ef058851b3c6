"""Access tokens (signed JWTs) and refresh tokens (opaque random secrets).

Access tokens carry ``typ: access`` and are verified against a key ring: every ``kid`` pins
exactly one algorithm, so ``alg: none``, HS/RS confusion and unknown kids are refused. Rotation:
sign with ``settings.jwt_key_id``, keep older keys in ``settings.jwt_previous_keys`` for
verification until their tokens expire.

Refresh tokens are 256-bit random strings (``rt_`` + urlsafe base64), stored only as sha256
hashes; they are not JWTs, so neither token type is accepted where the other is expected.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from gateway.config.settings import Settings
from gateway.errors import AuthenticationFailed
from gateway.security.principal import Role

ACCESS_TYPE = "access"
RESET_TYPE = "password_reset"
REFRESH_PREFIX = "rt_"
_HMAC = ("HS256", "HS384", "HS512")
_ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    signing: Any | None  # None: verification only
    verifying: Any


@dataclass(frozen=True, slots=True)
class ResetClaims:
    user_id: str
    token_version: int
    password_binding: str


def _password_binding(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    role: Role
    tier: str
    session_id: str | None
    token_version: int
    expires_at: int


def _read(path: Path) -> bytes:
    return Path(path).read_bytes()


def _verification_entry(kid: str, spec: str) -> SigningKey:
    """``ALG:secret`` for HMAC keys, ``ALG:@/path/to/public.pem`` for asymmetric ones."""
    algorithm, _, material = spec.partition(":")
    if algorithm in _HMAC:
        if not material:
            raise ValueError(f"jwt key {kid}: empty secret")
        return SigningKey(kid, algorithm, None, material.encode())
    if algorithm in _ASYMMETRIC and material.startswith("@"):
        return SigningKey(kid, algorithm, None, _read(Path(material[1:])))
    raise ValueError(f"jwt key {kid}: unsupported specification")


class KeyRing:
    def __init__(self, current: SigningKey, others: list[SigningKey] | None = None) -> None:
        if current.signing is None:
            raise ValueError("the current JWT key must be able to sign")
        self.current = current
        self._by_kid = {key.kid: key for key in others or []}
        self._by_kid[current.kid] = current

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        alg = settings.jwt_algorithm
        if alg in _HMAC:
            secret = settings.jwt_secret.get_secret_value().encode()
            current = SigningKey(settings.jwt_key_id, alg, secret, secret)
        else:
            if settings.jwt_private_key_file is None or settings.jwt_public_key_file is None:
                raise ValueError(f"{alg} needs GATEWAY_JWT_PRIVATE_KEY_FILE and GATEWAY_JWT_PUBLIC_KEY_FILE")
            current = SigningKey(
                settings.jwt_key_id,
                alg,
                _read(settings.jwt_private_key_file),
                _read(settings.jwt_public_key_file),
            )
        others = [
            _verification_entry(kid, spec.get_secret_value())
            for kid, spec in settings.jwt_previous_keys.items()
        ]
        return cls(current, others)

    def get(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)


class TokenService:
    def __init__(self, settings: Settings, keys: KeyRing | None = None) -> None:
        self.settings = settings
        self.keys = keys or KeyRing.from_settings(settings)

    def issue_access(
        self, *, user_id: str, role: str, tier: str, session_id: str | None, token_version: int
    ) -> tuple[str, int]:
        now = int(time.time())
        ttl = self.settings.access_token_ttl_s
        claims = {
            "sub": user_id,
            "role": role,
            "tier": tier,
            "sid": session_id,
            "ver": token_version,
            "typ": ACCESS_TYPE,
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        key = self.keys.current
        assert key.signing is not None
        token = jwt.encode(
            claims, key.signing, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
        )
        return token, ttl

    def verify_access(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("Invalid access token", code="invalid_token") from exc
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != key.algorithm:
            raise AuthenticationFailed("Invalid access token", code="invalid_token")
        try:
            claims = jwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=5,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailed("Access token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("Invalid access token", code="invalid_token") from exc
        if claims.get("typ") != ACCESS_TYPE:
            raise AuthenticationFailed("Invalid access token", code="invalid_token")
        try:
            role = Role(claims.get("role", "user"))
            return AccessClaims(
                user_id=str(claims["sub"]),
                role=role,
                tier=str(claims.get("tier", "free")),
                session_id=claims.get("sid"),
                token_version=int(claims.get("ver", 0)),
                expires_at=int(claims["exp"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise AuthenticationFailed("Invalid access token", code="invalid_token") from exc

    # ------------------------------------------------------------------ password reset tokens
    @property
    def _reset_audience(self) -> str:
        return f"{self.settings.jwt_audience}:password-reset"

    def issue_password_reset(
        self, *, user_id: str, token_version: int, password_hash: str
    ) -> tuple[str, int]:
        """A one-time reset token: bound to the current password hash and token version, so setting a
        password (which changes both) spends it. Its own ``typ`` and audience: never an access token."""
        now = int(time.time())
        ttl = self.settings.password_reset_ttl_s
        claims = {
            "sub": user_id,
            "ver": token_version,
            "pwb": _password_binding(password_hash),
            "typ": RESET_TYPE,
            "iss": self.settings.jwt_issuer,
            "aud": self._reset_audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        key = self.keys.current
        assert key.signing is not None
        token = jwt.encode(
            claims, key.signing, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
        )
        return token, ttl

    def verify_password_reset(self, token: str) -> ResetClaims | None:
        """The claims of a valid reset token, or None for anything else (one answer for all)."""
        if not isinstance(token, str) or len(token) > 4096:
            return None
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            key = self.keys.get(kid) if isinstance(kid, str) else None
            if key is None or header.get("alg") != key.algorithm:
                return None
            claims = jwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                audience=self._reset_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "typ"]},
            )
            if claims.get("typ") != RESET_TYPE:
                return None
            return ResetClaims(
                user_id=str(claims["sub"]),
                token_version=int(claims["ver"]),
                password_binding=str(claims["pwb"]),
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def reset_binds(claims: ResetClaims, *, password_hash: str) -> bool:
        return secrets.compare_digest(claims.password_binding, _password_binding(password_hash))


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(REFRESH_PREFIX)
