"""The destination's PII policy over embedding inputs (docs/guardrails.md, docs/embeddings.md).

The policy is the one chat uses for the same destination (``guardrails.policy_for``: per-model
override, else ``external`` or ``local``). Only its PII part applies: an input that is embedded is
never read as an instruction, so prompt-injection scoring is skipped. ``mask`` replaces the value
with its placeholder before the upstream sees it (the vector is then the masked text's), ``block``
refuses the request with 400 ``pii_blocked``, ``flag`` and ``allow`` pass it, reported. When every
action of the policy is ``allow`` the detector is not run at all (bulk document embedding to a
local model costs nothing extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from gateway.agent.guard import MAX_HEADER
from gateway.config.guardrails import GuardPolicy
from gateway.errors import ContentBlocked
from gateway.observability import metrics
from gateway.providers.embeddings import EmbeddingTarget
from gateway.runtime import RuntimeSnapshot

if TYPE_CHECKING:
    from gateway.services.embedding_books import EmbeddingBooks

log = structlog.get_logger("prism.guard")


def pii_policy(snapshot: RuntimeSnapshot, target: EmbeddingTarget) -> GuardPolicy:
    policy = snapshot.guardrails.policy_for(model=target.name, is_local=target.provider.is_local)
    return policy.model_copy(
        update={"injection": policy.injection.model_copy(update={"roles": frozenset(), "learned": False})}
    )


def policy_acts(snapshot: RuntimeSnapshot, target: EmbeddingTarget) -> bool:
    policy = snapshot.guardrails.policy_for(model=target.name, is_local=target.provider.is_local)
    if not policy.enabled:
        return False
    return policy.pii_default != "allow" or any(action != "allow" for action in policy.pii.values())


def guard_inputs(
    snapshot: RuntimeSnapshot, target: EmbeddingTarget, texts: list[str], *, books: EmbeddingBooks
) -> list[str]:
    """The texts to send (``texts`` itself when nothing was masked); raises ``ContentBlocked``."""
    if not policy_acts(snapshot, target):
        return texts
    messages = [{"role": "input", "content": text} for text in texts]
    verdict = snapshot.guardrails.check_input(messages, policy=pii_policy(snapshot, target))
    if not verdict.pii_detected:
        return texts
    header = verdict.header_value()
    books.guard_header = header[:MAX_HEADER]
    for category, action in verdict.metric_labels():
        metrics.GUARD_ACTIONS.labels(stage="input", category=category, action=action).inc()
    log.info(
        "guard_verdict",
        request_id=books.record.request_id,
        model=target.name,
        endpoint="embeddings",
        **verdict.as_log_fields(),
    )
    if verdict.blocked:
        raise ContentBlocked(
            "The request was blocked: it contains personal data the destination may not receive.",
            param="input",
            code=verdict.block_reason or "pii_blocked",
            headers={"x-prism-guard": books.guard_header},
        )
    if not verdict.pii_masked:
        return texts
    return [str(message["content"]) for message in verdict.messages]
