"""Routing-config reload that reaches every worker of every replica (issue #18).

Every worker process runs one ``ConfigSync``. It reloads the routing file

* on ``SIGHUP`` (``python -m gateway`` forwards a SIGHUP of the parent to each of its workers), and
* on a reload notice: with Redis, a message on the pub/sub channel ``{prefix}:config:reload``
  (``{"id", "hash", "origin"}``) that every worker of every replica receives; without Redis, the
  workers of one ``python -m gateway`` are told through their parent (the notice id is left in the
  status directory, then the parent gets SIGHUP and forwards it).

Each reload re-reads the worker's own file: a worker whose file differs loads that file and reports
its own hash; an invalid file is refused and the running config stays (the status carries the error).

Every worker publishes its status (replica, pid, config hash, loaded_at, last error, last notice
handled) with a heartbeat into a registry whose entries expire: the Redis hash
``{prefix}:config:workers`` (field ``{replica}:{pid}``), else one file per worker in the status
directory of its parent, else (one process, the embedded default) just itself.

``reload_everywhere`` (``POST /admin/config/reload``) reloads here first (an invalid file is refused
before anything is sent), sends a notice, then waits, bounded, until every worker seen alive before
the notice has handled it, and reports which replica and worker run which hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.background import BackgroundWorker, Backoff
from gateway.cache.backends import make_redis
from gateway.cache.redis_url import client_from_url
from gateway.config.routing import ConfigError
from gateway.config.settings import Settings
from gateway.runtime import ConfigHolder, ReloadOutcome
from gateway.supervision import status_dir

log = structlog.get_logger("prism.config")

HEARTBEAT_S = 2.0
STATUS_TTL_S = 3 * HEARTBEAT_S
"""A worker whose status is older than this is taken as gone (its key expires in Redis too)."""
_POLL_S = 0.05
_MAX_BACKOFF_S = 5.0
_RESUBSCRIBE_S = 0.1


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    replica: str
    pid: int
    hash: str | None
    loaded_at: float | None
    error: str | None
    """Why this worker's last reload was refused (it runs ``hash`` still)."""
    notice: str | None
    """The id of the last reload notice this worker handled."""
    seen_at: float

    @property
    def key(self) -> str:
        return f"{self.replica}:{self.pid}"

    def dump(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def parse(cls, raw: bytes | str) -> WorkerStatus | None:
        try:
            data = orjson.loads(raw)
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError):
            return None

    def public(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "pid": self.pid,
            "hash": self.hash,
            "loaded_at": _iso(self.loaded_at),
            "error": self.error,
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1000):03d}Z"


class StatusRegistry(Protocol):
    async def put(self, status: WorkerStatus) -> None: ...
    async def list(self) -> list[WorkerStatus]: ...
    async def remove(self, status: WorkerStatus) -> None: ...


class LocalRegistry:
    """One process: the registry is this worker."""

    def __init__(self) -> None:
        self._status: WorkerStatus | None = None

    async def put(self, status: WorkerStatus) -> None:
        self._status = status

    async def list(self) -> list[WorkerStatus]:
        return [self._status] if self._status is not None else []

    async def remove(self, status: WorkerStatus) -> None:
        self._status = None


class FileRegistry:
    """The workers of one parent process without Redis: a JSON file per worker, written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _put(self, status: WorkerStatus) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{status.pid}.tmp"
        tmp.write_bytes(status.dump())
        tmp.replace(self.directory / f"{status.pid}.json")

    def _list(self) -> list[WorkerStatus]:
        """Fresh statuses; files of workers gone for longer than the TTL are removed (the file
        counterpart of a Redis key expiring)."""
        found = []
        now = time.time()
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError):
                status = WorkerStatus.parse(path.read_bytes())
                if status is None or now - status.seen_at > STATUS_TTL_S:
                    path.unlink(missing_ok=True)
                else:
                    found.append(status)
        return found

    async def put(self, status: WorkerStatus) -> None:
        await asyncio.to_thread(self._put, status)

    async def list(self) -> list[WorkerStatus]:
        return await asyncio.to_thread(self._list)

    async def remove(self, status: WorkerStatus) -> None:
        (self.directory / f"{status.pid}.json").unlink(missing_ok=True)

    def write_notice(self, notice: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "notice").write_text(notice)

    def read_notice(self) -> str | None:
        try:
            return (self.directory / "notice").read_text().strip() or None
        except OSError:
            return None


class RedisRegistry:
    """One Redis hash ``{prefix}:config:workers`` (field ``replica:pid`` → status JSON): reading it is
    one HGETALL however large the keyspace is. Fields have no TTL in Redis 7.0, so readers drop the
    statuses older than ``STATUS_TTL_S`` (HDEL) and the whole hash expires when no worker is left."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}:config:workers"

    async def put(self, status: WorkerStatus) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.key, status.key, status.dump())
            pipe.expire(self.key, int(STATUS_TTL_S * 10))
            await pipe.execute()

    async def list(self) -> list[WorkerStatus]:
        values = await self.redis.hgetall(self.key)
        now = time.time()
        found, stale = [], []
        for field, raw in values.items():
            status = WorkerStatus.parse(raw)
            if status is None or now - status.seen_at > STATUS_TTL_S:
                stale.append(field)
            else:
                found.append(status)
        if stale:
            await self.redis.hdel(self.key, *stale)
        return found

    async def remove(self, status: WorkerStatus) -> None:
        await self.redis.hdel(self.key, status.key)


