"""Evaluation runs: ``/api/evaluations`` (issue #24).

Who may call: any signed-in user on their own runs, an admin on all (another user's run is a 404).
``POST`` queues a run (202) that the evaluation worker executes off the request path; ``GET
/{id}`` is its status and progress, ``/{id}/results`` the stored result of every (variant, case)
with each assertion's verdict, ``/{id}/report`` the comparison (pass rates with Wilson intervals,
McNemar and paired t against the baseline, cost, latency, changed cases), ``POST /{id}/cancel``
stops it. ``POST /api/evaluations/promptfoo`` takes a ``promptfooconfig.yaml`` as the body.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request

from gateway.api.prompts import clean_body
from gateway.api.responses import OrjsonResponse
from gateway.deps import AppStateDep, SessionDep, UserDep
from gateway.errors import InvalidRequest
from gateway.evals import promptfoo
from gateway.lifespan import AppState
from gateway.security.principal import Principal
from gateway.services import eval_jobs, evaluations

router = APIRouter(prefix="/api/evaluations", tags=["evaluations"], dependencies=[Depends(clean_body)])


async def _queue(state: AppState, session: Any, principal: Principal, body: dict[str, Any]) -> OrjsonResponse:
    custom = state.evals.custom if state.evals is not None else {}
    row = await evaluations.create(session, principal, state.holder.current, body=body, custom=custom)
    await session.commit()  # visible to the worker before it is woken
    if state.settings.jobs_broker_url and state.jobs is not None and state.accounts is not None:
        # a broker: the run executes as an ``evaluation`` job on Celery (services/eval_jobs.py)
        row["job_id"] = await eval_jobs.dispatch(
            state.jobs, state.accounts.engine, run_id=row["id"], principal=principal
        )
    if state.evals is not None and row.get("job_id") is None:
        state.evals.wake()
    return OrjsonResponse(row, status_code=202)


@router.post("", status_code=202)
async def create_run(
    request: Request, principal: UserDep, session: SessionDep, state: AppStateDep
) -> OrjsonResponse:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("The request body is not valid JSON", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object", code="invalid_json")
    body.pop("source", None)
    return await _queue(state, session, principal, body)


@router.post("/promptfoo", status_code=202)
async def import_promptfoo(
    request: Request, principal: UserDep, session: SessionDep, state: AppStateDep
) -> OrjsonResponse:
    body = promptfoo.parse(await request.body())
    return await _queue(state, session, principal, body)


@router.get("")
async def list_runs(
    principal: UserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrjsonResponse:
    rows = await evaluations.list_runs(session, principal, limit=limit, offset=offset)
    return OrjsonResponse({"object": "list", "data": rows})


@router.get("/{run_id}")
async def read_run(run_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(evaluations.run_dict(await evaluations.get(session, principal, run_id)))


@router.get("/{run_id}/results")
async def run_results(run_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse({"object": "list", "data": await evaluations.results(session, principal, run_id)})


@router.get("/{run_id}/report")
async def run_report(run_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(await evaluations.report(session, principal, run_id))


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, principal: UserDep, session: SessionDep) -> OrjsonResponse:
    return OrjsonResponse(await evaluations.cancel(session, principal, run_id))
