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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported lazily so that ``python -m tests.fakes.openai_upstream`` does not import the
# module twice (once as a submodule, once as ``__main__``).
_LOCATIONS = {
    "FakeOllamaUpstream": "tests.fakes.ollama_upstream",
    "running_fake_ollama": "tests.fakes.ollama_upstream",
    "FAULT_MODES": "tests.fakes.openai_upstream",
    "FakeConfig": "tests.fakes.openai_upstream",
    "FakeOpenAIUpstream": "tests.fakes.openai_upstream",
    "FakeUpstream": "tests.fakes.openai_upstream",
    "RecordedRequest": "tests.fakes.openai_upstream",
    "run_in_thread": "tests.fakes.openai_upstream",
    "running_fake_openai": "tests.fakes.openai_upstream",
}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        return getattr(importlib.import_module(_LOCATIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
