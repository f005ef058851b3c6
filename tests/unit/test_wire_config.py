"""A model's ``base_url`` must be an http(s) URL: a typo fails the config load (or reload) with a
clear message instead of failing every request to that model later."""

from __future__ import annotations

import pytest

from gateway.config.routing import ConfigError, parse_config


@pytest.mark.parametrize("url", ["JUDGE_URL", "ftp://example.com/v1", "http:///v1", "localhost:11434"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigError, match="base_url must be an http"):
        parse_config(f'models:\n  m: {{provider: openai, base_url: "{url}"}}\n')


@pytest.mark.parametrize("url", ["http://127.0.0.1:9100/v1", "https://api.openai.com/v1"])
def test_http_urls_pass(url: str) -> None:
    config = parse_config(f'models:\n  m: {{provider: openai, base_url: "{url}"}}\n')
    assert config.models["m"].base_url == url
