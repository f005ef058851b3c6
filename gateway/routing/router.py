"""Turns (requested model or alias, intent, principal, circuit state) into a route.

A route is an ordered chain of targets (primary first, then fallbacks), the
shadow targets to mirror to, and the labels that explain the choice
(``x-prism-route``, usage records, metrics).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config.routing import AliasConfig, RoutingConfig
from gateway.errors import ContextTooLong, InvalidRequest, ModelNotFound, PermissionDenied
from gateway.experiments.sticky import bucket, pick_weighted
from gateway.intent import IntentResult, decide_tier
from gateway.observability import metrics
from gateway.providers.registry import Target
from gateway.routing.circuit import CircuitBreakers, CircuitState
from gateway.security.principal import Principal

if TYPE_CHECKING:
    from gateway.experiments.runtime import Experiments


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What the principal's model allow-list did to a route. Counts only: it never names the models it
    removed, since those are the ones this principal may not know about."""

    source: str
    """Which allow-lists applied: ``key``, ``user`` or ``key+user``."""
    targets_removed: int = 0
    """Models the route would have used (primary or fallbacks) without the allow-list."""
    shadows_removed: int = 0
    arm_reassigned: bool = False
    """The experiment or split arm drawn for this request was not allowed: another arm (the control)
    answers and the request is not counted in the experiment."""

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed_models": self.source,
            "targets_removed": self.targets_removed,
            "shadows_removed": self.shadows_removed,
            "arm_reassigned": self.arm_reassigned,
        }


UNRESTRICTED_POLICY: dict[str, object] = {
    "allowed_models": None,
    "targets_removed": 0,
    "shadows_removed": 0,
    "arm_reassigned": False,
}


@dataclass(frozen=True, slots=True)
class RouteDecision:
    requested: str
    targets: tuple[str, ...]
    shadows: tuple[str, ...] = ()
    tier: str | None = None
    intent: str | None = None
    confidence: float | None = None
    experiment: str | None = None
    arm: str | None = None
    capped_from: str | None = None
    """The tier smart routing chose before the key's / user's ``max_route_tier`` capped it."""
    sticky_from: str | None = None
    """The classifier's tier when the conversation's earlier tier (stickiness) raised it."""
    escalation: str | None = None
    """LLM escalation of the intent: ``used`` / ``timeout`` / ``error``; None when not tried."""
    policy: RoutePolicy | None = None
    """Set when an allow-list restricts the principal (every target and shadow above is allowed)."""

    @property
    def policy_summary(self) -> dict[str, object]:
        """The applied model policy for ``/v1/route/explain`` (counts only, no hidden model names)."""
        return self.policy.as_dict() if self.policy is not None else dict(UNRESTRICTED_POLICY)

    @property
    def needed_tier(self) -> str | None:
        """The tier the request needed before any policy cap (what conversation stickiness remembers)."""
        return self.capped_from or self.tier

    @property
    def label(self) -> str:
        parts = []
        if self.intent is not None:
            parts.append(f"intent={self.intent}")
            if self.confidence is not None:
                parts.append(f"confidence={self.confidence:.2f}")
            if self.escalation is not None:
                parts.append(f"escalation={self.escalation}")
        if self.tier is not None:
            parts.append(f"tier={self.tier}")
        if self.sticky_from is not None:
            parts.append(f"sticky_from={self.sticky_from}")
        if self.capped_from is not None:
            parts.append(f"capped_from={self.capped_from}")
        if self.experiment is not None:
            parts.append(f"experiment={self.experiment}")
            parts.append(f"arm={self.arm}")
        parts.append(f"model={self.targets[0]}")
        return ";".join(parts)


_POLICY_NAMES = {
    "key": "allowed_models policy of this API key",
    "user": "allowed_models policy of this user",
    "key+user": "allowed_models policy of this API key and its user",
}


