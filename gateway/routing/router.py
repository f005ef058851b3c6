"""Turns (requested model or alias, intent, principal, circuit state) into a route.

A route is an ordered chain of targets (primary first, then fallbacks), the
shadow targets to mirror to, and the labels that explain the choice
(``x-prism-route``, usage records, metrics).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import ContextTooLong, InvalidRequest, ModelNotFound, PermissionDenied
from gateway.intent import IntentResult, decide_tier
from gateway.observability import metrics
from gateway.providers.registry import Target
from gateway.routing.circuit import CircuitBreakers, CircuitState
from gateway.routing.config import AliasConfig, RoutingConfig
from gateway.security.principal import Principal

if TYPE_CHECKING:
    from gateway.experiments.runtime import Experiments


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


def bucket(*parts: str) -> float:
    """A stable position in [0, 1) for a sticky key: the same key always lands in the same place."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def pick_weighted(weights: Mapping[str, float], position: float) -> str:
    """Bucket ranges in the config's order: changing one weight moves only the users at the boundary."""
    total = sum(weights.values())
    edge = 0.0
    last = next(iter(weights))
    for name, weight in weights.items():
        edge += weight / total
        last = name
        if position < edge:
            return name
    return last


def tier_for(intent: IntentResult, config: RoutingConfig) -> str:
    """The classifier's tier rule with the config's thresholds; unknown tier names mean the strongest tier."""
    smart = config.routing
    tier = decide_tier(intent, intent_tiers=smart.intent_tiers, strong_complexity=smart.strong_complexity,
                       low_confidence=smart.low_confidence, default_tier=smart.default_tier)
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
        ``max_route_tier`` caps smart routing's tier and its fallbacks, and wins over ``min_tier``."""
        if not principal.may_use(requested):
            raise PermissionDenied(
                f"this key may not use model {requested!r}", param="model", code="model_not_allowed"
            )
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
                self._check_fits(available[0], needed, max_tokens)
                arm_chain = dict.fromkeys(available)
                for name in self._chain(requested, available[0]):
                    arm_chain.setdefault(name)
                return RouteDecision(
                    requested=requested,
                    targets=tuple(arm_chain),
                    shadows=self._shadows(alias, request_id) if alias is not None else (),
                    experiment=assignment.experiment,
                    arm=assignment.arm,
                    intent=intent.label if intent else None,
                    confidence=intent.confidence if intent else None,
                )
        if alias is None:
            if requested not in self.targets:
                raise ModelNotFound(f"The model {requested!r} does not exist", param="model")
            self._check_fits(requested, needed, max_tokens)
            return RouteDecision(
                requested=requested,
                targets=self._chain(requested, requested),
                intent=intent.label if intent else None,
                confidence=intent.confidence if intent else None,
            )
        shadows = self._shadows(alias, request_id)
        if alias.smart:
            if intent is None:
                raise RuntimeError("smart routing needs an intent")
            tiers = self.config.routing.tiers
            tier = tier_for(intent, self.config)
            sticky_from = None
            if min_tier in tiers and tiers.index(min_tier) > tiers.index(tier):
                sticky_from, tier = tier, min_tier
            cap = self.tier_cap(principal)
            capped_from = None
            if cap is not None and tiers.index(tier) > tiers.index(cap):
                capped_from, tier = tier, cap
                metrics.ROUTE_CAPPED.labels(from_tier=capped_from, to_tier=cap).inc()
            chain = self._smart_chain(tier, needed, max_tier=cap)
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
            )
        if alias.split is not None:
            key = sticky.get(alias.sticky) or sticky.get("request") or request_id
            arm = pick_weighted(alias.split, bucket(requested, key))
            if arm not in self.targets:
                raise ModelNotFound(
                    f"the model {arm!r} of alias {requested!r} is not available", param="model"
                )
            return RouteDecision(
                requested=requested,
                targets=self._chain(requested, arm),
                shadows=shadows,
                experiment=requested,
                arm=arm,
            )
        assert alias.target is not None
        if alias.target not in self.targets:
            raise ModelNotFound(f"the model behind alias {requested!r} is not available", param="model")
        self._check_fits(alias.target, needed, max_tokens)
        return RouteDecision(
            requested=requested, targets=self._chain(requested, alias.target), shadows=shadows
        )

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

    def _smart_chain(self, tier: str, needed: int, *, max_tier: str | None = None) -> tuple[str, ...]:
        """Models of ``tier`` and above (up to ``max_tier``) that fit, cheapest first, healthy first;
        else the lower tiers' models that fit. Fallbacks above ``max_tier`` are left out."""
        tiers = self.config.routing.tiers
        start = tiers.index(tier) if tier in tiers else len(tiers) - 1
        stop = tiers.index(max_tier) + 1 if max_tier in tiers else len(tiers)
        fitting = [
            name
            for t in tiers[start:stop]
            for name in self._by_tier.get(t, ())
            if self.targets[name].config.context_window >= needed
        ]
        if not fitting:
            fitting = [
                name
                for t in tiers[:start]
                for name in self._by_tier.get(t, ())
                if self.targets[name].config.context_window >= needed
            ]
        if not fitting:
            raise ContextTooLong(
                "no configured model has a context window large enough for this request"
                + ("" if max_tier is None else f" within this key's max_route_tier {max_tier!r}"),
                param="messages",
            )
        healthy = [name for name in fitting if self.circuits.state(name) is not CircuitState.OPEN]
        ordered = healthy + [name for name in fitting if name not in healthy]
        primary = ordered[0]
        chain = dict.fromkeys((*self._chain(primary, primary), *ordered))
        if max_tier is not None:
            allowed = set(tiers[:stop])
            chain = dict.fromkeys(name for name in chain if self.targets[name].config.tier in allowed)
        return tuple(chain)

    def _shadows(self, alias: AliasConfig, request_id: str) -> tuple[str, ...]:
        if not alias.shadow or bucket("shadow", request_id) >= alias.shadow_sample_rate:
            return ()
        return tuple(name for name in alias.shadow if name in self.targets)
