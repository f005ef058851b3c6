"""Provider settings that live in the routing config: the mock provider's knobs (``models.<name>.mock``)
and how the wire client reaches an upstream (``models.<name>.http``)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator


class MockSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0)
    token_delay_ms: float = Field(default=0.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    failure_kind: Literal["429", "500", "503", "hang"] = "500"
    retry_after_s: float = Field(default=1.0, ge=0)
    cut_after_tokens: int | None = Field(default=None, ge=0)
    answer_words: int = Field(default=0, ge=0, le=4096)
    seed: int = 0


class UpstreamHTTPSettings(BaseModel):
    """Proxy, trusted CAs, client certificate and pool idle time of one model's upstream connections
    (``gateway/providers/transport.py`` applies them; docs/operations.md shows an example).

    By default a model honours ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` from the
    environment and trusts the system's CAs. Only ``http://`` proxies are supported (``CONNECT`` for
    ``https`` upstreams); an ``https://`` or SOCKS proxy is refused here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    proxy: str | None = None
    """``http://[user:password@]host:port`` for this model, overriding the environment; ``""``: direct."""
    trust_env: bool = True
    """Honour ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` when ``proxy`` is unset."""
    ca_bundle: FilePath | None = None
    """PEM file of the CAs trusted for this upstream (instead of the system's)."""
    client_cert: FilePath | None = None
    """PEM client certificate (chain) presented to the upstream (mTLS)."""
    client_key: FilePath | None = None
    """Its private key, when not in ``client_cert``'s file."""
    pool_idle_s: float = Field(default=30.0, gt=0)
    """A keep-alive connection idle for longer is closed instead of reused; keep it below the
    upstream's (or its load balancer's) own idle timeout."""

    @field_validator("proxy")
    @classmethod
    def _http_proxy(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value if "://" in value else f"http://{value}")
            if parts.scheme != "http":
                raise ValueError(f"only http:// proxies are supported, not {parts.scheme}://")
            try:
                if not parts.hostname or parts.port == 0:
                    raise ValueError("a proxy URL needs a host")
            except ValueError as exc:  # a port that is not a number
                raise ValueError(f"invalid proxy URL: {exc}") from None
        return value

    @model_validator(mode="after")
    def _key_needs_cert(self) -> UpstreamHTTPSettings:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self

    def __repr__(self) -> str:  # a proxy URL may carry a password
        proxy = None if self.proxy is None else ("<set>" if self.proxy else "")
        return (
            f"UpstreamHTTPSettings(proxy={proxy!r}, trust_env={self.trust_env}, "
            f"ca_bundle={self.ca_bundle}, client_cert={self.client_cert}, pool_idle_s={self.pool_idle_s})"
        )

    __str__ = __repr__

    @property
    def is_default(self) -> bool:
        return self == UpstreamHTTPSettings()
