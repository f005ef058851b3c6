"""Conversation continuity through the official SDK: the upstream sees the stored history, trimmed
to the model's context window with the system message kept."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import openai

from gateway.providers.tokens import count_messages
from tests.fakes import running_fake_openai
from tests.support.gateway_proc import running_gateway

PASSWORD = "violet-harbour-kettle-91"
WINDOW = 160


def test_history_is_prepended_and_trimmed_at_the_window(tmp_path: Path) -> None:
    with running_fake_openai() as fake:
        config = f"""
models:
  small:
    provider: openai
    base_url: {fake.openai_base_url}
    api_key_env: FAKE_KEY
    local: true
    context_window: {WINDOW}
    max_output_tokens: 32
"""
        env = {"GATEWAY_AUTH_ENABLED": "true", "FAKE_KEY": "sk-fake"}
        with running_gateway(tmp_path, config=config, env=env) as gateway:
            email = f"conv-{uuid.uuid4().hex[:8]}@example.com"
            httpx.post(f"{gateway.url}/auth/register", json={"email": email, "password": PASSWORD})
            token = httpx.post(
                f"{gateway.url}/auth/login", json={"email": email, "password": PASSWORD}
            ).json()["access_token"]
            client = openai.OpenAI(
                base_url=gateway.openai_base_url,
                api_key=token,
                max_retries=0,
                default_headers={"X-Prism-Conversation-Id": f"c-{uuid.uuid4().hex[:8]}"},
            )
            system = {"role": "system", "content": "You are terse."}
            client.chat.completions.create(
                model="small",
                max_tokens=16,
                messages=[system, {"role": "user", "content": "My name is Alice."}],
            )
            stream = client.chat.completions.create(
                model="small",
                max_tokens=16,
                stream=True,
                messages=[{"role": "user", "content": "What is my name?"}],
            )
            assert "What is my name?" in "".join(
                c.choices[0].delta.content or "" for c in stream if c.choices
            )
            seen = fake.last_request.body["messages"]  # type: ignore[union-attr]
            assert [m["role"] for m in seen] == ["system", "user", "assistant", "user"]
            assert (
                seen[1]["content"] == "My name is Alice." and seen[2]["content"] == "echo: My name is Alice."
            )

            for turn in range(12):
                client.chat.completions.create(
                    model="small",
                    max_tokens=16,
                    messages=[
                        {"role": "user", "content": f"turn {turn}: tell me something new about the sea"}
                    ],
                )
            seen = fake.last_request.body["messages"]  # type: ignore[union-attr]
            assert seen[0] == system
            assert seen[-1]["content"] == "turn 11: tell me something new about the sea"
            assert count_messages(seen) + 16 <= WINDOW
            assert len(seen) < 2 + 2 * 14  # older turns were dropped
