"""Authorization on the served model (issue #18): the router only ever chooses models the principal's
allow-lists permit, on every path (explicit model, alias, ``auto``, split, experiment arm, canary,
fallbacks, shadows), and refuses with 403 ``model_not_allowed`` naming no hidden model."""

from __future__ import annotations

import pytest

from gateway.config.routing import parse_config
from gateway.errors import PermissionDenied
from gateway.experiments.runtime import Experiments
from gateway.intent import IntentResult
from gateway.providers.registry import build_targets
from gateway.routing.circuit import CircuitBreakers
from gateway.routing.router import Router
from gateway.security.principal import Principal

CONFIG = """
models:
  fast: {provider: mock, tier: cheap, price_input_per_mtok: 0.1}
  mini: {provider: mock, tier: cheap, price_input_per_mtok: 0.2}
  smart: {provider: mock, tier: strong, price_input_per_mtok: 2.0}
  secret: {provider: mock, tier: strong, price_input_per_mtok: 9.0}
aliases:
  auto: {smart: true}
  pinned: {target: smart}
  ab: {split: {smart: 1.0, fast: 0.0000001}, sticky: request}
  mirrored: {target: fast, shadow: [secret, mini]}
fallbacks:
  fast: [smart, mini]
  smart: [secret]
experiments:
  trial:
    alias: exp
    control: base
    sticky: request
    arms:
      base: {model: fast}
      new: {models: [secret, smart], weight: 1000000}
  rollout:
    alias: canary
    control: old
    sticky: request
    arms:
      old: {model: mini}
      next: {model: smart}
    canary: {arm: next, steps: [{percent: 100}]}
%(access)s
"""

EASY = IntentResult(label="small_talk", confidence=0.95, complexity=0.1, language="en")
HARD = IntentResult(label="reasoning", confidence=0.95, complexity=0.9, language="en")


def _router(access: str = "") -> Router:
    config = parse_config(CONFIG % {"access": access})
    experiments = Experiments()
    experiments.configure(config)
    return Router(
        config=config,
        targets=build_targets(config, clients=None, env={}),
        circuits=CircuitBreakers(config.circuit_breaker),
        experiments=experiments,
    )


def _key(*models: str, user: tuple[str, ...] = ()) -> Principal:
    return Principal(user_id="u1", allowed_models=frozenset(models), user_allowed_models=frozenset(user))


def _route(router: Router, principal: Principal, requested: str, intent: IntentResult | None = None):  # type: ignore[no-untyped-def]
    return router.route(
        requested=requested,
        principal=principal,
        intent=intent,
        prompt_tokens=10,
        max_tokens=None,
        sticky={"request": "r1"},
        request_id="r1",
    )


def test_unrestricted_principal_keeps_the_full_chain_and_reports_no_policy() -> None:
    decision = _route(_router(), Principal(user_id="u1"), "fast")
    assert decision.targets == ("fast", "smart", "mini")
    assert decision.policy is None
    assert decision.policy_summary == {
        "allowed_models": None,
        "targets_removed": 0,
        "shadows_removed": 0,
        "arm_reassigned": False,
    }


def test_fallbacks_to_disallowed_models_are_removed() -> None:
    decision = _route(_router(), _key("fast", "mini"), "fast")
    assert decision.targets == ("fast", "mini")
    assert decision.policy is not None and decision.policy.targets_removed == 1
    assert decision.policy_summary["allowed_models"] == "key"


def test_only_the_requested_model_allowed_means_no_fallback() -> None:
    assert _route(_router(), _key("fast"), "fast").targets == ("fast",)


def test_allowing_an_alias_does_not_grant_its_target() -> None:
    with pytest.raises(PermissionDenied) as caught:
        _route(_router(), _key("pinned"), "pinned")
    error = caught.value
    assert error.status_code == 403 and error.code == "model_not_allowed"
    assert "allowed_models policy of this API key" in error.message
    assert "smart" not in error.message.replace("'pinned'", "") and "secret" not in error.message


def test_alias_with_target_and_allowed_fallback_serves_the_fallback_only() -> None:
    decision = _route(_router(), _key("pinned", "secret"), "pinned")
    assert decision.targets == ("secret",)


