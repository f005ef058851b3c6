"""Experiment use cases: feedback on a request, runs, and the rows behind the admin reports.

Reports read the usage logs, feedback and shadow results in the database; ``flush_buffers`` first
writes what this replica still holds (the usage recorder's batch, the shadow result writer's).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import ExperimentRun, Feedback
from gateway.db.repositories import experiments as repo
from gateway.errors import NotFound
from gateway.experiments.reports import ArmData, collect, shadow_report
from gateway.experiments.shadow import ShadowResults
from gateway.security.principal import Principal
from gateway.usage.recorder import UsageRecorder

FEEDBACK_LOOKUPS = 10
"""Reads of a request's usage row before feedback on it is refused (the row may be in a flush)."""


async def flush_buffers(recorder: UsageRecorder, shadow: ShadowResults | None) -> None:
    """Best effort: a report is still served (without this replica's latest rows) if a flush fails."""
    with contextlib.suppress(Exception):
        await recorder.flush()
    if shadow is not None and shadow.writer is not None:
        with contextlib.suppress(Exception):
            await shadow.writer.flush()


async def record_feedback(
    session: AsyncSession,
    *,
    principal: Principal,
    request_id: str,
    score: float,
    thumb: str | None,
    comment: str | None,
    recorder: UsageRecorder,
    anonymous_gateway: bool,
) -> tuple[Feedback, bool]:
    """One rating per (request, user), on a request the caller made (any, for an admin); returns the
    row and whether it was created. Unknown and foreign requests are both ``NotFound``."""
    usage = await repo.find_usage(session, request_id)
    if usage is None:  # the record may still be in this replica's buffer, or in a flush under way
        with contextlib.suppress(Exception):
            await recorder.flush()
        for _ in range(FEEDBACK_LOOKUPS):
            await session.rollback()  # a fresh read transaction sees what was committed since
            usage = await repo.find_usage(session, request_id)
            if usage is not None:
                break
            await asyncio.sleep(0.1)
    owner_ok = principal.is_admin or (
        principal.user_id is not None and usage is not None and usage.user_id == principal.user_id
    )
    if anonymous_gateway and usage is not None and usage.user_id is None:
        owner_ok = True  # anonymous gateway: anonymous requests carry no owner to check
    if usage is None or not owner_ok:
        raise NotFound("No request with this id")
    return await repo.upsert_feedback(
        session,
        request_id=request_id,
        user_id=principal.user_id,
        experiment=usage.experiment,
        arm=usage.arm,
        model=usage.model_served,
        score=score,
        thumb=thumb,
        comment=comment,
    )


async def chosen_run(
    session: AsyncSession, *, experiment: str, run: str | None
) -> tuple[ExperimentRun | None, datetime | None]:
    """The run a report covers and when it ended: ``run`` is a run id, ``None`` (the latest run) or
    ``"all"`` (no run: every row)."""
    if run == "all":
        return None, None
    if run is not None and run.isdigit():
        chosen = await repo.get_run(session, experiment, int(run))
        if chosen is None:
            raise NotFound(f"No run {run} of experiment {experiment!r}")
    else:
        chosen = next(iter(await repo.list_runs(session, experiment, limit=1)), None)
    if chosen is None:
        return None, None
    return chosen, await repo.run_end(session, chosen)


async def arm_stats(
    session: AsyncSession, *, experiment: str, since: datetime | None, until: datetime | None
) -> dict[str, ArmData]:
    """Per-arm outcomes and ratings of the experiment's requests within [since, until)."""
    return collect(
        await repo.experiment_rows(session, experiment, since=since, until=until),
        await repo.feedback_rows(session, experiment, since=since, until=until),
    )


async def start_run(
    session: AsyncSession, *, experiment: str, started_by: str | None, reason: str | None
) -> ExperimentRun:
    return await repo.create_run(session, experiment=experiment, started_by=started_by, reason=reason)


async def runs_with_ends(
    session: AsyncSession, *, experiment: str
) -> list[tuple[ExperimentRun, datetime | None]]:
    """The runs, newest first, each with its end (the start of the next run; None: still running)."""
    runs = await repo.list_runs(session, experiment)
    ends = [None, *(r.started_at for r in runs[:-1])]
    return list(zip(runs, ends, strict=True))


async def shadow_comparison(session: AsyncSession, *, alias: str, since: datetime | None) -> dict[str, Any]:
    """Each shadow model of ``alias`` against the primary, from the stored pairs and judgements."""
    return shadow_report(
        alias,
        await repo.shadow_rows(session, alias, since=since),
        await repo.judgement_rows(session, alias, since=since),
    )
