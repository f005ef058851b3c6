"""Fake LLM upstreams speaking the real wire protocols, for integration tests and benchmarks.

In-process (sync or async tests; a background thread with its own event loop)::

    from tests.fakes import running_fake_openai, running_fake_ollama

    with running_fake_openai(chunks=5) as fake:
        client = OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        ...
        assert fake.last_request.bearer == "sk-test"
        fake.configure(fail_next=2, fail_status=503)

Inside a running event loop: ``async with FakeOpenAIUpstream() as fake: ...`` (or
``await fake.start()`` / ``await fake.stop()``).  As a process:
``python -m tests.fakes.openai_upstream --port 9100`` / ``python -m tests.fakes.ollama_upstream``.
"""

from tests.fakes.ollama_upstream import FakeOllamaUpstream, running_fake_ollama
from tests.fakes.openai_upstream import (
    FAULT_MODES,
    FakeConfig,
    FakeOpenAIUpstream,
    FakeUpstream,
    RecordedRequest,
    run_in_thread,
    running_fake_openai,
)

__all__ = [
    "FAULT_MODES",
    "FakeConfig",
    "FakeOllamaUpstream",
    "FakeOpenAIUpstream",
    "FakeUpstream",
    "RecordedRequest",
    "run_in_thread",
    "running_fake_ollama",
    "running_fake_openai",
]