class ConfigSync:
    def __init__(
        self,
        holder: ConfigHolder,
        *,
        replica: str,
        registry: StatusRegistry,
        redis_url: str | None = None,
        redis: Redis | None = None,
        prefix: str = "prism",
        supervisor_pid: int | None = None,
        wait_s: float = 5.0,
    ) -> None:
        self.holder = holder
        self.replica = replica
        self.pid = os.getpid()
        self.registry = registry
        self.redis = redis
        self.redis_url = redis_url
        self.channel = f"{prefix}:config:reload"
        self.supervisor_pid = supervisor_pid
        self.wait_s = wait_s
        self.notice: str | None = None
        self._heartbeat = BackgroundWorker(
            "config_heartbeat", self._publish_status, interval_s=HEARTBEAT_S, backoff=None, stop_timeout_s=0
        )
        """A missed beat lets this worker's status expire: it beats every interval, failing or not."""
        self._listener = BackgroundWorker(
            "config_listen",
            self._listen,
            interval_s=_RESUBSCRIBE_S,
            backoff=Backoff(base_s=_RESUBSCRIBE_S, max_s=_MAX_BACKOFF_S),
            first=self._listen,
            stop_timeout_s=0,
        )
        """One round is one subscription, for as long as it lasts."""
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def for_settings(cls, holder: ConfigHolder, settings: Settings) -> ConfigSync:
        supervisor = settings.supervisor_pid
        replica = settings.replica_id or f"{socket.gethostname()}:{supervisor or os.getpid()}"
        registry: StatusRegistry
        redis = None
        if settings.redis_url:
            timeout_ms = max(settings.redis_timeout_ms, 1000)  # admin and heartbeats, not the hot path
            redis = make_redis(settings.redis_url, timeout_ms=timeout_ms, max_connections=8)
            registry = RedisRegistry(redis, prefix=settings.redis_key_prefix)
        elif supervisor is not None:
            registry = FileRegistry(status_dir(supervisor))
        else:
            registry = LocalRegistry()
        return cls(
            holder,
            replica=replica,
            registry=registry,
            redis_url=settings.redis_url,
            redis=redis,
            prefix=settings.redis_key_prefix,
            supervisor_pid=supervisor,
            wait_s=settings.config_reload_wait_s,
        )

    @property
    def scope(self) -> str:
        """How far a reload reaches: ``cluster`` (Redis), ``replica`` (the parent's workers), ``process``."""
        if self.redis is not None:
            return "cluster"
        return "replica" if self.supervisor_pid is not None else "process"

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            replica=self.replica,
            pid=self.pid,
            hash=self.holder.config_hash,
            loaded_at=self.holder.loaded_at,
            error=self.holder.last_error,
            notice=self.notice,
            seen_at=time.time(),
        )

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        await self._publish_status()
        self._heartbeat.start()
        if self.redis_url is not None:
            self._listener.start()

    async def aclose(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self._heartbeat.stop()
        await self._listener.stop()
        for task in self._pending:
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.registry.remove(self.status())
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    # -- reloading ----------------------------------------------------------------------------

    def reload_here(self, *, notice: str | None, source: str) -> ReloadOutcome:
        """Re-read this worker's file; an invalid one is logged and the running config stays."""
        if notice is not None:
            self.notice = notice
        try:
            _, outcome = self.holder.reload()
        except ConfigError as exc:
            log.error("config_reload_rejected", source=source, error=str(exc), hash=self.holder.config_hash)
            return "rejected"
        if outcome == "ok":
            log.info("config_reloaded", source=source, hash=self.holder.config_hash, replica=self.replica)
        return outcome

    def _on_sighup(self) -> None:
        notice = None
        if isinstance(self.registry, FileRegistry):
            notice = self.registry.read_notice()
        outcome = self.reload_here(notice=notice, source="sighup")
        self._spawn(self._after_sighup(outcome))

    async def _after_sighup(self, outcome: ReloadOutcome) -> None:
        await self._publish_status()
        if outcome == "ok" and self.redis is not None:
            # a SIGHUP reaches this replica; the notice takes the new file to every other one
            await self._send_notice(uuid.uuid4().hex[:12])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_notice(self, notice: str) -> None:
        origin = f"{self.replica}:{self.pid}"
        payload = orjson.dumps({"id": notice, "hash": self.holder.config_hash, "origin": origin})
        try:
            if self.redis is not None:
                await self.redis.publish(self.channel, payload)
            elif isinstance(self.registry, FileRegistry) and self.supervisor_pid is not None:
                await asyncio.to_thread(self.registry.write_notice, notice)
                os.kill(self.supervisor_pid, signal.SIGHUP)
        except (RedisError, OSError) as exc:
            log.warning("config_notice_failed", error=type(exc).__name__)

    async def reload_everywhere(self, *, wait_s: float | None = None) -> dict[str, Any]:
        """Reload here (``ConfigError`` when the file is invalid: nothing is sent), tell every other
        worker, wait until the workers alive before the notice handled it, and say who runs what."""
        notice = uuid.uuid4().hex[:12]
        self.notice = notice
        _, outcome = self.holder.reload()  # raises ConfigError: the caller answers 400, nothing is sent
        await self._publish_status()
        known = {status.key for status in await self._live()} | {self.status().key}
        await self._send_notice(notice)
        started = time.monotonic()
        deadline = started + (self.wait_s if wait_s is None else wait_s)
        while True:
            workers = await self._live()
            handled = {status.key for status in workers if status.notice == notice}
            pending = known - handled - {self.status().key}
            gone = known - {status.key for status in workers}
            pending -= gone  # a worker that stopped (its status expired) is not waited for
            if not pending or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL_S)
        return self._report(
            workers,
            outcome=outcome,
            notice=notice,
            pending=sorted(pending),
            waited_ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def describe(self) -> dict[str, Any]:
        """Which replica and worker runs which config hash (``GET /admin/config/status``)."""
        return self._report(await self._live())

    def _report(
        self,
        workers: list[WorkerStatus],
        *,
        outcome: ReloadOutcome | None = None,
        notice: str | None = None,
        pending: list[str] | None = None,
        waited_ms: float | None = None,
    ) -> dict[str, Any]:
        mine = self.holder.config_hash
        by_key = {status.key: status for status in workers}
        by_key[self.status().key] = self.status()
        ordered = sorted(by_key.values(), key=lambda s: (s.replica, s.pid))
        replicas: dict[str, dict[str, int]] = {}
        for status in ordered:
            hashes = replicas.setdefault(status.replica, {})
            hashes[status.hash or "none"] = hashes.get(status.hash or "none", 0) + 1
        answer: dict[str, Any] = {
            "hash": mine,
            "scope": self.scope,
            "converged": all(status.hash == mine for status in ordered) and not pending,
            "workers": [
                {
                    **status.public(),
                    "current": status.hash == mine,
                    "answered": notice is None or status.notice == notice,
                }
                for status in ordered
            ],
            "replicas": replicas,
        }
        if outcome is not None:
            answer.update(outcome=outcome, notice=notice, pending=pending or [], waited_ms=waited_ms)
        return answer

    # -- background ---------------------------------------------------------------------------

    async def _live(self) -> list[WorkerStatus]:
        try:
            statuses = await self.registry.list()
        except (RedisError, OSError) as exc:
            log.warning("config_status_read_failed", error=type(exc).__name__)
            return [self.status()]
        now = time.time()
        return [status for status in statuses if now - status.seen_at <= STATUS_TTL_S]

    async def _publish_status(self) -> bool:
        try:
            await self.registry.put(self.status())
        except (RedisError, OSError) as exc:
            log.warning("config_status_write_failed", error=type(exc).__name__)
            return False
        return True

    async def _listen(self) -> bool:
        """Follow the reload channel for as long as one subscription lasts. After every subscription
        (the first one too: a notice sent while this worker was starting or disconnected is missed)
        the file is checked once and reloaded when it changed. A connection lost after subscribing
        is a success (resubscribe after ``_RESUBSCRIBE_S``); failing to subscribe is a failure (the
        worker backs off, doubling up to ``_MAX_BACKOFF_S``)."""
        assert self.redis_url is not None
        client: Redis = client_from_url(self.redis_url, socket_timeout=None, socket_connect_timeout=2.0)
        subscribed = False
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(self.channel)
                subscribed = True
                if self.holder.file_changed():
                    self.reload_here(notice=None, source="subscribe")
                    await self._publish_status()
                while True:
                    message = await pubsub.get_message(timeout=HEARTBEAT_S)
                    if message is not None and message.get("type") == "message":
                        await self._on_notice(message["data"])
        except (RedisError, OSError) as exc:
            log.warning("config_listen_failed", error=type(exc).__name__, subscribed=subscribed)
            return subscribed
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _on_notice(self, raw: bytes) -> None:
        try:
            data = orjson.loads(raw)
            notice, origin = str(data["id"]), str(data.get("origin", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("config_notice_invalid")
            return
        if origin == f"{self.replica}:{self.pid}":
            return
        try:
            self.reload_here(notice=notice, source="notice")
        except Exception:  # the listener must outlive any failure of one reload
            log.exception("config_reload_failed", source="notice")
        await self._publish_status()
