"""Per-call cost with prompt-cache prices (exact cost accounting): reads and writes at their own rates."""

from __future__ import annotations

import pytest

from gateway.config.routing import ModelConfig
from gateway.providers.anthropic_wire import usage_from
from gateway.providers.base import Usage


def _model(**prices: float) -> ModelConfig:
    return ModelConfig.model_validate(
        {"provider": "mock", "price_input_per_mtok": 3.0, "price_output_per_mtok": 15.0, **prices}
    )


def test_without_cache_prices_every_prompt_token_costs_the_input_price() -> None:
    usage = Usage(prompt_tokens=1_160, completion_tokens=7, cached_tokens=1_000, cache_write_tokens=100)
    assert _model().cost_of(usage) == pytest.approx((1_160 * 3.0 + 7 * 15.0) / 1e6)


def test_reads_and_writes_at_their_own_rates() -> None:
    usage = usage_from(
        {
            "input_tokens": 60,
            "cache_read_input_tokens": 1_000,
            "cache_creation_input_tokens": 100,
            "output_tokens": 7,
        }
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (1_160, 1_000, 100)
    model = _model(price_cached_input_per_mtok=0.3, price_cache_write_per_mtok=3.75)
    assert model.cost_of(usage) == pytest.approx((60 * 3.0 + 1_000 * 0.3 + 100 * 3.75 + 7 * 15.0) / 1e6)


def test_inconsistent_counts_never_price_more_tokens_than_the_prompt() -> None:
    model = _model(price_cached_input_per_mtok=0.0, price_cache_write_per_mtok=10.0)
    # A provider reporting more cached tokens than prompt tokens: clamped, never a negative fresh count.
    assert model.cost(100, 0, cached_tokens=150, cache_write_tokens=50) == pytest.approx(0.0)
    assert model.cost(100, 0, cached_tokens=-5, cache_write_tokens=500) == pytest.approx(100 * 10.0 / 1e6)


def test_cache_prices_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        _model(price_cached_input_per_mtok=-1.0)
