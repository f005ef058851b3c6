"""An application's live rollout: a weighted, sticky split between prompt versions (or models), and a
shadow of a candidate version judged next to the live one (issue #24, item 7).

``PUT /api/applications/{id}/rollout`` stores the rollout on the application (``applications.
rollout``); every change is audited (``application_rollout_events``: set, promote, rollback — who,
when, the state before and after), as prompt activations are.

* **Split**: arms ``{name, prompt_version?, model?, weight}`` whose weights sum to 100. A call is
  assigned by the experiments' own sticky bucket (``experiments.sticky.bucket`` / ``pick_weighted``)
  on the end user's key (``sticky: user``: the configured sticky field, the request's ``user``, the
  principal — the same key experiments use) or the API key (``sticky: api_key``), so a user stays
  in one arm and a weight change moves only the users at the boundary. The usage record names the
  application, the prompt version served and the arm (``usage_logs.app_arm``).
* **Shadow**: a candidate version (and/or model) answers a stable sample of the requests after the
  primary has answered, through the ``ShadowDispatcher`` (bounded queue, deadline, per-replica spend
  cap) — never on the request's path. The shadow call runs through Prism's own request flow (guards,
  routing, retries) as the user who set the rollout, tagged ``traffic = 'shadow'`` (no product
  dashboard counts it); the pair lands in ``shadow_results`` (alias ``app:<name>``, shadow model
  ``<model>@<version id>``) and, with a ``judge``, the shadow judge scores both answers
  (``shadow_judgements``).
* **Promote** points the application at an arm (its version pinned, its model) and ends the rollout;
  **rollback** ends a live rollout, or — with none live — undoes the latest promote.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agent.state import ChatInput
from gateway.config.experiments import ShadowJudgeConfig
from gateway.db.llmops import Application, ApplicationRolloutEvent, PromptVersion
from gateway.db.repositories.prompts import PromptRepository
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.experiments.shadow import ShadowPair, ShadowSide
from gateway.experiments.sticky import bucket, pick_weighted
from gateway.observability import metrics
from gateway.pipelines.llm import principal_from, principal_json
from gateway.prompts import template
from gateway.providers.tokens import count_messages, count_text
from gateway.runtime import RuntimeSnapshot
from gateway.security.principal import Principal
from gateway.services.admission import CachePolicy
from gateway.usage.record import UsageTags

if TYPE_CHECKING:
    from gateway.agent.shadow import ShadowDispatcher
    from gateway.services.completion import CompletionService

log = structlog.get_logger("prism.rollouts")

ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_ARMS = 8
STICKY = ("user", "api_key")
SHADOW_ARM = "shadow"
NO_CACHE = CachePolicy(read=False, write=False)


def _bad(message: str, param: str, code: str = "invalid_rollout") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


async def _version(session: AsyncSession, app: Application, ref: Any, param: str) -> PromptVersion:
    """A version of the application's own prompt (by number, ``v3`` or id); anything else a 400."""
    if not isinstance(ref, str | int) or isinstance(ref, bool) or not str(ref).strip() or len(str(ref)) > 40:
        raise _bad(f"{param} must be a version number or id", param)
    repo = PromptRepository(session)
    found = await repo.version(app.prompt_id, str(ref))
    if found is not None:
        return found
    other = await repo.version_by_id(str(ref))
    if other is not None:
        raise _bad(f"{param}: version {ref!r} belongs to another prompt, not this application's", param)
    raise _bad(f"{param}: the application's prompt has no version {ref!r}", param)


