"""Resolve the requested model or alias into a chain of targets and shadows.

For ``auto`` requests of a conversation, the tier the conversation needed earlier is a floor (upward
stickiness, ``routing.sticky_upgrade_s``); the store is read with a short timeout and fails open.
A refusal (unknown model, a model the principal may not use, a prompt too long for every target)
becomes the request's ``error``: ``gate`` still lets a cached answer or a quota refusal win over it.
``/v1/route/explain`` runs this same step with ``context.explain``: it reads the floor, never
extends it, and counts nothing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from langgraph.runtime import Runtime

from gateway.agent.state import PipelineContext, PipelineState
from gateway.errors import GatewayError
from gateway.observability import access, metrics
from gateway.routing.router import RouteDecision
from gateway.routing.smart import SmartRouting

if TYPE_CHECKING:
    from gateway.runtime import RuntimeSnapshot


def tool_capable_first(decision: RouteDecision, snapshot: RuntimeSnapshot) -> RouteDecision:
    """A prompt that needs a tool is served by a model that can call one (``supports_tools``):
    such targets of the chain move to the front, in their order (issue #22, item 7)."""
    targets = snapshot.targets
    capable = [n for n in decision.targets if n in targets and targets[n].config.supports_tools]
    if not capable or capable[0] == decision.targets[0]:
        return decision
    rest = [n for n in decision.targets if n not in capable]
    return dataclasses.replace(decision, targets=(*capable, *rest))


async def route(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    request = state["request"]
    router = ctx.snapshot.router
    smart = ctx.snapshot.config.routing
    memory = ctx.classifier.tiers if isinstance(ctx.classifier, SmartRouting) else None
    conversation = ctx.sticky.get("conversation")
    sticky = (
        memory is not None
        and conversation is not None
        and smart.sticky_upgrade_s > 0
        and router.is_smart(request.model)
    )
    floor = None
    if sticky:
        assert memory is not None and conversation is not None
        floor = await memory.floor(
            tenant=ctx.principal.tenant, conversation=conversation, timeout_s=smart.sticky_timeout_ms / 1000
        )
    try:
        decision = router.route(
            requested=request.model,
            principal=ctx.principal,
            intent=state.get("intent"),
            prompt_tokens=request.prompt_tokens,
            max_tokens=request.params.get("max_completion_tokens") or request.params.get("max_tokens"),
            sticky=ctx.sticky,
            request_id=ctx.trace.request_id,
            min_tier=floor,
        )
    except GatewayError as exc:
        return {"error": exc}
    intent = state.get("intent")
    if intent is not None and intent.tools and router.is_smart(request.model):
        decision = tool_capable_first(decision, ctx.snapshot)
    if ctx.explain:
        return {"route": decision, "target_index": 0, "attempt": 0}
    needed = decision.needed_tier
    # only a tier the request needed by itself (not one stickiness gave it) starts or extends the window
    if sticky and needed is not None and decision.sticky_from is None and needed != smart.tiers[0]:
        assert memory is not None and conversation is not None
        memory.remember(
            tenant=ctx.principal.tenant, conversation=conversation, tier=needed, ttl_s=smart.sticky_upgrade_s
        )
    if decision.intent is not None:
        metrics.INTENTS.labels(intent=decision.intent, tier=decision.tier or "explicit").inc()
    if decision.policy is not None:
        fields = access.current()
        if fields is not None:
            fields["model_policy"] = decision.policy.source
            fields["model_policy_removed"] = decision.policy.targets_removed + decision.policy.shadows_removed
            if decision.policy.arm_reassigned:
                fields["model_policy_arm_reassigned"] = True
    if decision.tier is not None:
        fields = access.current()
        if fields is not None:
            fields["routing_tier"] = decision.tier
            if decision.capped_from is not None:
                fields["routing_tier_capped_from"] = decision.capped_from
            if decision.sticky_from is not None:
                fields["routing_tier_sticky_from"] = decision.sticky_from
    return {"route": decision, "target_index": 0, "attempt": 0}
