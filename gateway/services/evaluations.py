"""Evaluation runs: the spec a run freezes when it is created, and what is read back.

A run is variants × cases. Each variant is frozen at creation — the model, the exact prompt version
(its messages), the options — so a run is reproducible and its results name what ran. Cases come
from a dataset at a recorded version, or inline (a promptfoo config). The run is queued; the
evaluation worker (``services/eval_runner.py``) executes it off the request path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.llmops import EvalRun
from gateway.db.models import Job
from gateway.db.repositories.evals import DatasetRepository, EvalRunRepository, app_shadows, live_usage
from gateway.db.repositories.prompts import PromptRepository
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.evals import assertions, compare, datasets_io
from gateway.prompts import template
from gateway.runtime import RuntimeSnapshot
from gateway.security.principal import Principal
from gateway.services import applications, datasets, rollouts
from gateway.services.prompts import check_ref, get_prompt, owner_filter, visible

FINAL = frozenset({"completed", "budget_exceeded", "failed", "cancelled"})
MAX_VARIANTS = 8
MAX_PAIRS = 50_000


def run_dict(row: EvalRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "owner_id": row.owner_id,
        "status": row.status,
        "dataset_id": row.dataset_id,
        "dataset_version": row.dataset_version,
        "variants": [
            {k: v for k, v in variant.items() if k != "messages"} for variant in row.spec.get("variants", [])
        ],
        "progress": {"done": row.done, "total": row.total},
        "spent_usd": round(row.spent_usd, 8),
        "max_cost_usd": row.spec.get("max_cost_usd"),
        "error": row.error,
        "job_id": row.job_id,
        "created_at": row.created_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


async def _variant(
    session: AsyncSession, principal: Principal, snapshot: RuntimeSnapshot, raw: dict[str, Any], index: int
) -> dict[str, Any]:
    where = f"variants[{index}]"
    app = None
    if raw.get("application"):
        ref = raw.get("prompt_version")
        resolved = await applications.resolve(
            session, principal, str(raw["application"]), version=str(ref) if ref is not None else None
        )
        app, version = resolved.application, resolved.version
    elif raw.get("prompt"):
        prompt = await get_prompt(session, principal, str(raw["prompt"]))
        repo = PromptRepository(session)
        ref = raw.get("prompt_version")
        if ref is not None:
            check_ref(str(ref), "Prompt version", f"{where}.prompt_version")
        found = await repo.version(prompt.id, str(ref)) if ref is not None else await repo.active(prompt.id)
        if found is None:
            raise NotFound(f"{where}: prompt version {ref!r} not found", param=f"{where}.prompt_version")
        version = found
    elif raw.get("messages"):
        messages = template.normalise(raw["messages"], param=f"{where}.messages")
        return _frozen(
            raw, where, snapshot, messages=messages, model=raw.get("model"), version_id=None, app=None
        )
    else:
        raise InvalidRequest(f"{where} needs an application, a prompt or messages", param=where)
    model = raw.get("model") or (app.model if app is not None else None)
    options = {**(app.options if app is not None else {}), **(raw.get("options") or {})}
    return _frozen(
        {**raw, "options": options},
        where,
        snapshot,
        messages=version.messages,
        model=model,
        version_id=version.id,
        app=app.name if app else None,
        number=version.number,
    )


def _frozen(
    raw: dict[str, Any],
    where: str,
    snapshot: RuntimeSnapshot,
    *,
    messages: list[dict[str, str]],
    model: Any,
    version_id: str | None,
    app: str | None,
    number: int | None = None,
) -> dict[str, Any]:
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"{where} needs a model", param=f"{where}.model")
    applications.check_model(snapshot, model)
    label = raw.get("label") or f"{app or 'prompt'}{'@v' + str(number) if number else ''}:{model}"
    if not isinstance(label, str) or not 0 < len(label) <= 64:
        raise InvalidRequest(f"{where}.label must be 1 to 64 characters", param=f"{where}.label")
    return {
        "label": label,
        "model": model,
        "messages": messages,
        "options": applications.check_options(dict(raw.get("options") or {})),
        "prompt_version_id": version_id,
        "prompt_version": number,
        "application": app,
    }


async def create(
    session: AsyncSession,
    principal: Principal,
    snapshot: RuntimeSnapshot,
    *,
    body: dict[str, Any],
    custom: dict[str, Any],
) -> dict[str, Any]:
    raw_variants = body.get("variants") or []
    if not isinstance(raw_variants, list) or not 1 <= len(raw_variants) <= MAX_VARIANTS:
        raise InvalidRequest(f"variants must be a list of 1 to {MAX_VARIANTS} variants", param="variants")
    for index, raw in enumerate(raw_variants):
        if not isinstance(raw, dict):
            raise InvalidRequest(f"variants[{index}] must be an object", param=f"variants[{index}]")
        if not isinstance(raw.get("options") or {}, dict):
            raise InvalidRequest(
                f"variants[{index}].options must be an object", param=f"variants[{index}].options"
            )
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 128):
        raise InvalidRequest("name must be a string of at most 128 characters", param="name")
    variants = [await _variant(session, principal, snapshot, dict(v), i) for i, v in enumerate(raw_variants)]
    labels = [v["label"] for v in variants]
    if len(set(labels)) != len(labels):
        raise InvalidRequest("variant labels must be distinct", param="variants")
    run_asserts = assertions.check(body.get("assert"), custom=custom)
    dataset_id = dataset_version = None
    inline: list[dict[str, Any]] = []
    if body.get("dataset"):
        dataset = await datasets.get(session, principal, str(body["dataset"]))
        wanted = body.get("dataset_version") or dataset.version
        if not isinstance(wanted, int) or isinstance(wanted, bool) or not 1 <= wanted <= dataset.version:
            raise NotFound(f"Dataset has no version {wanted!r}", param="dataset_version")
        dataset_id, dataset_version = dataset.id, wanted
        cases = await DatasetRepository(session).count(dataset.id, dataset_version)
        for item in await DatasetRepository(session).cases(dataset.id, dataset_version):
            assertions.check(item.assertions, custom=custom)
    else:
        raw_cases = body.get("cases") or []
        if not isinstance(raw_cases, list) or len(raw_cases) > datasets_io.MAX_CASES:
            raise datasets_io.too_many(len(raw_cases) if isinstance(raw_cases, list) else 0)
        for index, item in enumerate(raw_cases):
            checked = datasets_io.case(item, f"cases[{index}]")
            checked["assertions"] = assertions.check(checked["assertions"], custom=custom)
            inline.append({"id": f"c{index}", **checked})
        cases = len(inline)
    if cases == 0:
        raise InvalidRequest("A run needs a dataset or cases", param="dataset", code="no_cases")
    if cases * len(variants) > MAX_PAIRS:
        raise InvalidRequest(
            f"A run executes at most {MAX_PAIRS} calls", param="variants", code="run_too_large"
        )
    cap = body.get("max_cost_usd")
    if cap is not None and (not isinstance(cap, int | float) or isinstance(cap, bool) or cap < 0):
        raise InvalidRequest("max_cost_usd must be a non-negative number", param="max_cost_usd")
    concurrency = body.get("concurrency", 4)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 64:
        raise InvalidRequest("concurrency must be an integer from 1 to 64", param="concurrency")
    for key in ("judge_model", "embedding_model"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidRequest(f"{key} must be a model name", param=key)
    if body.get("judge_model"):
        applications.check_model(snapshot, body["judge_model"])
    spec = {
        "variants": variants,
        "assert": run_asserts,
        "cases": inline,
        "concurrency": concurrency,
        "max_cost_usd": cap,
        "judge_model": body.get("judge_model"),
        "embedding_model": body.get("embedding_model"),
        "baseline": body.get("baseline") or labels[0],
        "principal": {
            "role": principal.role.value,
            "tier": principal.tier,
            "allowed_models": sorted(principal.allowed_models),
            "user_allowed_models": sorted(principal.user_allowed_models),
            "max_route_tier": principal.max_route_tier,
        },
        "source": body.get("source", "api"),
    }
    row = await EvalRunRepository(session).create(
        EvalRun(
            name=body.get("name"),
            owner_id=principal.user_id,
            dataset_id=dataset_id,
            dataset_version=dataset_version,
            status="queued",
            spec=spec,
            total=cases * len(variants),
            done=0,
            spent_usd=0.0,
        )
    )
    return run_dict(row)


async def get(session: AsyncSession, principal: Principal, run_id: str) -> EvalRun:
    check_ref(run_id, "Evaluation run", "run_id")
    row = await EvalRunRepository(session).get_or_none(run_id)
    if row is None or not visible(principal, row.owner_id):
        raise NotFound(f"Evaluation run {run_id!r} not found", param="run_id")
    if row.job_id is not None and row.status not in FINAL:
        await _settle_with_job(session, row)
    return row


async def _settle_with_job(session: AsyncSession, row: EvalRun) -> None:
    """A run on the jobs queue whose job ended without finishing it (time limit, too many attempts,
    dead-lettered) reads ``failed`` with the job's error, instead of ``running`` for ever."""
    job = await session.get(Job, row.job_id)
    if job is None or job.status not in ("failed", "cancelled"):
        return
    message = (job.error or {}).get("message") if isinstance(job.error, dict) else None
    row.status = "failed"
    row.error = f"the evaluation job {job.status}: {message or 'no detail'}"[:2000]
    row.finished_at = row.finished_at or job.finished_at
    row.lease_until = None
    await session.flush()


