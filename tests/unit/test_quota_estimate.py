"""What a request reserves against TPM before it runs, and which requests can never run."""

from __future__ import annotations

import pytest

from gateway.cache.quota import EffectiveLimits, ScopeLimits
from gateway.errors import RequestTooLarge

LIMITS = EffectiveLimits((ScopeLimits("key:k1", tpm=500), ScopeLimits("user:u1", tpm=10_000)))


def test_without_max_tokens_the_default_estimate_is_clamped_to_the_tightest_limit() -> None:
    # A small TPM key used to reserve the model's whole output limit and could never run.
    assert LIMITS.token_estimate(prompt_tokens=20, max_tokens=None, default_output=1024) == 500
    assert LIMITS.token_estimate(prompt_tokens=20, max_tokens=None, default_output=100) == 120
    assert EffectiveLimits().token_estimate(prompt_tokens=20, max_tokens=None, default_output=1024) == 1044


def test_an_explicit_max_tokens_is_reserved_in_full() -> None:
    assert LIMITS.token_estimate(prompt_tokens=20, max_tokens=300, default_output=1024) == 320


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "param"),
    [(500, None, "messages"), (20, 481, "max_tokens"), (600, 10, "messages")],
)
def test_a_request_no_minute_can_admit_is_a_400_without_retry_hint(
    prompt: int, max_tokens: int | None, param: str
) -> None:
    with pytest.raises(RequestTooLarge) as caught:
        LIMITS.token_estimate(prompt_tokens=prompt, max_tokens=max_tokens, default_output=1024)
    error = caught.value
    assert error.status_code == 400 and error.code == "request_too_large" and error.param == param
    assert "500 tokens per minute" in error.message and "API key" in error.message
    assert "retry-after" not in {k.lower() for k in (error.headers or {})}
