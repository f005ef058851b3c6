"""Experiments: ``POST /v1/feedback`` (the caller's own requests) and the admin reports.

``GET /admin/experiments`` lists the configured experiments with this replica's canary state;
``GET /admin/experiments/{name}`` is the per-arm report with the tests against the control, for
the experiment's current run (``?run=<id>`` an earlier one, ``?run=all`` every row);
``POST /admin/experiments/{name}/reset`` starts a new run (and restarts the canary on every worker
of every replica: ``gateway/experiments/canary_sync.py``);
``GET /admin/experiments/{name}/runs`` lists the runs; ``GET /admin/shadow/{alias}`` compares
each shadow model with the primary (``?since=`` an ISO time). Reports read the usage logs,
feedback and shadow results in the database (flushing this replica's buffers first).

Feedback is one rating per (request, user): ``score`` is a vote (``"up"``/``"down"``) or a
rating, a finite number from 1 to 5; posting again replaces the earlier rating (200, not 201).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.deps import AccountsDep, AdminDep, AppStateDep, PrincipalDep, SessionDep
from gateway.errors import InvalidRequest, NotFound
from gateway.experiments.judge import ShadowJudge
from gateway.experiments.reports import RATING_RANGE, experiment_report
from gateway.lifespan import AppState
from gateway.services.accounts import Accounts
from gateway.services.experiments import (
    arm_stats,
    chosen_run,
    flush_buffers,
    record_feedback,
    runs_with_ends,
    shadow_comparison,
    start_run,
)

router = APIRouter(prefix="/admin", tags=["experiments"])
feedback_router = APIRouter(prefix="/v1", tags=["experiments"])


SCORE_RULE = f'score must be "up", "down" or a finite number from {RATING_RANGE[0]:g} to {RATING_RANGE[1]:g}'


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    score: str | float
    """``"up"``/``"down"`` (a vote) or a rating in ``RATING_RANGE`` (1-5): two kinds, kept apart."""
    comment: str | None = Field(default=None, max_length=4000)

    @field_validator("score", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> str | float:
        if value in ("up", "down"):
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(SCORE_RULE)
        number = float(value)
        if not math.isfinite(number) or not RATING_RANGE[0] <= number <= RATING_RANGE[1]:
            raise ValueError(SCORE_RULE)
        return number


class FeedbackOut(BaseModel):
    id: int
    request_id: str
    experiment: str | None
    arm: str | None
    model: str | None
    kind: str
    """``thumb`` (a vote) or ``rating`` (1-5)."""
    score: float
    thumb: str | None
    updated: bool
    """True when this replaced the caller's earlier rating of the request."""


@feedback_router.post("/feedback", status_code=201, response_model=FeedbackOut)
async def post_feedback(
    body: FeedbackIn,
    response: Response,
    state: AppStateDep,
    principal: PrincipalDep,
    accounts: AccountsDep,
    session: SessionDep,
) -> FeedbackOut:
    if isinstance(body.score, str):
        score, thumb = (1.0 if body.score == "up" else 0.0), body.score
    else:
        score, thumb = float(body.score), None
    row, created = await record_feedback(
        session,
        principal=principal,
        request_id=body.request_id,
        score=score,
        thumb=thumb,
        comment=body.comment,
        recorder=accounts.recorder,
        anonymous_gateway=not state.settings.auth_enabled,
    )
    if not created:
        response.status_code = 200
    return FeedbackOut(
        id=row.id,
        request_id=row.request_id,
        experiment=row.experiment,
        arm=row.arm,
        model=row.model,
        kind="thumb" if row.thumb is not None else "rating",
        score=row.score,
        thumb=row.thumb,
        updated=not created,
    )


async def _flush(state: AppState, accounts: Accounts) -> None:
    await flush_buffers(accounts.recorder, state.shadow_results)


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


def _known(state: AppState, name: str) -> None:
    config = state.holder.experiments.configs.get(name)
    split = state.holder.current.config.aliases.get(name)
    if config is None and (split is None or split.split is None):
        raise NotFound(f"No experiment named {name!r}")


def _run_view(run: Any, until: datetime | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": run.started_at.isoformat(),
        "ended_at": until.isoformat() if until is not None else None,
        "started_by": run.started_by,
        "reason": run.reason,
    }


