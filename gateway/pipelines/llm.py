"""Model calls of the pipelines through Prism's own request path: :meth:`CompletionService.run`
in-process, with the job owner's principal (or the service principal), so a pipeline's calls are
routed, guarded, rate-limited, charged to the owner's quotas and written to the usage ledger like
any ``/v1/chat/completions`` request.

Every call gets a fresh request id (``pipe-…``, the key of its usage record: a retried step's
calls are real spend and recorded as such); the run, step and job ride along as request metadata
(``prism_run``, ``prism_step``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.agent.state import ChatInput
from gateway.pipelines import budget as job_budget
from gateway.providers.tokens import count_messages
from gateway.security.principal import Principal, Role

SERVICE_PRINCIPAL = Principal(user_id=None, role=Role.USER, tier="service")
"""Who a pipeline's calls are made as when its input names no owner."""


class Completions(Protocol):
    async def run(
        self, *, chat: ChatInput, principal: Principal, request_id: str, sticky: dict[str, str | None]
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    model: str | None
    usage: dict[str, int] = field(default_factory=dict)
    request_id: str = ""


def principal_from(data: Mapping[str, Any] | None) -> Principal:
    """A pipeline input's ``principal`` (the job owner, as the jobs API resolved it at submit
    time): ``user_id``, ``api_key_id``, ``tier``, ``role``, ``allowed_models``, ``rpm_limit``,
    ``tpm_limit``, ``max_route_tier``; the service principal when absent."""
    if not data:
        return SERVICE_PRINCIPAL
    return Principal(
        user_id=data.get("user_id"),
        role=Role(data.get("role", "user")),
        tier=str(data.get("tier", "free")),
        api_key_id=data.get("api_key_id"),
        allowed_models=frozenset(data.get("allowed_models") or ()),
        user_allowed_models=frozenset(data.get("user_allowed_models") or ()),
        rpm_limit=data.get("rpm_limit"),
        tpm_limit=data.get("tpm_limit"),
        max_route_tier=data.get("max_route_tier"),
    )


def principal_json(principal: Principal) -> dict[str, Any]:
    """The inverse of :func:`principal_from`, for a job's stored input."""
    return {
        "user_id": principal.user_id,
        "role": str(principal.role),
        "tier": principal.tier,
        "api_key_id": principal.api_key_id,
        "allowed_models": sorted(principal.allowed_models),
        "user_allowed_models": sorted(principal.user_allowed_models),
        "rpm_limit": principal.rpm_limit,
        "tpm_limit": principal.tpm_limit,
        "max_route_tier": principal.max_route_tier,
    }


class PipelineLLM:
    """Asks ``model`` (any name the routing file knows, aliases and ``auto`` included) through the
    completion service."""

    def __init__(self, completions: Completions, *, model: str) -> None:
        self.completions = completions
        self.model = model

    async def ask(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        principal: Principal,
        model: str | None = None,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Answer:
        params: dict[str, Any] = {"temperature": 0}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "extraction", "strict": True, "schema": dict(json_schema)},
            }
        chat_messages = [dict(m) for m in messages]
        chat = ChatInput(
            model=model or self.model,
            messages=chat_messages,
            params=params,
            stream=False,
            include_usage=False,
            metadata=dict(metadata or {}),
            prompt_tokens=count_messages(chat_messages),
        )
        request_id = f"pipe-{uuid.uuid4().hex}"
        budget = job_budget.current()  # a job's daily token quota (gateway/pipelines/budget.py)
        if budget is not None:
            budget.check()
        reply = await self.completions.run(chat=chat, principal=principal, request_id=request_id, sticky={})
        body: Mapping[str, Any] = getattr(reply, "body", None) or {}
        choices = body.get("choices") or [{}]
        text = (choices[0].get("message") or {}).get("content") or ""
        usage = {k: int(v) for k, v in (body.get("usage") or {}).items() if isinstance(v, int)}
        if budget is not None:
            budget.add(
                usage.get("total_tokens") or usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            )
        return Answer(text=text, model=body.get("model"), usage=usage, request_id=request_id)