def _model(snapshot: RuntimeSnapshot, value: Any, param: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 96:
        raise _bad(f"{param} must be a model name", param)
    if value != "auto" and value not in snapshot.router.public_names():
        raise _bad(f"{param}: the model {value!r} does not exist", param, "model_not_found")
    return value


async def check(
    session: AsyncSession,
    principal: Principal,
    snapshot: RuntimeSnapshot,
    app: Application,
    body: dict[str, Any],
) -> dict[str, Any]:
    """The stored form of a rollout request, or a 400 naming the first bad field."""
    unknown = sorted(set(body) - {"arms", "shadow", "sticky"})
    if unknown:
        raise _bad(f"Unknown rollout field {unknown[0]!r}", unknown[0])
    sticky = body.get("sticky", "user")
    if sticky not in STICKY:
        raise _bad("sticky must be 'user' or 'api_key'", "sticky")
    rollout: dict[str, Any] = {"sticky": sticky, "arms": [], "shadow": None}
    arms = body.get("arms")
    if arms is not None:
        if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
            raise _bad(f"arms must be a list of 2 to {MAX_ARMS} arms", "arms")
        names: set[str] = set()
        total = 0.0
        for index, arm in enumerate(arms):
            where = f"arms[{index}]"
            if not isinstance(arm, dict):
                raise _bad(f"{where} must be an object", where)
            extra = sorted(set(arm) - {"name", "prompt_version", "model", "weight"})
            if extra:
                raise _bad(f"{where}: unknown field {extra[0]!r}", f"{where}.{extra[0]}")
            name = arm.get("name")
            if not isinstance(name, str) or not ARM_NAME.match(name) or name == SHADOW_ARM:
                raise _bad(
                    f"{where}.name must be 1-64 letters, digits, . _ - (not 'shadow')", f"{where}.name"
                )
            if name in names:
                raise _bad(f"{where}.name {name!r} is used twice", f"{where}.name")
            names.add(name)
            weight = arm.get("weight")
            if (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not 0 <= weight <= 100
                or weight != weight
            ):
                raise _bad(f"{where}.weight must be a number from 0 to 100", f"{where}.weight")
            total += float(weight)
            version = (
                await _version(session, app, arm["prompt_version"], f"{where}.prompt_version")
                if arm.get("prompt_version") is not None
                else None
            )
            model = _model(snapshot, arm.get("model"), f"{where}.model")
            rollout["arms"].append(
                {
                    "name": name,
                    "prompt_version_id": version.id if version else None,
                    "prompt_version": version.number if version else None,
                    "model": model,
                    "weight": float(weight),
                }
            )
        if abs(total - 100.0) > 1e-6:
            raise _bad(
                f"The arms' weights must sum to 100 (they sum to {total:g})",
                "arms",
                "invalid_rollout_weights",
            )
    shadow = body.get("shadow")
    if shadow is not None:
        rollout["shadow"] = await _check_shadow(session, snapshot, app, shadow)
    if not rollout["arms"] and rollout["shadow"] is None:
        raise _bad("A rollout needs arms (a split), a shadow, or both", "arms")
    rollout["principal"] = principal_json(principal) | {"api_key_id": None}
    return rollout


async def _check_shadow(
    session: AsyncSession, snapshot: RuntimeSnapshot, app: Application, shadow: Any
) -> dict[str, Any]:
    if not isinstance(shadow, dict):
        raise _bad("shadow must be an object", "shadow")
    extra = sorted(set(shadow) - {"prompt_version", "model", "sample_rate", "spend_cap_usd", "judge"})
    if extra:
        raise _bad(f"shadow: unknown field {extra[0]!r}", f"shadow.{extra[0]}")
    if shadow.get("prompt_version") is None:
        raise _bad("shadow.prompt_version is required (the candidate version)", "shadow.prompt_version")
    version = await _version(session, app, shadow["prompt_version"], "shadow.prompt_version")
    rate = shadow.get("sample_rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise _bad("shadow.sample_rate must be in (0, 1]", "shadow.sample_rate")
    cap = shadow.get("spend_cap_usd")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 <= cap < 1e9):
        raise _bad("shadow.spend_cap_usd must be a non-negative number", "shadow.spend_cap_usd")
    judge = shadow.get("judge")
    if judge is not None:
        if not isinstance(judge, dict):
            raise _bad("shadow.judge must be an object", "shadow.judge")
        try:
            parsed = ShadowJudgeConfig.model_validate(judge)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = "shadow.judge." + ".".join(str(part) for part in first["loc"])
            raise _bad(f"Invalid value for {param}: {first['msg']}", param) from exc
        if parsed.model not in snapshot.targets:
            raise _bad(f"shadow.judge.model {parsed.model!r} is not a configured model", "shadow.judge.model")
        judge = parsed.model_dump()
    return {
        "prompt_version_id": version.id,
        "prompt_version": version.number,
        "model": _model(snapshot, shadow.get("model"), "shadow.model"),
        "sample_rate": float(rate),
        "spend_cap_usd": None if cap is None else float(cap),
        "judge": judge,
    }


def _state(app: Application) -> dict[str, Any]:
    return {"model": app.model, "pinned_version_id": app.pinned_version_id, "rollout": app.rollout}


def _audit(
    session: AsyncSession,
    app: Application,
    principal: Principal,
    *,
    action: str,
    before: dict[str, Any],
    arm: str | None = None,
) -> None:
    session.add(
        ApplicationRolloutEvent(
            application_id=app.id,
            action=action,
            arm=arm,
            before=before,
            after=_state(app),
            actor_id=principal.user_id,
        )
    )
    metrics.APP_ROLLOUT_CHANGES.labels(action=action).inc()
    log.info("app_rollout_changed", application=app.name, action=action, arm=arm, actor=principal.user_id)


async def set_rollout(
    session: AsyncSession, principal: Principal, snapshot: RuntimeSnapshot, app: Application, body: Any
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("The rollout must be a JSON object", "body")
    rollout = await check(session, principal, snapshot, app, body)
    before = _state(app)
    app.rollout = rollout
    _audit(session, app, principal, action="set", before=before)
    await session.flush()
    return view(app)


async def promote(session: AsyncSession, principal: Principal, app: Application, arm: str) -> dict[str, Any]:
    """The application runs ``arm`` (its version pinned, its model) from now on; the rollout ends."""
    rollout = app.rollout or {}
    chosen = next((a for a in rollout.get("arms") or [] if a["name"] == arm), None)
    shadow = rollout.get("shadow")
    if chosen is None and arm == SHADOW_ARM and shadow:
        chosen = shadow
    if chosen is None:
        raise NotFound(f"The application has no live rollout arm {arm!r}", param="arm")
    before = _state(app)
    if chosen.get("prompt_version_id"):
        app.pinned_version_id = chosen["prompt_version_id"]
    if chosen.get("model"):
        app.model = chosen["model"]
    app.rollout = None
    _audit(session, app, principal, action="promote", before=before, arm=arm)
    await session.flush()
    return view(app)


async def rollback(session: AsyncSession, principal: Principal, app: Application) -> dict[str, Any]:
    """End a live rollout (everyone back on the application's own version and model); with none
    live, undo the latest promote (its version, model and rollout come back)."""
    before = _state(app)
    if app.rollout is not None:
        app.rollout = None
        _audit(session, app, principal, action="rollback", before=before)
        await session.flush()
        return view(app)
    last = (
        await session.execute(
            select(ApplicationRolloutEvent)
            .where(ApplicationRolloutEvent.application_id == app.id)
            .order_by(ApplicationRolloutEvent.created_at.desc(), ApplicationRolloutEvent.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if last is None or last.action != "promote" or last.before is None:
        raise InvalidRequest(
            "Nothing to roll back: no live rollout and no promote to undo", code="nothing_to_roll_back"
        )
    app.model = last.before["model"]
    app.pinned_version_id = last.before["pinned_version_id"]
    app.rollout = last.before["rollout"]
    _audit(session, app, principal, action="rollback", before=before, arm=last.arm)
    await session.flush()
    return view(app)


async def history(session: AsyncSession, app: Application) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(ApplicationRolloutEvent)
            .where(ApplicationRolloutEvent.application_id == app.id)
            .order_by(ApplicationRolloutEvent.created_at.desc(), ApplicationRolloutEvent.id.desc())
        )
    ).scalars()
    return [
        {
            "id": row.id,
            "action": row.action,
            "arm": row.arm,
            "before": _public(row.before),
            "after": _public(row.after),
            "actor_id": row.actor_id,
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


def _public(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    rollout = state.get("rollout")
    return {**state, "rollout": public_rollout(rollout)}


def public_rollout(rollout: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rollout as the API shows it (the stored principal stays inside)."""
    if rollout is None:
        return None
    return {key: value for key, value in rollout.items() if key != "principal"}


def view(app: Application) -> dict[str, Any]:
    return {"application": app.name, "rollout": public_rollout(app.rollout)}


# -- at call time ------------------------------------------------------------------------------


def pick_arm(app: Application, sticky: dict[str, str | None] | None) -> dict[str, Any] | None:
    """The split's arm for this caller (stable per user or API key), or None without a split."""
    rollout = app.rollout or {}
    arms = rollout.get("arms") or []
    if not arms:
        return None
    sticky = sticky or {}
    key = sticky.get(rollout.get("sticky", "user")) or sticky.get("user") or sticky.get("request") or ""
    weights = {arm["name"]: arm["weight"] for arm in arms}
    if not any(weights.values()):
        return None
    name = pick_weighted(weights, bucket("app-rollout", app.name, key))
    chosen: dict[str, Any] = next(arm for arm in arms if arm["name"] == name)
    return chosen


@dataclass(slots=True)
class ShadowPlan:
    """A candidate version to mirror this request to, once the primary has answered."""

    application: str
    version_id: str
    model: str
    messages: list[dict[str, Any]]
    """The candidate's rendered prompt followed by the caller's messages."""
    caller_messages: list[dict[str, Any]]
    params: dict[str, Any]
    principal: dict[str, Any]
    spend_cap_usd: float | None
    judge: ShadowJudgeConfig | None

    @property
    def budget_key(self) -> str:
        return f"app:{self.application}@{self.version_id}"

    def plan(
        self, completions: CompletionService, dispatcher: ShadowDispatcher, *, request_id: str, streamed: bool
    ) -> ShadowPair | None:
        results = dispatcher.results
        alias, shadow_model = f"app:{self.application}", f"{self.model}@{self.version_id}"[:128]
        reason = (
            "spend_cap"
            if not results.budget.allows(self.budget_key, self.spend_cap_usd)
            else "queue_full"
            if not dispatcher.has_room()
            else None
        )
        if reason is not None:
            metrics.SHADOW_DROPPED.labels(model="other", reason=reason).inc()
            results.drop_planned(
                request_id=request_id,
                alias=alias,
                shadow_model=shadow_model,
                streamed=streamed,
                label="other",
                reason=reason,
            )
            return None
        pair = results.new_pair(
            request_id=request_id, alias=alias, shadow_model=shadow_model, streamed=streamed, label="other"
        )
        pair.prompt = self.caller_messages
        pair.judge = self.judge
        pair.job = self._job(completions, pair)
        return pair

    def _job(self, completions: CompletionService, pair: ShadowPair) -> Any:
        async def job() -> None:
            side = ShadowSide(model=pair.shadow_model)
            started = time.perf_counter()
            request_id = uuid.uuid4().hex
            try:
                reply = await completions.run(
                    chat=ChatInput(
                        model=self.model,
                        messages=self.messages,
                        params=dict(self.params),
                        stream=False,
                        include_usage=False,
                        metadata={"shadow_of": pair.request_id},
                        prompt_tokens=count_messages(self.messages),
                    ),
                    principal=principal_from(self.principal),
                    request_id=request_id,
                    sticky={
                        "user": self.principal.get("user_id"),
                        "user_source": None,
                        "api_key": None,
                        "conversation": None,
                        "request": request_id,
                    },
                    cache_policy=NO_CACHE,
                    tags=UsageTags(
                        application=self.application,
                        prompt_version_id=self.version_id,
                        traffic="shadow",
                        app_arm=SHADOW_ARM,
                    ),
                )
                body = reply.body or {}
                choices = body.get("choices") or [{}]
                side.text = str((choices[0].get("message") or {}).get("content") or "")
                usage = body.get("usage") or {}
                side.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                side.completion_tokens = int(usage.get("completion_tokens") or count_text(side.text))
                target = completions.s.holder.current.targets.get(reply.model or "")
                if target is not None:
                    side.cost_usd = target.config.cost(side.prompt_tokens, side.completion_tokens)
            except GatewayError as exc:
                side.error = exc.code
            except TimeoutError:
                side.error = "timeout"
            finally:
                side.latency_ms = round((time.perf_counter() - started) * 1000, 3)
                if completions.s.shadow is not None:
                    completions.s.shadow.results.budget.add(self.budget_key, side.cost_usd)
                pair.complete_shadow(side)

        return job


def shadow_plan(
    app: Application,
    *,
    primary_version_id: str,
    caller_messages: list[dict[str, Any]],
    caller_params: dict[str, Any],
    request_key: str,
) -> ShadowPlan | None:
    """The shadow of this request, when the rollout has one and the request falls in its sample."""
    rollout = app.rollout or {}
    shadow = rollout.get("shadow")
    if not shadow or (shadow["prompt_version_id"] == primary_version_id and not shadow.get("model")):
        return None
    if bucket("app-shadow", app.name, request_key) >= shadow["sample_rate"]:
        return None
    return ShadowPlan(
        application=app.name,
        version_id=shadow["prompt_version_id"],
        model=shadow.get("model") or app.model,
        messages=[],  # rendered by ``applications.apply`` with the version's messages
        caller_messages=[dict(m) for m in caller_messages],
        params={**app.options, **caller_params},
        principal=rollout.get("principal") or {},
        spend_cap_usd=shadow.get("spend_cap_usd"),
        judge=ShadowJudgeConfig.model_validate(shadow["judge"]) if shadow.get("judge") else None,
    )


def render_shadow(plan: ShadowPlan, version: PromptVersion, variables: dict[str, Any]) -> ShadowPlan | None:
    """The candidate's prompt rendered with the caller's variables (None when they do not fit it)."""
    try:
        rendered = template.render(version.messages, variables)
    except InvalidRequest as exc:
        log.info("app_shadow_skipped", application=plan.application, reason=exc.code)
        return None
    plan.messages = [*rendered, *plan.caller_messages]
    return plan
