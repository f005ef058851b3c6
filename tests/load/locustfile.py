"""Locust load profile for Prism (issue #9).

    locust -f tests/load/locustfile.py --headless -u 50 -r 10 -t 60s \\
        --host http://127.0.0.1:8080 --csv var/load/prism

Environment: ``PRISM_API_KEY`` (Bearer key for /v1), ``PRISM_EMAIL`` / ``PRISM_PASSWORD``
(auth flow), ``PRISM_MODEL`` (default ``mock-fast``).  Pick user classes by naming them
on the command line (e.g. ``... ChatUser StreamingChatUser``); by default all run with the
weights below.  Streams report time to first token as its own statistic, ``TTFT``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from typing import Any

from locust import HttpUser, between, events, task
from locust.exception import StopUser

API_KEY = os.environ.get("PRISM_API_KEY", "")
EMAIL = os.environ.get("PRISM_EMAIL", "")
PASSWORD = os.environ.get("PRISM_PASSWORD", "")
MODEL = os.environ.get("PRISM_MODEL", "mock-fast")
CHAT_PATH = "/v1/chat/completions"

SHORT_PROMPTS = [
    "Say hello in one short sentence.",
    "What is the capital of France?",
    "한 문장으로 인사해 줘.",
    "오늘 할 일 세 가지만 추천해 줘.",
]

# mixed intents for model "auto": (prompt, expected intent) — English and Korean
AUTO_PROMPTS = [
    ("Write a Python function that checks whether a string is a palindrome.", "code"),
    ("이 코드에서 버그를 찾아줘: def f(x): return x +", "code"),
    ("Translate into Korean: The meeting starts at ten sharp.", "translation"),
    ("다음 문장을 영어로 번역해줘: 버스에서 지갑을 잃어버렸어요.", "translation"),
    (
        "Summarize in two sentences: The city museum reopens on March 3 after two years of renovation.",
        "summary",
    ),
    ("다음 글 요약해줘: 시는 2028년까지 경유 버스의 40%를 전기 버스로 교체할 계획이다.", "summary"),
    (
        "A tank fills in 3 hours and drains in 5 hours. Starting empty, when is it full? Show each step.",
        "reasoning",
    ),
    ("17의 23%는 얼마야? 단계별로 풀어줘.", "reasoning"),
    ("hi", "general"),
    ("일본의 수도는 어디야?", "general"),
]

FOLLOW_UPS = [
    "Tell me more.",
    "Can you give an example?",
    "좀 더 자세히 설명해 줘.",
    "Thanks, and in one word?",
]

_counter = itertools.count()


def _headers(token: str | None = None) -> dict[str, str]:
    key = token or API_KEY
    return {"Authorization": f"Bearer {key}"} if key else {}


def _body(content: str, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


class ChatUser(HttpUser):
    """Non-streamed chat completions."""

    weight = 4
    wait_time = between(0.1, 0.5)

    @task
    def chat(self) -> None:
        prompt = f"{random.choice(SHORT_PROMPTS)} (#{next(_counter)})"
        with self.client.post(
            CHAT_PATH, json=_body(prompt), headers=_headers(), name="chat", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            try:
                data = resp.json()
                if not data["choices"][0]["message"].get("content") and not data["choices"][0]["message"].get(
                    "tool_calls"
                ):
                    resp.failure("empty answer")
            except (ValueError, KeyError, IndexError) as exc:
                resp.failure(f"bad body: {exc}")


class StreamingChatUser(HttpUser):
    """Streamed chat completions; fires a separate ``TTFT`` statistic per stream."""

    weight = 3
    wait_time = between(0.1, 0.5)

    @task
    def stream(self) -> None:
        prompt = f"{random.choice(SHORT_PROMPTS)} (#{next(_counter)})"
        body = _body(prompt, stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        first: float | None = None
        done = False
        with self.client.post(
            CHAT_PATH, json=body, headers=_headers(), name="chat stream", stream=True, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            for raw in resp.iter_lines():
                if not raw.startswith(b"data: "):
                    continue
                payload = raw[6:]
                if payload == b"[DONE]":
                    done = True
                    break
                if first is None:
                    try:
                        chunk = json.loads(payload)
                    except ValueError:
                        continue
                    choices = chunk.get("choices") or []
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        first = time.perf_counter()
            if not done:
                resp.failure("stream ended without [DONE]")
                return
        if first is not None:
            events.request.fire(  # type: ignore[no-untyped-call]
                request_type="SSE",
                name="TTFT",
                response_time=(first - started) * 1000,
                response_length=0,
                exception=None,
                context={},
            )


class AutoRouteUser(HttpUser):
    """``model: "auto"`` with mixed intents in English and Korean."""

    weight = 2
    wait_time = between(0.1, 0.5)

    @task
    def auto(self) -> None:
        prompt, intent = random.choice(AUTO_PROMPTS)
        with self.client.post(
            CHAT_PATH,
            json=_body(prompt, model="auto"),
            headers=_headers(),
            name=f"auto [{intent}]",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")


class ConversationUser(HttpUser):
    """Multi-turn conversation continued through ``X-Prism-Conversation-Id``."""

    weight = 1
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.conversation_id = str(uuid.uuid4())
        self.turn = 0

    @task
    def turn_(self) -> None:
        if self.turn >= 6:  # start a new conversation every few turns
            self.on_start()
        content = random.choice(SHORT_PROMPTS) if self.turn == 0 else random.choice(FOLLOW_UPS)
        headers = {**_headers(), "X-Prism-Conversation-Id": self.conversation_id}
        name = "conversation first turn" if self.turn == 0 else "conversation continue"
        with self.client.post(
            CHAT_PATH, json=_body(content), headers=headers, name=name, catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
        self.turn += 1


class AuthFlowUser(HttpUser):
    """Login, refresh, then chat with the API key (auth-heavy). Needs PRISM_EMAIL/PRISM_PASSWORD."""

    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        if not (EMAIL and PASSWORD):
            raise StopUser()

    @task
    def flow(self) -> None:
        with self.client.post(
            "/auth/login", json={"email": EMAIL, "password": PASSWORD}, name="auth login", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            tokens = resp.json()
        refresh = tokens.get("refresh_token")
        access = tokens.get("access_token")
        if refresh:
            with self.client.post(
                "/auth/refresh", json={"refresh_token": refresh}, name="auth refresh", catch_response=True
            ) as resp:
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    return
                access = resp.json().get("access_token", access)
        token = API_KEY or access
        with self.client.post(
            CHAT_PATH,
            json=_body("한 문장으로 인사해 줘."),
            headers=_headers(token),
            name="chat (auth flow)",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
