"""The evaluation worker: executes queued runs off the request workers, through the gateway's own
request flow (quotas, guardrails, routing, retries, accounting), one usage record per call tagged
``traffic=evaluation`` with the application and prompt version.

One :class:`~gateway.background.BackgroundWorker` (``eval_runs``) per process claims a run (a
conditional update: two replicas never both win) under a lease it renews with every result, and
executes its missing (variant, case) pairs with bounded concurrency. Each result is committed on its
own with the run's progress and spend, so a run survives a restart: a graceful stop hands the run
back (``queued``), a crash leaves a lease that expires (``GATEWAY_EVAL_LEASE_S``), and either way
the next claim skips the pairs already stored. Before each call the run's spend is checked against
``max_cost_usd``; at the cap the run stops as ``budget_exceeded`` (calls already in flight finish,
so the overshoot is at most ``concurrency`` calls).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.agent.state import ChatInput
from gateway.background import BackgroundWorker
from gateway.db.llmops import EvalResult, EvalRun
from gateway.db.repositories.evals import DatasetRepository, EvalRunRepository
from gateway.errors import GatewayError
from gateway.evals import assertions
from gateway.evals.judge import rubric_judge
from gateway.prompts import template
from gateway.providers.tokens import count_messages
from gateway.runtime import ConfigHolder
from gateway.security.principal import Principal, Role
from gateway.services.admission import CachePolicy
from gateway.services.completion import CompletionService
from gateway.services.embeddings import EmbeddingService
from gateway.usage.record import UsageTags

log = structlog.get_logger("prism.evals")
FINAL = frozenset({"completed", "budget_exceeded", "failed", "cancelled"})
NO_CACHE = CachePolicy(read=False, write=False)


def now() -> datetime:
    return datetime.now(UTC)


class EvalRunner:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        completions: CompletionService,
        holder: ConfigHolder,
        embeddings: EmbeddingService | None,
        custom: dict[str, assertions.Custom],
        max_concurrency: int,
        lease_s: float,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.completions = completions
        self.holder = holder
        self.embeddings = embeddings
        self.custom = custom
        self.max_concurrency = max_concurrency
        self.lease_s = lease_s
        self.clock = clock
        self.current: str | None = None
        self.worker = BackgroundWorker(
            "eval_runs", self._step, interval_s=2.0, first=self._step, drain=self._release, stop_timeout_s=0
        )

    def start(self) -> None:
        self.worker.start()

    def wake(self) -> None:
        self.worker.wake()

    async def aclose(self) -> None:
        await self.worker.aclose()

    async def _release(self) -> None:
        """Stopping: hand the run under way back to the queue, so a restart resumes it at once."""
        if self.current is None:
            return
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(EvalRun)
                .where(EvalRun.id == self.current, EvalRun.status == "running")
                .values(status="queued", lease_until=None)
            )
        log.info("eval_run_released", run_id=self.current)
        self.current = None

    async def _step(self) -> bool:
        while True:
            async with self.sessionmaker() as session, session.begin():
                repo = EvalRunRepository(session)
                run_id = await repo.claimable(self.clock())
                if run_id is None:
                    return True
                claimed = await repo.claim(run_id, now=self.clock(), lease_until=self._lease())
            if claimed:
                self.current = run_id
                await self.execute(run_id)
                self.current = None

    async def run_for_job(self, run_id: str, *, job_id: str) -> str:
        """Execute (or resume) a run that the ``evaluation`` job ``job_id`` owns, to its end; its final
        status. The job's lease fences it (one worker at a time), so a redelivered job takes the run
        over at once, whatever the run's own lease says, and skips the pairs already stored."""
        async with self.sessionmaker() as session, session.begin():
            run = await EvalRunRepository(session).get_or_none(run_id)
            if run is None or run.job_id != job_id:
                raise LookupError(f"evaluation run {run_id} is not job {job_id}'s")
            if run.status in FINAL:
                return run.status
            await session.execute(
                update(EvalRun)
                .where(EvalRun.id == run_id, EvalRun.status.in_(("queued", "running")))
                .values(
                    status="running",
                    lease_until=self._lease(),
                    started_at=func.coalesce(EvalRun.started_at, self.clock()),
                )
            )
        self.current = run_id
        try:
            await self.execute(run_id)
        finally:
            self.current = None
        async with self.sessionmaker() as session:
            final = await EvalRunRepository(session).get_or_none(run_id)
            return final.status if final is not None else "failed"

    def _lease(self) -> datetime:
        return self.clock() + timedelta(seconds=self.lease_s)

    async def execute(self, run_id: str) -> None:
        async with self.sessionmaker() as session:
            run = await EvalRunRepository(session).get_or_none(run_id)
            assert run is not None
            spec, owner = dict(run.spec), run.owner_id
            if run.dataset_id is not None and run.dataset_version is not None:
                rows = await DatasetRepository(session).cases(run.dataset_id, run.dataset_version)
                cases = [
                    {
                        "id": r.id,
                        "input": r.input,
                        "vars": r.vars,
                        "expected": r.expected,
                        "assertions": r.assertions,
                    }
                    for r in rows
                ]
            else:
                cases = list(spec.get("cases") or [])
            done = {(r.variant, r.case_id) for r in await EvalRunRepository(session).results(run_id)}
            spent = run.spent_usd
        log.info("eval_run_started", run_id=run_id, pairs=len(cases) * len(spec["variants"]), done=len(done))
        principal = self._principal(owner, spec.get("principal") or {})
        tools = assertions.Tools(
            embed=self._embedder(spec.get("embedding_model"), principal),
            judge=self._judge(spec.get("judge_model"), principal, run_id),
            custom=self.custom,
        )
        budget = _Budget(spent=spent, cap=spec.get("max_cost_usd"))
        limit = asyncio.Semaphore(min(int(spec.get("concurrency", 4)), self.max_concurrency))
        stop = asyncio.Event()

        async def one(variant: dict[str, Any], case: dict[str, Any]) -> None:
            async with limit:
                if stop.is_set():
                    return
                if budget.exhausted():
                    budget.hit = True
                    stop.set()
                    return
                try:
                    result = await self._call(run_id, variant, case, spec, principal, tools)
                except Exception as exc:  # a bug in one pair must not end the run: stored as its error
                    log.warning("eval_pair_failed", run_id=run_id, error=type(exc).__name__, exc_info=True)
                    result = EvalResult(
                        run_id=run_id,
                        variant=variant["label"],
                        case_id=case["id"],
                        passed=False,
                        score=0.0,
                        latency_ms=0.0,
                        cost_usd=0.0,
                        error=type(exc).__name__,
                        assertions=[],
                    )
                budget.spent += result.cost_usd
                if not await self._store(run_id, result, budget.spent):
                    stop.set()  # cancelled, or taken over after our lease expired

        pairs = [(v, c) for v in spec["variants"] for c in cases if (v["label"], c["id"]) not in done]
        await asyncio.gather(*(one(v, c) for v, c in pairs))
        status = "budget_exceeded" if budget.hit else "completed"
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(EvalRun)
                .where(EvalRun.id == run_id, EvalRun.status == "running")
                .values(
                    status=status,
                    finished_at=self.clock(),
                    lease_until=None,
                    error=f"stopped at the spend cap of ${budget.cap}" if budget.hit else None,
                )
            )
        log.info("eval_run_finished", run_id=run_id, status=status, spent_usd=round(budget.spent, 6))

    def _principal(self, owner: str | None, saved: dict[str, Any]) -> Principal:
        return Principal(
            user_id=owner,
            role=Role(saved.get("role", "user")),
            tier=str(saved.get("tier", "free")),
            allowed_models=frozenset(saved.get("allowed_models") or ()),
            user_allowed_models=frozenset(saved.get("user_allowed_models") or ()),
            max_route_tier=saved.get("max_route_tier"),
        )

    def _embedder(self, model: str | None, principal: Principal) -> assertions.Embed | None:
        service = self.embeddings
        if model is None or service is None:
            return None

        async def embed(texts: list[str]) -> list[list[float]]:
            result = await service.embed_texts(
                texts, model=model, principal=principal, request_id=uuid.uuid4().hex
            )
            return result.vectors

        return embed

    def _judge(self, model: str | None, principal: Principal, run_id: str) -> assertions.Judge | None:
        if model is None:
            return None

        async def ask(messages: list[dict[str, str]], judge: str) -> str:
            reply = await self._complete(
                ChatInput(
                    model=judge,
                    messages=messages,
                    params={"temperature": 0},
                    stream=False,
                    include_usage=False,
                    metadata={"eval_run": run_id},
                    prompt_tokens=count_messages(messages),
                ),
                principal,
                UsageTags(traffic="evaluation"),
            )
            return assertions.reply_text(reply[0])

        return rubric_judge(ask, default_model=model)

    async def _complete(
        self, chat: ChatInput, principal: Principal, tags: UsageTags
    ) -> tuple[dict[str, Any], str]:
        request_id = uuid.uuid4().hex
        sticky: dict[str, str | None] = {
            "user": principal.user_id,
            "user_source": None,
            "api_key": None,
            "conversation": None,
            "request": request_id,
        }
        reply = await self.completions.run(
            chat=chat,
            principal=principal,
            request_id=request_id,
            sticky=sticky,
            cache_policy=NO_CACHE,
            tags=tags,
        )
        return reply.body or {}, reply.model or ""

    async def _call(
        self,
        run_id: str,
        variant: dict[str, Any],
        case: dict[str, Any],
        spec: dict[str, Any],
        principal: Principal,
        tools: assertions.Tools,
    ) -> EvalResult:
        result = EvalResult(
            run_id=run_id,
            variant=variant["label"],
            case_id=case["id"],
            passed=False,
            score=0.0,
            latency_ms=0.0,
            cost_usd=0.0,
            assertions=[],
        )
        values = {**(case.get("vars") or {})}
        started = time.perf_counter()
        try:
            messages = template.render(variant["messages"], values, param=f"cases[{case['id']}].vars")
            if case.get("input"):
                messages.append({"role": "user", "content": case["input"]})
            chat = ChatInput(
                model=variant["model"],
                messages=messages,
                params=dict(variant["options"]),
                stream=False,
                include_usage=False,
                metadata={"eval_run": run_id},
                prompt_tokens=count_messages(messages),
            )
            tags = UsageTags(variant.get("application"), variant.get("prompt_version_id"), "evaluation")
            body, served = await self._complete(chat, principal, tags)
        except GatewayError as exc:
            result.error = f"{exc.status_code} {exc.message}"[:500]
            result.latency_ms = (time.perf_counter() - started) * 1000
            result.assertions = [{"type": "call", "pass": False, "score": 0.0, "reason": result.error}]
            return result
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.output = assertions.reply_text(body)
        result.model_served = served
        usage = body.get("usage") or {}
        target = self.holder.current.targets.get(served)
        if target is not None:
            result.cost_usd = target.config.cost(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        answer = assertions.Answer(
            result.output, result.latency_ms, result.cost_usd, values, case.get("expected")
        )
        verdicts = [
            await assertions.evaluate(s, answer, tools)
            for s in [*case.get("assertions", []), *spec["assert"]]
        ]
        result.passed, result.score = assertions.case_score(verdicts)
        result.assertions = [v.as_dict() for v in verdicts]
        return result

    async def _store(self, run_id: str, result: EvalResult, spent: float) -> bool:
        """Commit one result with the run's progress and lease; False when the run is no longer ours."""
        try:
            async with self.sessionmaker() as session, session.begin():
                moved = await session.execute(
                    update(EvalRun)
                    .where(EvalRun.id == run_id, EvalRun.status == "running")
                    .values(done=EvalRun.done + 1, spent_usd=spent, lease_until=self._lease())
                )
                if not getattr(moved, "rowcount", 0):
                    return False
                await EvalRunRepository(session).add_result(result)
        except IntegrityError:
            return True  # another replica stored this pair first (after a lease takeover)
        return True


class _Budget:
    def __init__(self, *, spent: float, cap: float | None) -> None:
        self.spent = spent
        self.cap = cap
        self.hit = False

    def exhausted(self) -> bool:
        return self.cap is not None and self.spent >= self.cap
