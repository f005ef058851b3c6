"""Experiments: ``POST /v1/feedback`` (the caller's own requests) and the admin reports.

``GET /admin/experiments`` lists the configured experiments with this replica's canary state;
``GET /admin/experiments/{name}`` is the per-arm report with the tests against the control;
``GET /admin/shadow/{alias}`` compares each shadow model with the primary. Reports read the
usage logs, feedback and shadow results in the database (flushing this replica's buffers first).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway.db.repositories import experiments as repo
from gateway.deps import AccountsDep, AdminDep, AppStateDep, PrincipalDep, SessionDep
from gateway.errors import NotFound
from gateway.experiments.judge import ShadowJudge
from gateway.experiments.reports import collect, experiment_report, shadow_report

router = APIRouter(prefix="/admin", tags=["experiments"])
feedback_router = APIRouter(prefix="/v1", tags=["experiments"])


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    score: Literal["up", "down"] | float
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackOut(BaseModel):
    id: int
    request_id: str
    experiment: str | None
    arm: str | None
    model: str | None
    score: float


@feedback_router.post("/feedback", status_code=201, response_model=FeedbackOut)
async def post_feedback(
    body: FeedbackIn, state: AppStateDep, principal: PrincipalDep, accounts: AccountsDep, session: SessionDep
) -> FeedbackOut:
    usage = await repo.find_usage(session, body.request_id)
    if usage is None:  # the record may still be in this replica's buffer, or in a flush under way
        with contextlib.suppress(Exception):
            await accounts.recorder.flush()
        for _ in range(10):
            await session.rollback()  # a fresh read transaction sees what was committed since
            usage = await repo.find_usage(session, body.request_id)
            if usage is not None:
                break
            await asyncio.sleep(0.1)
    owner_ok = principal.is_admin or (
        principal.user_id is not None and usage is not None and usage.user_id == principal.user_id
    )
    if not state.settings.auth_enabled and usage is not None and usage.user_id is None:
        owner_ok = True  # anonymous gateway: anonymous requests carry no owner to check
    if usage is None or not owner_ok:
        raise NotFound("No request with this id")
    if isinstance(body.score, str):
        score, thumb = (1.0 if body.score == "up" else 0.0), body.score
    else:
        score, thumb = float(body.score), None
    row = await repo.add_feedback(
        session,
        request_id=body.request_id,
        user_id=principal.user_id,
        experiment=usage.experiment,
        arm=usage.arm,
        model=usage.model_served,
        score=score,
        thumb=thumb,
        comment=body.comment,
    )
    return FeedbackOut(
        id=row.id,
        request_id=row.request_id,
        experiment=row.experiment,
        arm=row.arm,
        model=row.model,
        score=row.score,
    )


async def _flush(state: Any, accounts: Any) -> None:
    with contextlib.suppress(Exception):
        await accounts.recorder.flush()
    shadow = getattr(state.completions.s, "shadow", None)
    if shadow is not None and shadow.results.writer is not None:
        with contextlib.suppress(Exception):
            await shadow.results.writer.flush()


@router.get("/experiments")
async def list_experiments(_: AdminDep, state: AppStateDep) -> dict[str, Any]:
    experiments = state.holder.experiments
    items = []
    for name, config in experiments.configs.items():
        canary = experiments.canary(name)
        items.append(
            {
                "name": name,
                "alias": config.alias,
                "enabled": config.enabled,
                "control": config.control,
                "sticky": config.sticky,
                "arms": {arm: {"chain": list(c.chain), "weight": c.weight} for arm, c in config.arms.items()},
                "canary": canary.describe() if canary is not None else None,
            }
        )
    return {"data": items}


@router.get("/experiments/{name}")
async def get_experiment(
    _: AdminDep,
    state: AppStateDep,
    accounts: AccountsDep,
    session: SessionDep,
    name: Annotated[str, Path(max_length=128)],
) -> dict[str, Any]:
    experiments = state.holder.experiments
    config = experiments.configs.get(name)
    split = state.holder.current.config.aliases.get(name)
    if config is None and (split is None or split.split is None):
        raise NotFound(f"No experiment named {name!r}")
    await _flush(state, accounts)
    arms = collect(await repo.experiment_rows(session, name), await repo.feedback_rows(session, name))
    canary = experiments.canary(name)
    if config is None:  # a plain ``split`` alias: arms are models, the first is the control
        assert split is not None and split.split is not None
        return experiment_report(name, _SplitView(name, list(split.split)), arms, None)
    return experiment_report(name, config, arms, canary.describe() if canary is not None else None)


class _SplitView:
    def __init__(self, alias: str, arms: list[str]) -> None:
        self.alias = alias
        self.arms = dict.fromkeys(arms)
        self.control = arms[0]


@router.get("/shadow/{alias}")
async def get_shadow(
    _: AdminDep,
    state: AppStateDep,
    accounts: AccountsDep,
    session: SessionDep,
    alias: Annotated[str, Path(max_length=128)],
) -> dict[str, Any]:
    await _flush(state, accounts)
    report = shadow_report(
        alias, await repo.shadow_rows(session, alias), await repo.judgement_rows(session, alias)
    )
    config = state.holder.current.config.aliases.get(alias)
    shadow = getattr(state.completions.s, "shadow", None)
    if config is not None:
        report["shadow_models"] = list(config.shadow)
        report["sample_rate"] = config.shadow_sample_rate
        report["spend_cap_usd"] = dict(config.shadow_spend_cap_usd)
        report["judge"] = config.shadow_judge.model_dump() if config.shadow_judge is not None else None
    if shadow is not None:
        report["spent_usd_this_replica"] = dict(shadow.results.budget.spent)
        judge = shadow.results.judge
        if isinstance(judge, ShadowJudge):
            report["judge_spent_usd_this_replica"] = judge.spent.get(alias, 0.0)
    return report