def calibrated_threshold(intent: IntentResult, config: RoutingConfig) -> float | None:
    """The ``routing.complexity_thresholds`` entry for the prompt's intent and language (else ``"*"``)."""
    per_language = config.routing.complexity_thresholds.get(intent.label)
    return None if per_language is None else per_language.get(intent.language, per_language.get("*"))


def tier_for(intent: IntentResult, config: RoutingConfig) -> str:
    """The classifier's tier rule with the config's thresholds; unknown tier names mean the strongest tier.
    A calibrated ``routing.complexity_thresholds`` entry for the prompt's intent and language replaces
    ``strong_complexity`` for it and may send an intent mapped above the cheapest tier there."""
    smart = config.routing
    tier = decide_tier(intent, intent_tiers=smart.intent_tiers, strong_complexity=smart.strong_complexity,
                       low_confidence=smart.low_confidence, default_tier=smart.default_tier)
    if smart.complexity_thresholds:  # calibrated (issue #21); empty: one truthiness check, today's rule
        threshold = calibrated_threshold(intent, config)
        if threshold is not None:
            if intent.confidence >= smart.low_confidence and intent.complexity < threshold:
                return smart.tiers[0]
            if tier == smart.tiers[0]:
                tier = "strong"
    return tier if tier in smart.tiers else smart.tiers[-1]