@router.get("/experiments/{name}")
async def get_experiment(
    _: AdminDep,
    state: AppStateDep,
    accounts: AccountsDep,
    session: SessionDep,
    name: Annotated[str, Path(max_length=128)],
    run: Annotated[str | None, Query(max_length=32, pattern=r"^(all|current|\d+)$")] = None,
) -> dict[str, Any]:
    """The report of one run: the current (latest) run by default, ``?run=<id>`` an earlier one,
    ``?run=all`` every stored row. Without any run (never reset) the report covers every row."""
    experiments = state.holder.experiments
    config = experiments.configs.get(name)
    split = state.holder.current.config.aliases.get(name)
    _known(state, name)
    await _flush(state, accounts)
    chosen, until = await chosen_run(session, experiment=name, run=run)
    run_info: dict[str, Any] = {"id": None, "started_at": None, "ended_at": None, "scope": "all rows"}
    if chosen is not None:
        run_info = {**_run_view(chosen, until), "scope": "one run"}
    since = chosen.started_at if chosen is not None else None
    arms = await arm_stats(session, experiment=name, since=since, until=until)
    canary = experiments.canary(name)
    if config is None:  # a plain ``split`` alias: arms are models, the first is the control
        assert split is not None and split.split is not None
        return experiment_report(name, _SplitView(name, list(split.split)), arms, None, run=run_info)
    report = experiment_report(
        name, config, arms, canary.describe() if canary is not None else None, run=run_info
    )
    if canary is not None and state.canary_sync is not None:
        # the decided state every worker converges on, and how many live workers run it
        report["canary_shared"] = await state.canary_sync.describe(name)
    return report


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=256)


@router.post("/experiments/{name}/reset", status_code=201)
async def reset_experiment(
    admin: AdminDep,
    state: AppStateDep,
    session: SessionDep,
    name: Annotated[str, Path(max_length=128)],
    body: ResetIn | None = None,
) -> dict[str, Any]:
    """Start a new run: later reports cover only traffic from now on, and the canary starts its
    roll-out over on every worker (step 0, empty health windows; the history keeps a ``reset``
    event); ``canary_shared`` says how many live workers applied it."""
    _known(state, name)
    reason = body.reason if body is not None else None
    new = await start_run(session, experiment=name, started_by=admin.user_id, reason=reason)
    shared = None
    if state.canary_sync is not None:
        shared = await state.canary_sync.decide(
            name, "reset", reason=reason or "admin reset", actor=f"admin:{admin.user_id}"
        )
        canary = state.holder.experiments.canary(name)
    else:
        canary = state.holder.experiments.reset(name, reason=reason or "admin reset")
    return {
        "experiment": name,
        "run": _run_view(new, None),
        "canary": canary.describe() if canary is not None else None,
        "canary_shared": shared,
    }


@router.get("/experiments/{name}/runs")
async def list_runs(
    _: AdminDep, state: AppStateDep, session: SessionDep, name: Annotated[str, Path(max_length=128)]
) -> dict[str, Any]:
    _known(state, name)
    return {"data": [_run_view(run, end) for run, end in await runs_with_ends(session, experiment=name)]}


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
    since: Annotated[datetime | None, Query()] = None,
) -> dict[str, Any]:
    if since is not None and since.tzinfo is None:
        raise InvalidRequest("since needs a time zone (e.g. 2026-12-07T08:00:00Z)", param="since")
    await _flush(state, accounts)
    report = await shadow_comparison(session, alias=alias, since=since)
    report["since"] = since.isoformat() if since is not None else None
    config = state.holder.current.config.aliases.get(alias)
    shadow = state.shadow_results
    if config is not None:
        report["shadow_models"] = list(config.shadow)
        report["sample_rate"] = config.shadow_sample_rate
        report["spend_cap_usd"] = dict(config.shadow_spend_cap_usd)
        report["judge"] = config.shadow_judge.model_dump() if config.shadow_judge is not None else None
    if shadow is not None:
        report["spent_usd_this_replica"] = dict(shadow.budget.spent)
        judge = shadow.judge
        if isinstance(judge, ShadowJudge):
            report["judge_spent_usd_this_replica"] = judge.spent.get(alias, 0.0)
    return report
