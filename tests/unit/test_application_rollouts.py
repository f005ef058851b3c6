"""The call-time side of application rollouts (issue #24, item 7): sticky weighted arms and the
shadow sample, pure functions over an application row (no database)."""

from __future__ import annotations

from typing import Any

from gateway.db.llmops import Application, PromptVersion
from gateway.services import rollouts


def _app(
    arms: list[tuple[str, float]], *, sticky: str = "user", shadow: dict[str, Any] | None = None
) -> Application:
    return Application(
        name="support",
        model="small",
        prompt_id="p",
        options={"temperature": 0.1},
        rollout={
            "sticky": sticky,
            "arms": [
                {
                    "name": n,
                    "prompt_version_id": f"v-{n}",
                    "prompt_version": i + 1,
                    "model": None,
                    "weight": w,
                }
                for i, (n, w) in enumerate(arms)
            ],
            "shadow": shadow,
            "principal": {"user_id": "owner", "role": "user"},
        },
    )


def _keys(user: str, api_key: str = "k1") -> dict[str, str | None]:
    return {"user": user, "api_key": api_key, "request": "r-" + user}


def test_an_arm_is_sticky_per_user_and_follows_the_weights() -> None:
    app = _app([("control", 90), ("candidate", 10)])
    chosen = {u: rollouts.pick_arm(app, _keys(f"u{u}")) for u in range(4000)}
    assert all(rollouts.pick_arm(app, _keys(f"u{u}")) == arm for u, arm in list(chosen.items())[:200])
    share = sum(1 for arm in chosen.values() if arm and arm["name"] == "candidate") / len(chosen)
    assert 0.08 < share < 0.12


def test_a_weight_change_moves_only_the_users_at_the_boundary() -> None:
    before, after = _app([("control", 90), ("candidate", 10)]), _app([("control", 80), ("candidate", 20)])
    for u in range(2000):
        was = rollouts.pick_arm(before, _keys(f"u{u}"))
        now = rollouts.pick_arm(after, _keys(f"u{u}"))
        assert was and now
        if was["name"] == "candidate":
            assert now["name"] == "candidate"  # only control users move, never back


def test_sticky_api_key_keys_on_the_key_and_no_split_without_arms() -> None:
    app = _app([("a", 50), ("b", 50)], sticky="api_key")
    arms = {rollouts.pick_arm(app, _keys(f"u{u}", api_key="same"))["name"] for u in range(50)}  # type: ignore[index]
    assert len(arms) == 1
    assert rollouts.pick_arm(_app([]), _keys("u")) is None


def test_shadow_sample_render_and_public_view() -> None:
    shadow = {
        "prompt_version_id": "v-3",
        "model": None,
        "sample_rate": 0.5,
        "spend_cap_usd": 1.0,
        "judge": None,
    }
    app = _app([("a", 50), ("b", 50)], shadow=shadow)
    plans = [
        rollouts.shadow_plan(
            app,
            primary_version_id="v-a",
            caller_messages=[{"role": "user", "content": "hi"}],
            caller_params={"max_tokens": 5},
            request_key=f"req-{i}",
        )
        for i in range(1000)
    ]
    taken = [plan for plan in plans if plan is not None]
    assert 400 < len(taken) < 600
    plan = taken[0]
    assert plan.params == {"temperature": 0.1, "max_tokens": 5} and plan.model == "small"
    candidate = PromptVersion(
        id="v-3",
        prompt_id="p",
        number=3,
        messages=[{"role": "system", "content": "Hi {{who}}"}],
        variables=["who"],
    )
    assert rollouts.render_shadow(plan, candidate, {}) is None  # a variable the call did not give
    rendered = rollouts.render_shadow(plan, candidate, {"who": "there"})
    assert rendered is not None and [m["content"] for m in rendered.messages] == ["Hi there", "hi"]
    same = rollouts.shadow_plan(
        app, primary_version_id="v-3", caller_messages=[], caller_params={}, request_key="req-1"
    )
    assert same is None  # already served by the candidate's version and model
    assert "principal" not in (rollouts.public_rollout(app.rollout) or {})