class Router:
    def __init__(
        self,
        *,
        config: RoutingConfig,
        targets: Mapping[str, Target],
        circuits: CircuitBreakers,
        experiments: Experiments | None = None,
    ) -> None:
        self.config = config
        self.experiments = experiments
        self.targets = targets
        self.circuits = circuits
        tiers = config.routing.tiers
        self._by_tier = {
            tier: sorted(
                (name for name, target in targets.items() if target.config.tier == tier),
                key=lambda name: (
                    targets[name].config.price_input_per_mtok + targets[name].config.price_output_per_mtok,
                    name,
                ),
            )
            for tier in tiers
        }

    def is_smart(self, requested: str) -> bool:
        alias = self.config.aliases.get(requested)
        return alias is not None and alias.smart

    def tier_cap(self, principal: Principal) -> str | None:
        """The stricter of the key's and the user's ``max_route_tier``; a name that is not one of
        ``routing.tiers`` (e.g. after a config change) caps at the cheapest tier (fail closed)."""
        tiers = self.config.routing.tiers
        caps = [cap for cap in (principal.max_route_tier, principal.user_max_route_tier) if cap is not None]
        if not caps:
            return None
        if any(cap not in tiers for cap in caps):
            return tiers[0]
        return min(caps, key=tiers.index)

    def needs_intent(self, requested: str) -> bool:
        alias = self.config.aliases.get(requested)
        return (alias is not None and alias.smart) or self.config.routing.classify_all

    def context_window_for(self, requested: str) -> int | None:
        """The window a conversation's history is trimmed to: the model's own, the smallest among an
        alias's possible targets, or the largest configured one for smart routing (which then picks
        a model that fits); ``None`` for names that do not resolve (routing reports those)."""
        if requested in self.targets:
            return self.targets[requested].config.context_window
        alias = self.config.aliases.get(requested)
        if alias is None:
            return None
        if alias.smart:
            names = list(self.targets)
        else:
            candidates = [alias.target, *(alias.split or {})]
            names = [name for name in candidates if name is not None and name in self.targets]
        windows = [self.targets[name].config.context_window for name in names]
        if not windows:
            return None
        return max(windows) if alias.smart else min(windows)

    def public_names(self) -> list[str]:
        extra = self.experiments.aliases if self.experiments is not None else []
        return sorted({*self.targets, *self.config.aliases, *extra})

    def route(
        self,
        *,
        requested: str,
        principal: Principal,
        intent: IntentResult | None,
        prompt_tokens: int,
        max_tokens: int | None,
        sticky: Mapping[str, str | None],
        request_id: str,
        min_tier: str | None = None,
    ) -> RouteDecision:
        """``min_tier``: smart routing picks at least this tier (conversation stickiness); a principal's
        ``max_route_tier`` caps smart routing's tier and its fallbacks, and wins over ``min_tier``.

        A principal with an allow-list (``allowed_models`` of its key or user) must be allowed the
        name it asks for *and* every model that may answer: the chain (primary, fallbacks), the
        experiment arm and the shadows are filtered here, so every caller (the graph, explain) sees
        the same chain; when nothing allowed is left the request is refused (403
        ``model_not_allowed``) without naming the models it may not use.
        """
        if not principal.may_use(requested):
            raise PermissionDenied(
                f"this key may not use model {requested!r}", param="model", code="model_not_allowed"
            )
        restricted = bool(principal.allowed_models or principal.user_allowed_models)
        allowed = principal.may_use if restricted else None
        alias = self.config.aliases.get(requested)
        needed = prompt_tokens + (max_tokens or 0)
        if self.experiments is not None and self.experiments.covers(requested):
            assignment = self.experiments.assign(requested, sticky=sticky, request_id=request_id)
            if assignment is not None:
                available = [name for name in assignment.chain if name in self.targets]
                if not available:
                    raise ModelNotFound(
                        f"no model of arm {assignment.arm!r} of {requested!r} is available", param="model"
                    )
                unrestricted = self._arm_chain(requested, available)
                experiment: str | None = assignment.experiment
                arm: str | None = assignment.arm
                chosen = unrestricted
                reassigned = False
                if allowed is not None and not allowed(available[0]):
                    reassigned, experiment, arm = True, None, None
                    other = self._allowed_arm(assignment.experiment, allowed)
                    if other is not None:
                        chosen = self._arm_chain(requested, other)
                chain, policy = self._restrict(
                    requested, principal, unrestricted, chosen, allowed, reassigned=reassigned
                )
                self._check_fits(chain[0], needed, max_tokens)
                shadows, policy = self._allowed_shadows(alias, request_id, allowed, policy)
                return RouteDecision(
                    requested=requested,
                    targets=chain,
                    shadows=shadows,
                    experiment=experiment,
                    arm=arm,
                    intent=intent.label if intent else None,
                    confidence=intent.confidence if intent else None,
                    policy=policy,
                )
        if alias is None:
            if requested not in self.targets:
                raise ModelNotFound(f"The model {requested!r} does not exist", param="model")
            self._check_fits(requested, needed, max_tokens)
            unrestricted = self._chain(requested, requested)
            chain, policy = self._restrict(requested, principal, unrestricted, unrestricted, allowed)
            return RouteDecision(
                requested=requested,
                targets=chain,
                intent=intent.label if intent else None,
                confidence=intent.confidence if intent else None,
                policy=policy,
            )
        if alias.smart:
            if intent is None:
                raise RuntimeError("smart routing needs an intent")
            tiers = self.config.routing.tiers
            tier = tier_for(intent, self.config)
            smart = self.config.routing
            if smart.complexity_thresholds and calibrated_threshold(intent, self.config) is not None:
                metrics.ROUTE_CALIBRATED.labels(intent.label, intent.language, tier).inc()
            sticky_from = None
            if min_tier in tiers and tiers.index(min_tier) > tiers.index(tier):
                sticky_from, tier = tier, min_tier
            cap = self.tier_cap(principal)
            capped_from = None
            if cap is not None and tiers.index(tier) > tiers.index(cap):
                capped_from, tier = tier, cap
                metrics.ROUTE_CAPPED.labels(from_tier=capped_from, to_tier=cap).inc()
            unrestricted = self._smart_chain(tier, needed, max_tier=cap)
            chosen = unrestricted if allowed is None else self._smart_chain(
                tier, needed, max_tier=cap, allowed=allowed
            )
            chain, policy = self._restrict(requested, principal, unrestricted, chosen, allowed)
            shadows, policy = self._allowed_shadows(alias, request_id, allowed, policy)
            return RouteDecision(
                requested=requested,
                targets=chain,
                shadows=shadows,
                tier=tier,
                intent=intent.label,
                confidence=intent.confidence,
                capped_from=capped_from,
                sticky_from=sticky_from,
                escalation=intent.escalation,
                policy=policy,
            )
        if alias.split is not None:
            key = sticky.get(alias.sticky) or sticky.get("request") or request_id
            position = bucket(requested, key)
            split_arm = pick_weighted(alias.split, position)
            if split_arm not in self.targets:
                raise ModelNotFound(
                    f"the model {split_arm!r} of alias {requested!r} is not available", param="model"
                )
            unrestricted = self._chain(requested, split_arm)
            chosen = unrestricted
            split_experiment: str | None = requested
            reassigned = False
            if allowed is not None and not allowed(split_arm):
                reassigned, split_experiment = True, None
                weights = {
                    name: weight
                    for name, weight in alias.split.items()
                    if weight > 0 and name in self.targets and allowed(name)
                }
                if weights:
                    chosen = self._chain(requested, pick_weighted(weights, position))
            chain, policy = self._restrict(
                requested, principal, unrestricted, chosen, allowed, reassigned=reassigned
            )
            shadows, policy = self._allowed_shadows(alias, request_id, allowed, policy)
            return RouteDecision(
                requested=requested,
                targets=chain,
                shadows=shadows,
                experiment=split_experiment,
                arm=split_arm if split_experiment is not None else None,
                policy=policy,
            )
        assert alias.target is not None
        if alias.target not in self.targets:
            raise ModelNotFound(f"the model behind alias {requested!r} is not available", param="model")
        unrestricted = self._chain(requested, alias.target)
        chain, policy = self._restrict(requested, principal, unrestricted, unrestricted, allowed)
        self._check_fits(chain[0], needed, max_tokens)
        shadows, policy = self._allowed_shadows(alias, request_id, allowed, policy)
        return RouteDecision(requested=requested, targets=chain, shadows=shadows, policy=policy)

    def _arm_chain(self, requested: str, models: Iterable[str]) -> tuple[str, ...]:
        """An experiment arm's available models, then the fallbacks of its primary and of the alias."""
        chain = dict.fromkeys(name for name in models if name in self.targets)
        primary = next(iter(chain))
        for name in self._chain(requested, primary):
            chain.setdefault(name)
        return tuple(chain)

    def _allowed_arm(self, experiment: str, allowed: Callable[[str], bool]) -> list[str] | None:
        """The arm that answers when the drawn one is not allowed: the control, else the first arm in the
        config's order, whose first available model is allowed (deterministic, so still sticky)."""
        assert self.experiments is not None
        exp = self.experiments.configs[experiment]
        for name in (exp.control, *exp.arms):
            available = [model for model in exp.arms[name].chain if model in self.targets]
            if available and allowed(available[0]):
                return available
        return None

    def _restrict(
        self,
        requested: str,
        principal: Principal,
        unrestricted: tuple[str, ...],
        chosen: tuple[str, ...],
        allowed: Callable[[str], bool] | None,
        *,
        reassigned: bool = False,
    ) -> tuple[tuple[str, ...], RoutePolicy | None]:
        """``chosen`` without the models the principal may not use; 403 when none is left."""
        if allowed is None:
            return chosen, None
        chain = tuple(name for name in chosen if allowed(name))
        source = principal.model_policy or "key"
        if not chain:
            metrics.ROUTE_POLICY.labels(outcome="denied").inc()
            raise PermissionDenied(
                f"the {_POLICY_NAMES.get(source, source)} allows none of the models that can serve "
                f"{requested!r}",
                param="model",
                code="model_not_allowed",
            )
        removed = sum(1 for name in unrestricted if name not in chain)
        if reassigned:
            metrics.ROUTE_POLICY.labels(outcome="reassigned").inc()
        elif removed:
            metrics.ROUTE_POLICY.labels(outcome="filtered").inc()
        return chain, RoutePolicy(source=source, targets_removed=removed, arm_reassigned=reassigned)

    def _allowed_shadows(
        self,
        alias: AliasConfig | None,
        request_id: str,
        allowed: Callable[[str], bool] | None,
        policy: RoutePolicy | None,
    ) -> tuple[tuple[str, ...], RoutePolicy | None]:
        shadows = self._shadows(alias, request_id) if alias is not None else ()
        if allowed is None or policy is None or self.config.access.shadows_exempt:
            return shadows, policy
        kept = tuple(name for name in shadows if allowed(name))
        if len(kept) == len(shadows):
            return shadows, policy
        metrics.ROUTE_POLICY.labels(outcome="shadow_filtered").inc()
        return kept, dataclasses.replace(policy, shadows_removed=len(shadows) - len(kept))

    def _chain(self, requested: str, primary: str) -> tuple[str, ...]:
        chain = [primary]
        for name in (*self.config.fallbacks.get(primary, ()), *self.config.fallbacks.get(requested, ())):
            if name in self.targets and name not in chain:
                chain.append(name)
        return tuple(chain)

    def _check_fits(self, name: str, needed: int, max_tokens: int | None = None) -> None:
        config = self.targets[name].config
        window = config.context_window
        if needed > window:
            raise ContextTooLong(
                f"This model's maximum context length is {window} tokens; the request needs {needed} "
                "(prompt plus max_tokens)",
                param="messages",
            )
        if max_tokens is not None and max_tokens > config.max_output_tokens:
            raise InvalidRequest(
                f"max_tokens is too large: {max_tokens}. This model supports at most "
                f"{config.max_output_tokens} completion tokens",
                param="max_tokens",
                code="invalid_value",
            )

    def _smart_chain(
        self,
        tier: str,
        needed: int,
        *,
        max_tier: str | None = None,
        allowed: Callable[[str], bool] | None = None,
    ) -> tuple[str, ...]:
        """Models of ``tier`` and above (up to ``max_tier``) that fit, cheapest first, healthy first;
        else the lower tiers' models that fit. Fallbacks above ``max_tier`` are left out. With
        ``allowed`` (an allow-list), only allowed models are candidates, so a principal allowed only
        cheap models gets the best allowed one rather than a refusal; empty when none is allowed."""
        tiers = self.config.routing.tiers
        start = tiers.index(tier) if tier in tiers else len(tiers) - 1
        stop = tiers.index(max_tier) + 1 if max_tier in tiers else len(tiers)

        def fitting_in(selected: list[str]) -> list[str]:
            return [
                name
                for t in selected
                for name in self._by_tier.get(t, ())
                if self.targets[name].config.context_window >= needed
            ]

        upper, lower = fitting_in(tiers[start:stop]), fitting_in(tiers[:start])
        if not upper and not lower:
            raise ContextTooLong(
                "no configured model has a context window large enough for this request"
                + ("" if max_tier is None else f" within this key's max_route_tier {max_tier!r}"),
                param="messages",
            )
        if allowed is not None:
            upper = [name for name in upper if allowed(name)]
            lower = [name for name in lower if allowed(name)]
        fitting = upper or lower
        if not fitting:
            return ()
        healthy = [name for name in fitting if self.circuits.state(name) is not CircuitState.OPEN]
        ordered = healthy + [name for name in fitting if name not in healthy]
        primary = ordered[0]
        chain = dict.fromkeys((*self._chain(primary, primary), *ordered))
        if max_tier is not None:
            capped = set(tiers[:stop])
            chain = dict.fromkeys(name for name in chain if self.targets[name].config.tier in capped)
        return tuple(chain)

    def _shadows(self, alias: AliasConfig, request_id: str) -> tuple[str, ...]:
        if not alias.shadow or bucket("shadow", request_id) >= alias.shadow_sample_rate:
            return ()
        return tuple(name for name in alias.shadow if name in self.targets)
