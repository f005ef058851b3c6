"""The jobs' daily LLM token quota (``GATEWAY_JOBS_TOKENS_PER_DAY``) as seen by a running job's
pipeline: the model calls that ``summarize`` and ``document_analysis`` make through Prism's request
path (``PipelineLLM.ask``) are added to the job's ``tokens`` and checked before each call.

The executor opens a :class:`TokenBudget` for each run with what is left of the key's allowance
(the day's tokens of its other jobs subtracted) and sets it in :data:`CURRENT`; LangGraph runs the
pipeline's nodes in tasks that copy the context, so ``PipelineLLM`` finds it there. A call that
would start with the allowance spent raises :class:`JobTokenQuotaExceeded` and the job fails with
``token_quota_exceeded``. One call can overshoot by its own size: the check is before each call,
the count after it.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


class JobTokenQuotaExceeded(RuntimeError):
    """The key's daily LLM token quota of jobs is spent (a ``RuntimeError``: LangGraph's default
    retry policy does not retry it)."""


@dataclass(slots=True)
class TokenBudget:
    limit: int | None
    """Tokens this run may use (None: no quota)."""
    used: int = 0
    """Tokens the pipeline's model calls used in this run."""

    def check(self) -> None:
        if self.limit is not None and self.used >= self.limit:
            raise JobTokenQuotaExceeded(
                f"the daily LLM token quota of jobs is spent ({self.used} tokens used by this job, "
                f"{self.limit} were left)"
            )

    def add(self, tokens: int) -> None:
        self.used += max(0, tokens)


CURRENT: contextvars.ContextVar[TokenBudget | None] = contextvars.ContextVar("prism_job_budget", default=None)


def current() -> TokenBudget | None:
    return CURRENT.get()
