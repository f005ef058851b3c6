"""Canary decisions that reach every worker of every replica.

A canary's *decided* state (step, status, reason, who decided, where, when) lives in a shared store,
one ``CanaryDecision`` per experiment with a generation number:

* ``RedisCanaryStore``: the hash ``{prefix}:canary:decisions`` (field: experiment), written by a
  Lua compare-and-set (the write succeeds only over the generation its writer read), every replica;
* ``FileCanaryStore``: ``decisions.json`` in the parent's status directory, written under an
  ``flock``, the workers of one ``python -m gateway`` without Redis;
* ``LocalCanaryStore``: one process.

Every worker runs one ``CanarySync``. Its background round (every ``POLL_S``, or at once when
woken) first writes the automatic decisions its own traffic made (an advance, a health rollback:
the request path only appends them to a list), then reads the store (one HGETALL) and applies
every newer decision to its in-process ``CanaryState``, then records which generation it runs
(``{prefix}:canary:applied``). The request path never waits on the store.

``decide`` (promote / rollback / reset by an admin) writes with compare-and-set (a lost race re-reads
and decides again over the winner), applies here, and waits (bounded) until every live worker —
the config registry's list — has applied it, answering how many did.

Conflicts: an admin decision always lands (over whatever generation it finds). An automatic
decision made over generation *g* that finds the store further on is dropped, except a health
rollback over another worker's automatic advance, which is written on top: a rollback decided
anywhere applies everywhere, but never undoes a later admin promote or reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.background import BackgroundWorker, Backoff
from gateway.config.settings import Settings
from gateway.errors import Conflict, ServiceUnavailable
from gateway.experiments.canary import CanaryDecision, CanaryState, DecisionEvent, Status
from gateway.experiments.runtime import Experiments
from gateway.observability import metrics, tracing
from gateway.supervision import status_dir

log = structlog.get_logger("prism.experiments")

POLL_S = 1.0
"""How often a worker reads the store: a decision reaches every worker within about this long."""
_WAIT_POLL_S = 0.05
_MAX_ATTEMPTS = 5

Action = Literal["promote", "rollback", "reset"]


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fingerprint(config: Any) -> str:
    """The experiment definition a decision belongs to (a pydantic model's JSON, hashed)."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def _dump(decision: CanaryDecision) -> bytes:
    return orjson.dumps(asdict(decision))


def _parse(raw: bytes | str) -> CanaryDecision | None:
    try:
        data = orjson.loads(raw)
        return CanaryDecision(**data)
    except (orjson.JSONDecodeError, TypeError):
        return None


class CanaryStore(Protocol):
    scope: str

    async def read(self) -> dict[str, CanaryDecision]: ...
    async def write(self, decision: CanaryDecision) -> bool:
        """Store ``decision`` if the stored generation is ``decision.generation - 1`` (0: none)."""
        ...

    async def ack(self, worker: str, applied: dict[str, int]) -> None: ...
    async def acks(self) -> dict[str, dict[str, int]]: ...
    async def aclose(self) -> None: ...


class LocalCanaryStore:
    scope = "process"

    def __init__(self) -> None:
        self._decisions: dict[str, CanaryDecision] = {}
        self._acks: dict[str, dict[str, int]] = {}

    async def read(self) -> dict[str, CanaryDecision]:
        return dict(self._decisions)

    async def write(self, decision: CanaryDecision) -> bool:
        current = self._decisions.get(decision.experiment)
        if (current.generation if current is not None else 0) + 1 != decision.generation:
            return False
        self._decisions[decision.experiment] = decision
        return True

    async def ack(self, worker: str, applied: dict[str, int]) -> None:
        self._acks[worker] = dict(applied)

    async def acks(self) -> dict[str, dict[str, int]]:
        return dict(self._acks)

    async def aclose(self) -> None:
        return None


class FileCanaryStore:
    """The workers of one parent without Redis: ``decisions.json`` (rewritten atomically under an
    exclusive ``flock`` of ``lock``) and one ``applied-<pid>.json`` per worker."""

    scope = "replica"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _read(self) -> dict[str, CanaryDecision]:
        try:
            data = orjson.loads((self.directory / "decisions.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        found = {}
        for name, raw in data.items() if isinstance(data, dict) else ():
            with contextlib.suppress(TypeError):
                found[name] = CanaryDecision(**raw)
        return found

    def _write(self, decision: CanaryDecision) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            decisions = self._read()
            current = decisions.get(decision.experiment)
            if (current.generation if current is not None else 0) + 1 != decision.generation:
                return False
            decisions[decision.experiment] = decision
            tmp = self.directory / f".decisions.{os.getpid()}.tmp"
            tmp.write_bytes(orjson.dumps({name: asdict(d) for name, d in decisions.items()}))
            tmp.replace(self.directory / "decisions.json")
            return True

    def _ack(self, worker: str, applied: dict[str, int]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"applied-{worker.replace('/', '_').replace(':', '_')}.json"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(orjson.dumps({"worker": worker, "applied": applied}))
        tmp.replace(self.directory / name)

    def _acks(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for path in self.directory.glob("applied-*.json"):
            with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError):
                data = orjson.loads(path.read_bytes())
                found[str(data["worker"])] = dict(data["applied"])
        return found

    async def read(self) -> dict[str, CanaryDecision]:
        return await asyncio.to_thread(self._read)

    async def write(self, decision: CanaryDecision) -> bool:
        return await asyncio.to_thread(self._write, decision)

    async def ack(self, worker: str, applied: dict[str, int]) -> None:
        await asyncio.to_thread(self._ack, worker, applied)

    async def acks(self) -> dict[str, dict[str, int]]:
        return await asyncio.to_thread(self._acks)

    async def aclose(self) -> None:
        return None


_CAS = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local generation = 0
if current then generation = tonumber(cjson.decode(current)['generation']) or 0 end
if generation + 1 ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class RedisCanaryStore:
    """Every replica: the decisions hash (no TTL: a decision outlives restarts; a new experiment
    definition has a new fingerprint) and the applied hash (worker → generations, expires a day
    after the last write; entries of workers gone are ignored, the live list comes from the config
    registry)."""

    scope = "cluster"

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:canary:decisions"
        self.applied_key = f"{prefix}:canary:applied"
        self._cas = redis.register_script(_CAS)

    async def read(self) -> dict[str, CanaryDecision]:
        values = await self.redis.hgetall(self.key)
        found = {}
        for raw in values.values():
            decision = _parse(raw)
            if decision is not None:
                found[decision.experiment] = decision
        return found

    async def write(self, decision: CanaryDecision) -> bool:
        done = await self._cas(
            keys=[self.key], args=[decision.experiment, decision.generation, _dump(decision)]
        )
        return bool(done)

    async def ack(self, worker: str, applied: dict[str, int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.applied_key, worker, orjson.dumps(applied))
            pipe.expire(self.applied_key, 86_400)
            await pipe.execute()

    async def acks(self) -> dict[str, dict[str, int]]:
        values = await self.redis.hgetall(self.applied_key)
        found: dict[str, dict[str, int]] = {}
        for field, raw in values.items():
            with contextlib.suppress(orjson.JSONDecodeError, TypeError, ValueError):
                worker = field.decode() if isinstance(field, bytes) else str(field)
                found[worker] = dict(orjson.loads(raw))
        return found

    async def aclose(self) -> None:
        return None  # the client belongs to the config sync


@dataclass(frozen=True, slots=True)
class _Pending:
    experiment: str
    event: DecisionEvent
    step: int
    status: Status
    reason: str | None
    base: int
    """The generation the worker ran when it decided."""


class WorkerDirectory(Protocol):
    """What the canary sync needs of ``gateway.config_sync.ConfigSync`` (named by shape: the config
    sync sits above ``experiments`` in the package graph): its Redis client, the parent's pid for the
    file store, who this worker is and which workers are alive."""

    @property
    def redis(self) -> Redis | None: ...
    @property
    def supervisor_pid(self) -> int | None: ...
    @property
    def replica(self) -> str: ...
    @property
    def pid(self) -> int: ...
    async def describe(self) -> dict[str, Any]: ...


class CanarySync:
    def __init__(
        self,
        experiments: Experiments,
        *,
        store: CanaryStore,
        worker: str,
        live_workers: Callable[[], Awaitable[list[str]]] | None = None,
        poll_s: float = POLL_S,
        wait_s: float = 5.0,
    ) -> None:
        self.experiments = experiments
        self.store = store
        self.worker = worker
        self.live_workers = live_workers
        self.wait_s = wait_s
        self._pending: list[_Pending] = []
        self._seen: dict[str, CanaryDecision] = {}
        self._acked: dict[str, int] | None = None
        self._lock = asyncio.Lock()
        self._poller = BackgroundWorker(
            "canary_sync",
            self._round,
            interval_s=poll_s,
            backoff=Backoff(base_s=poll_s, max_s=5.0),
            stop_timeout_s=0,
        )

    @classmethod
    def for_settings(
        cls, experiments: Experiments, settings: Settings, config_sync: WorkerDirectory
    ) -> CanarySync:
        """The store reaches as far as the config reload does: Redis (shared with the config sync's
        client), else the parent's status directory, else this process."""
        store: CanaryStore
        if config_sync.redis is not None:
            store = RedisCanaryStore(config_sync.redis, prefix=settings.redis_key_prefix)
        elif config_sync.supervisor_pid is not None:
            store = FileCanaryStore(status_dir(config_sync.supervisor_pid) / "canary")
        else:
            store = LocalCanaryStore()

        async def live() -> list[str]:
            report = await config_sync.describe()
            return [f"{w['replica']}:{w['pid']}" for w in report["workers"]]

        return cls(
            experiments,
            store=store,
            worker=f"{config_sync.replica}:{config_sync.pid}",
            live_workers=live,
            wait_s=settings.config_reload_wait_s,
        )

    @property
    def scope(self) -> str:
        return self.store.scope

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Apply the stored decisions before serving (a worker started after a rollback starts
        rolled back), then follow the store in the background."""
        self.experiments.set_listener(self._on_auto)
        with contextlib.suppress(RedisError, OSError):
            await self._round()
        self._poller.start()

    async def aclose(self) -> None:
        await self._poller.stop()
        self.experiments.set_listener(None)
        await self.store.aclose()

    # -- the request path: only remember ----------------------------------------------------

    def _on_auto(self, state: CanaryState, event: DecisionEvent) -> None:
        self._pending.append(
            _Pending(
                experiment=state.experiment,
                event=event,
                step=state.step,
                status=state.status,
                reason=state.rollback_reason if event == "rollback" else None,
                base=state.generation,
            )
        )
        with contextlib.suppress(RuntimeError):
            self._poller.wake()

    # -- the background round ---------------------------------------------------------------

    async def _round(self) -> bool:
        async with self._lock:
            try:
                if self._pending:
                    pending, self._pending = self._pending, []
                    try:
                        await self._push(pending)
                    except (RedisError, OSError):
                        self._pending[:0] = pending  # retried next round (a written one is then stale)
                        raise
                self._seen = await self.store.read()
                self._apply_seen()
                await self._ack()
            except (RedisError, OSError) as exc:
                log.warning("canary_sync_failed", error=type(exc).__name__, worker=self.worker)
                return False
        return True

    def _fingerprint(self, name: str) -> str | None:
        config = self.experiments.configs.get(name)
        return fingerprint(config) if config is not None else None

    async def _push(self, pending: list[_Pending]) -> None:
        seen = await self.store.read()
        for item in pending:
            state = self.experiments.canary(item.experiment)
            print_ = self._fingerprint(item.experiment)
            if state is None or print_ is None:
                continue
            for _ in range(_MAX_ATTEMPTS):
                current = seen.get(item.experiment)
                generation = current.generation if current is not None else 0
                if current is not None and current.fingerprint == print_ and generation > item.base:
                    overrides = item.event == "rollback" and (
                        current.actor == "auto" and current.status != "rolled_back"
                    )
                    if not overrides:
                        log.info(
                            "canary_decision_superseded",
                            experiment=item.experiment,
                            action=item.event,
                            by=current.event,
                            generation=generation,
                            worker=self.worker,
                        )
                        break
                decision = CanaryDecision(
                    experiment=item.experiment,
                    generation=generation + 1,
                    fingerprint=print_,
                    event=item.event,
                    step=item.step,
                    status=item.status,
                    reason=item.reason,
                    actor="auto",
                    source=self.worker,
                    at=_utc_now(),
                )
                if await self.store.write(decision):
                    if state.generation == item.base:
                        state.adopt(decision)  # this worker runs it already
                    log.info(
                        "canary_decided",
                        experiment=item.experiment,
                        action=item.event,
                        generation=decision.generation,
                        percent=state.percent,
                        actor="auto",
                        source=self.worker,
                    )
                    seen[item.experiment] = decision
                    break
                seen = await self.store.read()

    def _apply_seen(self) -> None:
        for name, decision in self._seen.items():
            state = self.experiments.canary(name)
            if state is None or decision.generation <= state.generation:
                continue
            if decision.fingerprint != self._fingerprint(name):
                continue
            before = state.status
            if state.apply(decision):
                metrics.CANARY_PERCENT.labels(experiment=name).set(state.percent)
                log.info(
                    "canary_applied",
                    experiment=name,
                    action=decision.event,
                    generation=decision.generation,
                    status=state.status,
                    before=before,
                    percent=state.percent,
                    actor=decision.actor,
                    source=decision.source,
                    worker=self.worker,
                )

    def applied(self) -> dict[str, int]:
        return {name: state.generation for name, state in self.experiments.canaries().items()}

    async def _ack(self) -> None:
        applied = self.applied()
        if applied != self._acked:
            await self.store.ack(self.worker, applied)
            self._acked = applied

    # -- admin decisions ----------------------------------------------------------------------

    async def decide(self, name: str, action: Action, *, reason: str, actor: str) -> dict[str, Any] | None:
        """Promote, roll back or reset ``name``'s canary everywhere; None when it has no canary.
        Answers the shared decision and how many live workers applied it within ``wait_s``."""
        if self.experiments.canary(name) is None:
            return None
        attributes = {
            "prism.experiment": name,
            "prism.canary.action": action,
            "prism.canary.scope": self.scope,
        }
        with tracing.tracer().start_as_current_span("canary decide", attributes=attributes) as span:
            answer = await self._decide(name, action, reason=reason, actor=actor)
            if answer is not None:
                span.set_attribute("prism.canary.scope", self.scope)
                span.set_attribute("prism.canary.generation", answer["shared"]["generation"])
                span.set_attribute("prism.canary.applied", answer["applied"])
                span.set_attribute("prism.canary.workers", answer["workers"])
            return answer

    async def _decide(self, name: str, action: Action, *, reason: str, actor: str) -> dict[str, Any] | None:
        decision: CanaryDecision | None = None
        state: CanaryState | None = None
        async with self._lock:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    self._seen = await self.store.read()
                except (RedisError, OSError) as exc:
                    log.warning("canary_store_unavailable", error=type(exc).__name__, worker=self.worker)
                    raise ServiceUnavailable(
                        "The shared canary store is unavailable; nothing was changed, retry shortly",
                        code="canary_store_unavailable",
                        headers={"retry-after": "1"},
                    ) from exc
                self._apply_seen()  # decide over the newest state
                state = self.experiments.canary(name)
                print_ = self._fingerprint(name)
                if state is None or print_ is None:
                    return None
                current = self._seen.get(name)
                last = len(state.config.steps) - 1
                step, status = {
                    "promote": (last, "complete"),
                    "rollback": (state.step, "rolled_back"),
                    "reset": (0, "ramping" if last > 0 else "complete"),
                }[action]
                candidate = CanaryDecision(
                    experiment=name,
                    generation=(current.generation if current is not None else 0) + 1,
                    fingerprint=print_,
                    event=action,
                    step=step,
                    status=cast(Status, status),
                    reason=reason,
                    actor=actor,
                    source=self.worker,
                    at=_utc_now(),
                )
                try:
                    written = await self.store.write(candidate)
                except (RedisError, OSError) as exc:  # not known whether it landed: the next poll says
                    log.warning("canary_store_unavailable", error=type(exc).__name__, worker=self.worker)
                    raise ServiceUnavailable(
                        "The shared canary store did not answer; check the experiment and retry",
                        code="canary_store_unavailable",
                        headers={"retry-after": "1"},
                    ) from exc
                if written:
                    decision = candidate
                    break
            if decision is None or state is None:
                raise Conflict(
                    f"Canary {name!r} changed {_MAX_ATTEMPTS} times while deciding; retry",
                    code="canary_conflict",
                )
            state.apply(decision)
            self._seen[name] = decision
            metrics.CANARY_PERCENT.labels(experiment=name).set(state.percent)
            log.info(
                f"canary_{action}",
                experiment=name,
                reason=reason,
                percent=state.percent,
                generation=decision.generation,
                actor=actor,
                source=self.worker,
            )
            with contextlib.suppress(RedisError, OSError):
                await self._ack()
        confirmation = await self._wait(name, decision.generation)
        return {"shared": decision.public(), **confirmation}

    async def _wait(self, name: str, generation: int) -> dict[str, Any]:
        started = time.monotonic()
        known = await self._live()
        pending: list[str] = []
        while True:
            try:
                acks = await self.store.acks()
            except (RedisError, OSError):
                acks = {}
            acks[self.worker] = self.applied()
            pending = sorted(w for w in known if acks.get(w, {}).get(name, 0) < generation)
            if not pending or time.monotonic() - started >= self.wait_s:
                break
            await asyncio.sleep(_WAIT_POLL_S)
            if pending:
                live = set(await self._live())
                known = [w for w in known if w in live]  # a worker that stopped is not waited for
        return {
            "scope": self.scope,
            "workers": len(known),
            "applied": len(known) - len(pending),
            "pending": pending,
            "waited_ms": round((time.monotonic() - started) * 1000, 1),
        }

    async def _live(self) -> list[str]:
        workers = {self.worker}
        if self.live_workers is not None:
            with contextlib.suppress(RedisError, OSError):
                workers.update(await self.live_workers())
        return sorted(workers)

    async def describe(self, name: str) -> dict[str, Any] | None:
        """The shared decision and which live workers run it (``GET /admin/experiments/{name}``)."""
        if self.experiments.canary(name) is None:
            return None
        try:
            decision = (await self.store.read()).get(name)
            acks = await self.store.acks()
        except (RedisError, OSError) as exc:
            return {"scope": self.scope, "error": type(exc).__name__}
        acks[self.worker] = self.applied()
        known = await self._live()
        generation = decision.generation if decision is not None else 0
        pending = sorted(w for w in known if acks.get(w, {}).get(name, 0) < generation)
        return {
            "scope": self.scope,
            "shared": decision.public() if decision is not None else None,
            "workers": len(known),
            "applied": len(known) - len(pending),
            "pending": pending,
        }