def test_auto_only_is_refused_and_auto_picks_among_allowed_models() -> None:
    router = _router()
    with pytest.raises(PermissionDenied) as caught:
        _route(router, _key("auto"), "auto", HARD)
    assert caught.value.code == "model_not_allowed"
    # a hard prompt with only cheap models allowed: the best allowed model, not a refusal
    decision = _route(router, _key("auto", "mini"), "auto", HARD)
    assert decision.targets == ("mini",)
    assert decision.tier == "strong" and decision.policy is not None and decision.policy.targets_removed == 2
    assert _route(router, _key("auto", "fast", "smart"), "auto", EASY).targets == ("fast", "smart")
    assert _route(router, _key("auto", "fast", "smart"), "auto", HARD).targets == ("smart",)


def test_requested_name_must_still_be_allowed() -> None:
    with pytest.raises(PermissionDenied):
        _route(_router(), _key("fast", "smart"), "auto", EASY)


def test_key_and_user_lists_combine_as_the_stricter() -> None:
    router = _router()
    both = _key("fast", "smart", "mini", user=("fast", "mini", "smart"))
    assert _route(router, both, "fast").targets == ("fast", "smart", "mini")
    user_only = _key(user=("fast", "mini"))
    decision = _route(router, user_only, "fast")
    assert decision.targets == ("fast", "mini") and decision.policy_summary["allowed_models"] == "user"
    narrower_user = _key("fast", "smart", user=("fast",))
    assert _route(router, narrower_user, "fast").targets == ("fast",)
    with pytest.raises(PermissionDenied) as caught:
        _route(router, _key("smart", user=("fast",)), "smart")
    assert caught.value.code == "model_not_allowed"


def test_experiment_arm_not_allowed_goes_to_the_control_and_is_not_counted() -> None:
    router = _router()
    drawn = _route(router, Principal(user_id="u1"), "exp")
    assert drawn.arm == "new" and drawn.targets[0] == "secret"
    decision = _route(router, _key("exp", "fast", "mini"), "exp")
    assert decision.targets == ("fast", "mini")
    assert decision.experiment is None and decision.arm is None  # not counted as either arm
    assert decision.policy is not None and decision.policy.arm_reassigned
    # an arm whose primary is allowed stays that arm (its disallowed fallbacks are dropped)
    kept = _route(router, _key("exp", "secret"), "exp")
    assert kept.arm == "new" and kept.targets == ("secret",)
    with pytest.raises(PermissionDenied):
        _route(router, _key("exp"), "exp")


def test_canary_arm_not_allowed_goes_to_the_control() -> None:
    router = _router()
    assert _route(router, Principal(user_id="u1"), "canary").arm == "next"
    decision = _route(router, _key("canary", "mini"), "canary")
    assert decision.targets == ("mini",) and decision.arm is None


def test_split_arm_not_allowed_redraws_among_allowed_models() -> None:
    router = _router()
    assert _route(router, Principal(user_id="u1"), "ab").arm == "smart"
    decision = _route(router, _key("ab", "fast"), "ab")
    assert decision.targets[0] == "fast" and decision.experiment is None and decision.arm is None


def test_shadows_are_filtered_unless_the_config_exempts_them() -> None:
    decision = _route(_router(), _key("mirrored", "fast", "mini"), "mirrored")
    assert decision.shadows == ("mini",)
    assert decision.policy is not None and decision.policy.shadows_removed == 1
    exempt = _route(_router("access: {shadows_exempt: true}"), _key("mirrored", "fast"), "mirrored")
    assert exempt.shadows == ("secret", "mini") and exempt.targets == ("fast",)


def test_principals_with_different_allow_lists_never_share_cache_entries() -> None:
    """The cache key's tenant: one user's two keys with different allow-lists must not serve each
    other answers (a cached answer may come from a model the other key may not use)."""
    from gateway.services.admission import cache_tenant as _cache_tenant

    open_key = Principal(user_id="u1")
    cheap = Principal(user_id="u1", allowed_models=frozenset({"mock-fast"}))
    smart = Principal(user_id="u1", allowed_models=frozenset({"mock-smart"}))
    assert _cache_tenant(open_key) == open_key.tenant
    assert len({_cache_tenant(open_key), _cache_tenant(cheap), _cache_tenant(smart)}) == 3
    same = Principal(user_id="u1", api_key_id="other", allowed_models=frozenset({"mock-fast"}))
    assert _cache_tenant(same) == _cache_tenant(cheap)  # the same policy shares, as before