async def list_runs(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    rows = await EvalRunRepository(session).list(owner_id=owner_filter(principal), limit=limit, offset=offset)
    return [run_dict(row) for row in rows]


async def cancel(session: AsyncSession, principal: Principal, run_id: str) -> dict[str, Any]:
    row = await get(session, principal, run_id)
    if row.status in FINAL:
        raise Conflict(f"The run is already {row.status}", param="run_id")
    row.status = "cancelled"
    await session.flush()
    return run_dict(row)


async def results(session: AsyncSession, principal: Principal, run_id: str) -> list[dict[str, Any]]:
    await get(session, principal, run_id)
    return [
        {
            "variant": r.variant,
            "case_id": r.case_id,
            "pass": r.passed,
            "score": r.score,
            "output": r.output,
            "latency_ms": r.latency_ms,
            "cost_usd": r.cost_usd,
            "model": r.model_served,
            "request_id": r.request_id,
            "error": r.error,
            "assertions": r.assertions,
        }
        for r in await EvalRunRepository(session).results(run_id)
    ]


async def report(session: AsyncSession, principal: Principal, run_id: str) -> dict[str, Any]:
    row = await get(session, principal, run_id)
    by_variant: dict[str, list[compare.Outcome]] = {v["label"]: [] for v in row.spec["variants"]}
    for r in await EvalRunRepository(session).results(run_id):
        by_variant.setdefault(r.variant, []).append(
            compare.Outcome(r.case_id, r.passed, r.score, r.latency_ms, r.cost_usd, r.error is not None)
        )
    return {"run": run_dict(row), **compare.report(by_variant, baseline=row.spec.get("baseline"))}


async def quality(session: AsyncSession, principal: Principal, ref: str, *, runs: int = 10) -> dict[str, Any]:
    """An application's online and offline picture side by side: its product traffic per prompt
    version and experiment arm (requests, errors, latency, cost, feedback), and the variants of its
    latest evaluation runs (pass rate with its interval, cost, latency)."""
    app = await applications.get(session, principal, ref)
    offline = []
    for row in await EvalRunRepository(session).list(owner_id=owner_filter(principal), limit=200, offset=0):
        mine = [v for v in row.spec.get("variants", []) if v.get("application") == app.name]
        if not mine or row.status not in FINAL:
            continue
        summary = await report(session, principal, row.id)
        for variant in mine:
            offline.append(
                {
                    "run_id": row.id,
                    "run": row.name,
                    "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                    "variant": variant["label"],
                    "prompt_version_id": variant["prompt_version_id"],
                    "prompt_version": variant["prompt_version"],
                    "model": variant["model"],
                    **summary["variants"].get(variant["label"], {}),
                }
            )
        if len({o["run_id"] for o in offline}) >= runs:
            break
    online = await live_usage(session, app.name)
    shadows = await app_shadows(session, app.name)
    return {
        "application": app.name,
        "rollout": rollouts.public_rollout(app.rollout),
        "online": online,
        "offline": offline,
        "shadow": shadows,
        "versions": await _per_version(session, app.prompt_id, online, offline, shadows),
    }


async def _per_version(
    session: AsyncSession,
    prompt_id: str,
    online: list[dict[str, Any]],
    offline: list[dict[str, Any]],
    shadows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per prompt version of the application's prompt that has anything to show: its live
    traffic (all arms and models summed), the shadow judge's scores when it was the candidate, and
    its variants in the latest finished evaluation runs."""
    rows = []
    for version in await PromptRepository(session).versions(prompt_id):
        live = [o for o in online if o["prompt_version_id"] == version.id]
        as_shadow = [s for s in shadows if s["candidate_version_id"] == version.id]
        evaluated = [o for o in offline if o["prompt_version_id"] == version.id]
        if not (live or as_shadow or evaluated):
            continue
        requests = sum(int(o["requests"]) for o in live)
        feedback = [o["feedback"] for o in live]
        ratings = sum(int(f["ratings"]) for f in feedback)
        rating_sum = sum(float(f["rating_mean"] or 0.0) * int(f["ratings"]) for f in feedback)
        judges = [s["judge"] for s in as_shadow if s["judge"]]
        judged = sum(j["judged"] for j in judges)
        rows.append(
            {
                "prompt_version_id": version.id,
                "prompt_version": version.number,
                "active": version.is_active,
                "live": {
                    "requests": requests,
                    "errors": sum(int(o["errors"]) for o in live),
                    "cost_usd": round(sum(float(o["cost_usd"]) for o in live), 8),
                    "latency_ms_mean": round(
                        sum(float(o["latency_ms_mean"]) * int(o["requests"]) for o in live) / requests, 3
                    )
                    if requests
                    else None,
                    "arms": sorted({o["app_arm"] for o in live if o["app_arm"]}),
                    "feedback": {
                        "count": sum(int(f["count"]) for f in feedback),
                        "thumbs_up": sum(int(f["thumbs_up"]) for f in feedback),
                        "ratings": ratings,
                        "rating_mean": round(rating_sum / ratings, 4) if ratings else None,
                    },
                },
                "shadow_judge": {
                    "pairs": sum(int(s["pairs"]) for s in as_shadow),
                    "judged": judged,
                    "shadow_score_mean": _weighted(judges, "shadow_score_mean", judged),
                    "live_score_mean": _weighted(judges, "primary_score_mean", judged),
                    "shadow_wins": sum(j["shadow_wins"] for j in judges),
                    "live_wins": sum(j["primary_wins"] for j in judges),
                    "ties": sum(j["ties"] for j in judges),
                }
                if as_shadow
                else None,
                "offline": [
                    {k: o.get(k) for k in ("run_id", "run", "finished_at", "variant", "model", "pass_rate")}
                    | {"pass_rate_ci95": o.get("pass_rate_ci95")}
                    for o in evaluated
                ],
            }
        )
    return rows


def _weighted(judges: list[dict[str, Any]], key: str, total: int) -> float | None:
    if not total:
        return None
    return round(sum(float(j[key] or 0.0) * int(j["judged"]) for j in judges) / total, 4)
