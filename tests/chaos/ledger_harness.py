"""The usage-ledger checker (issue #17), written against the contract, not the implementation.

A *cluster* is one Postgres and one Redis that this module starts itself (fresh per scenario),
and N replicas of the real gateway (``python -m gateway``, ``GATEWAY_ENV=production``, W uvicorn
workers each, its own process group and its own ``GATEWAY_USAGE_SPILL_DIR``), serving the mock
provider. Clients (half of them streaming) spread requests over the replicas with several API keys
and users while a fault is injected; every answer is kept, then matched against ``usage_logs``.

What is checked, per scenario (``Verdict``):

* **lost**: a 200 the client saw completely (JSON body parsed, or a stream that reached
  ``data: [DONE]``) without a usage row of its own once the cluster settled: answers and rows are
  matched one to one by (server id from ``x-request-id``, API key). Counted with the replicas
  still running: no survivor is restarted to force a flush.
* **dup**: rows per ``request_id`` above one, plus server ids that two client-visible answers
  share (the server must mint a fresh id per request, whatever ``X-Request-ID`` says).
* **5xx**: any HTTP status >= 500, poison included.
* **overruns**: successes of a key above its ``rpm_limit`` within one minute (counted only over
  requests whose whole client-side interval fits in a 60 s window, so never a false alarm).
* **poison misses**: NUL / lone-surrogate bodies not refused with a 4xx in OpenAI's error shape;
  1 MB strings answered with something else than such a 4xx or a recorded 200; poison headers
  (sent raw, they are not valid HTTP for most clients) answered with a 5xx, or a 200 that is
  incomplete or carries no server id (a 4xx of any shape or a closed connection is accepted).
* **id mismatches**: body/chunk ``id`` other than ``chatcmpl-<x-request-id>``, or an HTTP answer
  (errors too) without ``x-request-id`` (poison headers excepted: the HTTP layer may refuse them).
* **recovered**: after the fault, every replica that was not killed answered 10 clean 200s in a
  row (without being restarted); *rows settled* says how long the ledger took to hold every row
  (``never``: not within the settle timeout, and the missing ones are *lost*).

``scripts/chaos_ledger.py`` runs the full-size scenarios; ``tests/chaos/test_ledger_chaos.py``
runs small ones. Both import everything from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

from tests.integration.db_fixtures import PostgresInstance, create_database, drop_database
from tests.support.ports import candidate_port, listened_by
from tests.support.redis_proc import RedisProcess

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "ledger-admin@prism.local"
ADMIN_PASSWORD = "Ledger-admin-passphrase-93f1"
USER_PASSWORD = "Ledger-user-passphrase-5d2e7"
LIMITED_RPM = 5
HAMMER_ID = "reused-hammer-id"
REUSED_IDS = ("reused-0", "reused-1", "reused-2")
MB = 1024 * 1024

CONFIG = """
models:
  mock-chat:
    provider: mock
    tier: cheap
    price_input_per_mtok: 0.15
    price_output_per_mtok: 0.60
    context_window: 16384
    mock: {latency_ms: 5, token_delay_ms: 1, answer_words: 12}
aliases:
  chat: {target: mock-chat}
quotas:
  fail_mode: open
  tiers:
    free: {rpm: 10000000, tpm: 10000000000}
    pro: {rpm: 10000000, tpm: 10000000000}
    enterprise: {rpm: 10000000, tpm: 10000000000}
cache: {enabled: true}
"""

SCENARIOS = {
    "a": "SIGKILL of one replica (restarted later)",
    "b": "Postgres down 10 s, one replica SIGKILLed during it",
    "c": "Redis restart",
    "d": "poison inputs mixed into traffic",
    "e": "reused X-Request-IDs + 5-RPM key hammered",
}


Fault = Callable[["Traffic"], Coroutine[Any, Any, None]]

# -- services --------------------------------------------------------------------------------------


def private_postgres_unavailable() -> str | None:
    """Why a private Postgres cannot be started here (None: it can)."""
    try:
        pwd.getpwnam("postgres")
        PostgresInstance._find_bin()
    except (KeyError, RuntimeError) as exc:
        return f"cannot start a private Postgres: {exc!r}"
    return None


class Postgres:
    """A private Postgres (``private=True``: initdb on a spare port, may be stopped) or a fresh
    database on the shared server at 127.0.0.1:5432 (never stopped)."""

    def __init__(self, *, private: bool) -> None:
        self.private = private
        self.instance: PostgresInstance | None = None
        self.url = ""

    def start(self) -> Postgres:
        if self.private:
            self.instance = PostgresInstance()
            self.instance.start()
            self.url = f"{self.instance.base_url}/postgres"
        else:
            self.url = create_database()
        return self

    def stop(self) -> None:
        assert self.instance is not None, "only a private Postgres can be stopped"
        self.instance.stop()

    def resume(self) -> None:
        assert self.instance is not None
        self.instance.start()

    def destroy(self) -> None:
        if self.instance is not None:
            self.instance.destroy()
        elif self.url:
            with contextlib.suppress(Exception):
                drop_database(self.url)

    @property
    def dsn(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://")


@dataclass
class Replica:
    """One gateway replica: ``python -m gateway`` with W workers in its own process group."""

    name: str
    workdir: Path
    env: dict[str, str]
    port: int = field(default_factory=candidate_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def start(self, *, ready_timeout: float = 120.0, attempts: int = 3) -> None:
        """Start and wait for ``/readyz``. Other test runs on the box pick spare ports too: if
        another process holds the port (its ``/readyz`` would fool us), move to a new port."""
        for _ in range(attempts):
            if self._start_once(ready_timeout):
                return
            self.port = candidate_port()
        raise RuntimeError(f"{self.name}: its port was taken by another process {attempts} times")

    def _start_once(self, ready_timeout: float) -> bool:
        self.workdir.mkdir(parents=True, exist_ok=True)
        metrics = self.workdir / "metrics"
        metrics.mkdir(exist_ok=True)
        env = {
            **os.environ,
            **self.env,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_USAGE_SPILL_DIR": str(self.workdir / "spill"),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
        self._close_log()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches the workers too
        )
        self.starts += 1
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if listened_by(self.port, self.process.pid) is False:
                    return False
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    if listened_by(self.port, self.process.pid) is not False:
                        return True
                    self.kill()
                    return False
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"{self.name} not ready in {ready_timeout}s:\n{self.log_tail()}")

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers): no drain, no flush."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close_log()

    def stop(self, *, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)  # stragglers of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    user_id: str
    key_id: str
    secret: str
    rpm_limit: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def make_principals(url: str, *, users: int = 3, keys_per_user: int = 2, tag: str = "") -> list[Principal]:
    """Register ``users`` users, give each ``keys_per_user`` unlimited keys; the first user also
    gets a key limited to ``LIMITED_RPM`` requests per minute (the last principal)."""
    tag = tag or uuid.uuid4().hex[:6]
    out: list[Principal] = []
    limited: Principal | None = None
    with httpx.Client(base_url=url, timeout=30) as client:
        for u in range(users):
            email = f"ledger-{tag}-{u}@prism.local"
            _check(client.post("/auth/register", json={"email": email, "password": USER_PASSWORD}), email)
            token = _check(
                client.post("/auth/login", json={"email": email, "password": USER_PASSWORD}), "login"
            )
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            # registration answers 202 without an id (no account enumeration): ask who we are
            user = _check(client.get("/users/me", headers=auth), "users/me")
            for k in range(keys_per_user + (1 if u == 0 else 0)):
                rpm = LIMITED_RPM if k == keys_per_user else None
                body: dict[str, Any] = {"name": f"ledger-{u}-{k}"}
                if rpm is not None:
                    body["rpm_limit"] = rpm
                key = _check(client.post("/api/keys", json=body, headers=auth), "create key")
                principal = Principal(f"user{u}/key{k}", user["id"], key["id"], key["key"], rpm)
                if rpm is None:
                    out.append(principal)
                else:
                    limited = principal
    assert limited is not None
    return [*out, limited]


# -- the cluster -----------------------------------------------------------------------------------


@dataclass
class Cluster:
    """Postgres + Redis + replicas; ``close()`` ends every process it started (idempotent)."""

    workdir: Path
    replicas_n: int = 2
    workers: int = 2
    private_pg: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    pg: Postgres | None = None
    redis: RedisProcess | None = None
    replicas: list[Replica] = field(default_factory=list)
    principals: list[Principal] = field(default_factory=list)

    def start(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(private=self.private_pg).start()
        (self.workdir / "redis").mkdir(exist_ok=True)
        self.redis = RedisProcess(self.workdir / "redis").start()
        config = self.workdir / "prism.yaml"
        config.write_text(CONFIG)
        env = {
            "GATEWAY_ENV": "production",
            "GATEWAY_CONFIG": str(config),
            "GATEWAY_DATABASE_URL": self.pg.url,
            "GATEWAY_REDIS_URL": self.redis.url,
            "GATEWAY_REDIS_KEY_PREFIX": f"ledger-{uuid.uuid4().hex[:6]}",
            "GATEWAY_AUTH_ENABLED": "true",
            "GATEWAY_JWT_SECRET": secrets.token_hex(32),
            "GATEWAY_METRICS_TOKEN": secrets.token_hex(16),  # required in production
            "GATEWAY_REGISTRATION_OPEN": "true",  # the checker signs its users up (closed by default)
            "GATEWAY_ADMIN_EMAIL": ADMIN_EMAIL,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_WORKERS": str(self.workers),
            "GATEWAY_DRAIN_TIMEOUT_S": "5",
            "OPENBLAS_NUM_THREADS": "1",
            **self.extra_env,
        }
        for i in range(self.replicas_n):
            replica = Replica(f"replica-{'ab'[i] if i < 2 else i}", self.workdir / f"replica-{i}", env)
            replica.start()  # one after the other: the first one migrates the fresh database
            self.replicas.append(replica)
        self.principals = make_principals(self.replicas[0].url)
        return self

    def close(self) -> None:
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.stop(timeout=20)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.kill()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.destroy()

    def restart_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.start()


@contextlib.contextmanager
def running_cluster(workdir: Path | None = None, **kwargs: Any) -> Iterator[Cluster]:
    own = workdir is None
    path = Path(tempfile.mkdtemp(prefix="prism-ledger-")) if workdir is None else workdir
    cluster = Cluster(path, **kwargs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        if own:
            shutil.rmtree(path, ignore_errors=True)


# -- traffic ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """One request as the client saw it."""

    kind: str
    """``normal``, ``reuse``, ``hammer``, ``cached`` or ``poison:<field>:<what>``."""
    url: str
    principal: Principal
    streamed: bool
    client_id: str | None
    started: float
    ended: float = 0.0
    status: int | str = "conn"
    """HTTP status; ``conn`` (no answer head), ``cut`` (broken mid-body), ``stream:<code>``."""
    complete: bool = False
    server_id: str | None = None
    body_ids: tuple[str, ...] = ()
    echoed: str | None = None
    error_shape: bool = False

    @property
    def is_poison(self) -> bool:
        return self.kind.startswith("poison:")


def _error_shaped(payload: Any) -> bool:
    if not isinstance(payload, dict) or set(payload) != {"error"} or not isinstance(payload["error"], dict):
        return False
    return {"message", "type", "param", "code"} <= set(payload["error"])


def _strip(chat_id: Any) -> str:
    text = str(chat_id)
    return text.removeprefix("chatcmpl-")


def body_bytes(payload: dict[str, Any]) -> bytes:
    """ASCII JSON: NUL and lone surrogates travel as ``\\u0000`` / ``\\ud800`` escapes."""
    return json.dumps(payload, ensure_ascii=True).encode()


async def send_chat(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    answer: Answer,
    body: bytes,
    headers: dict[str, str],
    now: Callable[[], float],
    path: str = "/v1/chat/completions",
) -> Answer:
    """POST once; on a connection error before any answer, once more on the next URL."""
    for attempt, url in enumerate(urls[:2]):
        answer.url = url
        try:
            async with client.stream(
                "POST",
                f"{url}{path}",
                content=body,
                headers={"Content-Type": "application/json", **answer.principal.headers, **headers},
            ) as response:
                answer.status = response.status_code
                answer.server_id = response.headers.get("x-request-id")
                answer.echoed = response.headers.get("x-client-request-id")
                try:
                    await _read(response, answer)
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout):
                    answer.status = "cut" if answer.status == 200 else answer.status
                    answer.complete = False
            break
        except (httpx.ConnectError, httpx.ConnectTimeout):
            answer.status = "conn"
            if attempt == 1:
                break
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout, httpx.WriteError):
            answer.status = "conn"  # no answer head: the server may or may not have seen it
            break
    answer.ended = now()
    return answer


async def _read(response: httpx.Response, answer: Answer) -> None:
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    if response.status_code != 200 or not streamed:
        raw = await response.aread()
        try:
            payload = json.loads(raw)
        except ValueError:
            return
        if response.status_code == 200 and isinstance(payload, dict) and "id" in payload:
            answer.body_ids = (_strip(payload["id"]),)
            answer.complete = True
        else:
            answer.error_shape = _error_shaped(payload)
        return
    ids: list[str] = []
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            answer.complete = True
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            answer.status = f"stream:{chunk['error'].get('code')}"
        elif "id" in chunk:
            ids.append(_strip(chunk["id"]))
    answer.body_ids = tuple(dict.fromkeys(ids))
    if answer.status != 200:
        answer.complete = False


async def send_raw(url: str, answer: Answer, body: bytes, extra_headers: list[tuple[bytes, bytes]]) -> Answer:
    """HTTP/1.1 over a bare socket, for header values no HTTP client will send (NUL, raw bytes, 1 MB)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [
        b"POST /v1/chat/completions HTTP/1.1",
        f"Host: {host}:{port}".encode(),
        b"Content-Type: application/json",
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
        *(f"{k}: {v}".encode() for k, v in answer.principal.headers.items()),
        *(k + b": " + v for k, v in extra_headers),
    ]
    answer.url = url
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
    except (OSError, TimeoutError):
        answer.status = "conn"
        return answer
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), 30)
    except (OSError, TimeoutError):
        raw = b""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    head, _, rest = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        answer.status = "conn"
        return answer
    first, *header_lines = head.split(b"\r\n")
    answer.status = int(first.split()[1])
    headers = {}
    for hl in header_lines:
        k, _, v = hl.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if headers.get("transfer-encoding") == "chunked":
        rest = _dechunk(rest)
    answer.server_id = headers.get("x-request-id")
    answer.echoed = headers.get("x-client-request-id")
    try:
        payload = json.loads(rest)
    except ValueError:
        payload = None
    if answer.status == 200 and isinstance(payload, dict) and "id" in payload:
        answer.body_ids = (_strip(payload["id"]),)
        answer.complete = True
    else:
        answer.error_shape = _error_shaped(payload)
    return answer


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


POISON_VALUES = {"nul": "bad\u0000value", "surrogate": "bad\ud800value", "1mb": "x" * MB}
BODY_FIELDS = ("model", "content", "user", "metadata", "metadata.conversation_id")
HEADER_FIELDS = ("x-request-id", "x-prism-conversation-id")
AUTH_FIELDS = ("auth.register", "auth.login")
"""Unauthenticated routes that store or look up text: the issue saw 500s there."""


def poison_cases() -> list[tuple[str, str]]:
    return [(f, w) for f in (*BODY_FIELDS, *HEADER_FIELDS, *AUTH_FIELDS) for w in POISON_VALUES]


def chat_body(
    text: str, *, streamed: bool, user: str, temperature: float = 0.7, **extra: Any
) -> dict[str, Any]:
    return {
        "model": "chat",
        "messages": [{"role": "user", "content": text}],
        "stream": streamed,
        "temperature": temperature,
        "user": user,
        **extra,
    }


@dataclass
class Traffic:
    """Clients looping over the replicas until ``stop``; what each saw lands in ``answers``."""

    cluster: Cluster
    clients: int
    reuse_ids: bool = False
    poison_clients: int = 0
    hammer: bool = False
    answers: list[Answer] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    marks: dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, what: str) -> None:
        self.marks[what] = round(self.now(), 2)

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.cluster.replicas]

    async def run(self, duration_s: float, fault: Fault | None, *, tail_s: float = 3.0) -> None:
        """Traffic for ``duration_s``, and at least ``tail_s`` more after the fault's last step
        (a restart can take longer than planned on a loaded box: recovery needs traffic to show)."""
        self.t0 = time.monotonic()
        limits = httpx.Limits(max_connections=self.clients * 4, max_keepalive_connections=self.clients * 2)
        timeout = httpx.Timeout(30.0, connect=2.0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            tasks = [asyncio.create_task(self._client(client, i)) for i in range(self.clients)]
            tasks += [asyncio.create_task(self._poisoner(client, i)) for i in range(self.poison_clients)]
            if self.hammer:
                tasks += [asyncio.create_task(self._hammer(client, i)) for i in range(4)]
            injector = asyncio.create_task(fault(self)) if fault is not None else None
            try:
                await asyncio.sleep(duration_s)
                if injector is not None:
                    await injector
                    self.mark("fault_done")
                    await asyncio.sleep(max(0.0, self.marks["fault_done"] + tail_s - self.now()))
                self.mark("stop")
                self.stop.set()
                await asyncio.gather(*tasks)
            finally:
                self.stop.set()
                for task in [*tasks, *([injector] if injector else [])]:
                    task.cancel()
                await asyncio.gather(*tasks, *([injector] if injector else []), return_exceptions=True)

    def _rotation(self, index: int) -> list[str]:
        urls = self.urls
        start = index % len(urls)
        return urls[start:] + urls[:start]

    async def _client(self, client: httpx.AsyncClient, index: int) -> None:
        unlimited = self.cluster.principals[:-1]
        for n in itertools.count():
            if self.stop.is_set():
                return
            principal = unlimited[(index + n) % len(unlimited)]
            streamed = (index + n) % 2 == 0
            headers: dict[str, str] = {}
            kind = "normal"
            client_id: str | None = None
            temperature = 0.7
            text = f"ledger {index}-{n}: say something"
            if self.reuse_ids:
                kind = "reuse"
                client_id = REUSED_IDS[n % len(REUSED_IDS)]
                if n % 5 == 0:  # deterministic and repeated: cache hits under a reused id
                    kind, temperature, text = "cached", 0.0, "ledger cached question"
            elif n % 2 == 1:
                client_id = f"cli-{index}-{n}-{uuid.uuid4().hex[:6]}"
            if client_id is not None:
                headers["X-Request-ID"] = client_id
            extra: dict[str, Any] = {"metadata": {"tag": f"c{index}"}} if n % 3 == 0 else {}
            body = chat_body(
                text, streamed=streamed, user=f"end-user-{index % 5}", temperature=temperature, **extra
            )
            rotation = self._rotation(index + n)
            answer = Answer(kind, rotation[0], principal, streamed, client_id, self.now())
            self.answers.append(
                await send_chat(client, rotation, answer, body_bytes(body), headers, self.now)
            )
            if answer.status == "conn":
                await asyncio.sleep(0.05)  # nobody listening: do not spin (a client would back off too)

    async def _poisoner(self, client: httpx.AsyncClient, index: int) -> None:
        cases = poison_cases()
        for n in itertools.count():
            if self.stop.is_set():
                return
            fld, what = cases[(index + n * max(1, self.poison_clients)) % len(cases)]
            value = POISON_VALUES[what]
            principal = self.cluster.principals[n % (len(self.cluster.principals) - 1)]
            streamed = n % 2 == 1 and fld not in HEADER_FIELDS
            url = self._rotation(index + n)[0]
            body = chat_body(f"poison {index}-{n}", streamed=streamed, user=f"end-user-{index}")
            if fld == "model":
                body["model"] = value
            elif fld == "content":
                body["messages"][0]["content"] = value
            elif fld == "user":
                body["user"] = value
            elif fld == "metadata":
                body["metadata"] = {"tag": value}
            elif fld == "metadata.conversation_id":
                body["metadata"] = {"conversation_id": value}
            answer = Answer(f"poison:{fld}:{what}", url, principal, streamed, None, self.now())
            if fld in AUTH_FIELDS:
                answer.streamed = False
                credentials = {"email": f"{value}@prism.local", "password": value}
                path = "/auth/register" if fld == "auth.register" else "/auth/login"
                self.answers.append(
                    await send_chat(client, [url], answer, body_bytes(credentials), {}, self.now, path)
                )
            elif fld in HEADER_FIELDS:
                raw_value = {
                    "nul": b"bad\x00value",
                    "surrogate": b"bad\xed\xa0\x80value",  # a surrogate as (invalid) UTF-8 bytes
                    "1mb": b"x" * MB,
                }[what]
                await send_raw(url, answer, body_bytes(body), [(fld.encode(), raw_value)])
                answer.ended = self.now()
                self.answers.append(answer)
            else:
                self.answers.append(await send_chat(client, [url], answer, body_bytes(body), {}, self.now))

    async def _hammer(self, client: httpx.AsyncClient, index: int, attempts: int = 10) -> None:
        """The 5-RPM key, every request with the same ``X-Request-ID`` (bounded: ``attempts`` each)."""
        principal = self.cluster.principals[-1]
        for n in range(attempts):
            if self.stop.is_set():
                return
            url = self._rotation(index + n)[0]
            streamed = n % 2 == 0
            body = chat_body(f"hammer {index}-{n}", streamed=streamed, user="hammer")
            answer = Answer("hammer", url, principal, streamed, HAMMER_ID, self.now())
            headers = {"X-Request-ID": HAMMER_ID}
            self.answers.append(await send_chat(client, [url], answer, body_bytes(body), headers, self.now))
            await asyncio.sleep(0.05)


# -- faults ----------------------------------------------------------------------------------------


def fault_for(
    scenario: str, cluster: Cluster, duration_s: float, *, outage_s: float | None = None
) -> Fault | None:
    """The scenario's fault as a coroutine of the traffic's clock (None: no fault).
    ``outage_s``: how long Postgres stays down in (b); default ``min(10, duration / 3)``."""
    victim = cluster.replicas[-1]

    async def sleep_until(traffic: Traffic, at: float) -> None:
        await asyncio.sleep(max(0.0, at - traffic.now()))

    async def kill_replica(traffic: Traffic) -> None:
        await sleep_until(traffic, 0.35 * duration_s)
        await asyncio.to_thread(victim.kill)
        traffic.mark("killed")
        traffic.mark("fault_end")  # survivors must go on at once; a lone replica once restarted
        await sleep_until(traffic, 0.55 * duration_s)
        await asyncio.to_thread(victim.start)
        traffic.mark("restarted")

    async def postgres_outage(traffic: Traffic) -> None:
        assert cluster.pg is not None
        outage = outage_s if outage_s is not None else min(10.0, duration_s / 3)
        begin = 0.25 * duration_s
        await sleep_until(traffic, begin)
        await asyncio.to_thread(cluster.pg.stop)
        traffic.mark("pg_down")
        await sleep_until(traffic, begin + outage / 2)
        await asyncio.to_thread(victim.kill)
        traffic.mark("killed")
        await sleep_until(traffic, begin + outage)
        await asyncio.to_thread(cluster.pg.resume)
        traffic.mark("pg_up")
        traffic.mark("fault_end")
        await sleep_until(traffic, begin + outage + min(1.0, duration_s / 20))
        await asyncio.to_thread(victim.start)
        traffic.mark("restarted")

    async def redis_restart(traffic: Traffic) -> None:
        assert cluster.redis is not None
        await sleep_until(traffic, 0.4 * duration_s)
        await asyncio.to_thread(cluster.redis.kill)
        traffic.mark("redis_down")
        await sleep_until(traffic, 0.4 * duration_s + min(2.0, duration_s / 10))
        await asyncio.to_thread(cluster.redis.start)
        traffic.mark("redis_up")
        traffic.mark("fault_end")

    return {"a": kill_replica, "b": postgres_outage, "c": redis_restart}.get(scenario)


# -- verdict ---------------------------------------------------------------------------------------


@dataclass
class Rows:
    by_id: dict[str, list[dict[str, Any]]]
    has_client_column: bool

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_id.values())


async def fetch_rows(dsn: str) -> Rows:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'usage_logs'"
            )
        }
        wanted = ["request_id", "api_key_id", "user_id", "status", "http_status", "streamed"]
        has_client = "client_request_id" in columns
        if has_client:
            wanted.append("client_request_id")
        records = await conn.fetch(f"SELECT {', '.join(wanted)} FROM usage_logs")
    finally:
        await conn.close()
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_id[record["request_id"]].append(dict(record))
    return Rows(dict(by_id), has_client)


def _complete_200s(answers: Sequence[Answer]) -> list[Answer]:
    return [a for a in answers if a.complete and a.status == 200]


def missing(answers: Sequence[Answer], rows: Rows) -> list[Answer]:
    """Complete 200s without a row of their own: rows and answers are matched one to one by
    (server id, API key), so a row of another key, or one row for two answers, leaves some unmatched."""
    groups: dict[tuple[str, str], list[Answer]] = defaultdict(list)
    for a in _complete_200s(answers):
        groups[(a.server_id or "", a.principal.key_id)].append(a)
    out: list[Answer] = []
    for (server_id, key_id), group in groups.items():
        own = sum(1 for r in rows.by_id.get(server_id, []) if r["api_key_id"] == key_id)
        out.extend(group[own:])
    return out


async def settle(dsn: str, answers: Sequence[Answer], timeout_s: float) -> tuple[Rows, float | None]:
    """Poll the ledger until every complete 200 has its row, or ``timeout_s``; (rows, seconds taken)."""
    started = time.monotonic()
    while True:
        try:
            rows = await fetch_rows(dsn)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            rows = Rows({}, False)
        if not missing(answers, rows):
            return rows, round(time.monotonic() - started, 2)
        if time.monotonic() - started > timeout_s:
            return rows, None
        await asyncio.sleep(0.5)


def overruns(answers: Sequence[Answer], window_s: float = 60.0) -> int:
    """Successes above ``rpm_limit`` among requests whose whole interval fits in one minute."""
    total = 0
    by_key: dict[Principal, list[Answer]] = defaultdict(list)
    for a in answers:
        if a.principal.rpm_limit is not None and a.status == 200:
            by_key[a.principal].append(a)
    for principal, oks in by_key.items():
        limit = principal.rpm_limit or 0
        best = max(
            (sum(1 for b in oks if b.started >= a.started and b.ended < a.started + window_s) for a in oks),
            default=0,
        )
        total += max(0, best - limit)
    return total


def recovery(answers: Sequence[Answer], since: float, urls: Sequence[str], run: int = 10) -> float | None:
    """Seconds after ``since`` until every URL in ``urls`` answered ``run`` clean 200s in a row."""
    worst = 0.0
    for url in urls:
        streak = 0
        first: float | None = None
        found: float | None = None
        for a in sorted((a for a in answers if a.url == url and a.started >= since), key=lambda a: a.started):
            if a.kind in ("normal", "reuse", "cached") and a.complete:
                streak += 1
                first = a.started if streak == 1 else first
                if streak >= run:
                    found = first
                    break
            elif not a.is_poison and a.kind != "hammer":
                streak = 0
        if found is None:
            return None
        worst = max(worst, found - since)
    return round(worst, 2)


def poison_misses(answers: Sequence[Answer], rows: Rows) -> Counter[str]:
    """Poison answers that break the contract, by ``field:what``."""
    bad: Counter[str] = Counter()
    for a in answers:
        if not a.is_poison:
            continue
        _, fld, what = a.kind.split(":")
        status = a.status
        refused = isinstance(status, int) and 400 <= status < 500
        if fld in HEADER_FIELDS:
            ok = (refused or status == 200 or status == "conn") and not (
                isinstance(status, int) and status >= 500
            )
            if isinstance(status, int) and status == 200:
                ok = bool(a.server_id) and a.complete
        elif fld in AUTH_FIELDS:
            ok = refused and a.error_shape
        elif what == "1mb":
            ok = (refused and a.error_shape) or (status == 200 and a.complete)
        else:
            ok = refused and a.error_shape
        if not ok:
            bad[f"{fld}:{what}={status}"] += 1
    return bad


@dataclass
class Verdict:
    scenario: str
    description: str
    duration_s: float
    clients: int
    sent: int = 0
    complete_200: int = 0
    rows: int = 0
    lost: int = 0
    dup: int = 0
    five_xx: int = 0
    overruns: int = 0
    poison_sent: int = 0
    poison_misses: int = 0
    id_mismatch: int = 0
    recovered: bool | None = None
    """``None``: no fault to recover from (the scenario has none)."""
    recover_s: float | None = None
    settle_s: float | None = None
    notes: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.dup == 0
            and self.five_xx == 0
            and self.overruns == 0
            and self.poison_misses == 0
            and self.id_mismatch == 0
            and self.recovered is not False
            and self.complete_200 > 0
        )

    def targets_missed(self) -> list[str]:
        missed = [
            name
            for name, value in (
                ("lost", self.lost),
                ("dup", self.dup),
                ("5xx", self.five_xx),
                ("overruns", self.overruns),
                ("poison misses", self.poison_misses),
                ("id mismatches", self.id_mismatch),
            )
            if value
        ]
        if self.recovered is False:
            missed.append("recovery")
        if self.complete_200 == 0:
            missed.append("no traffic")
        return missed


def judge(
    scenario: str,
    traffic: Traffic,
    rows: Rows,
    *,
    duration_s: float,
    settle_s: float | None,
    killed_urls: Sequence[str] = (),
) -> Verdict:
    answers = traffic.answers
    v = Verdict(scenario, SCENARIOS.get(scenario, scenario), duration_s, traffic.clients)
    v.sent = len(answers)
    oks = _complete_200s(answers)
    v.complete_200 = len(oks)
    v.rows = rows.total
    lost = missing(answers, rows)
    v.lost = len(lost)
    visible = Counter(a.server_id for a in oks)
    shared_ids = sum(n - 1 for n in visible.values() if n > 1) + visible.get(None, 0)
    v.dup = sum(len(r) - 1 for r in rows.by_id.values() if len(r) > 1) + shared_ids
    v.statuses = dict(Counter(str(a.status) for a in answers))
    v.five_xx = sum(
        n for s, n in Counter(a.status for a in answers).items() if isinstance(s, int) and s >= 500
    )
    v.overruns = overruns(answers)
    v.poison_sent = sum(a.is_poison for a in answers)
    misses = poison_misses(answers, rows)
    v.poison_misses = sum(misses.values())
    v.id_mismatch = sum(1 for a in oks if any(i != a.server_id for i in a.body_ids) or not a.body_ids)
    headless = [
        a
        for a in answers
        if isinstance(a.status, int)
        and not a.server_id
        and not any(a.kind.startswith(f"poison:{h}:") for h in HEADER_FIELDS)
    ]
    v.id_mismatch += len(headless)
    if headless:
        v.notes.append(f"{len(headless)} answers without x-request-id")
    v.settle_s = settle_s
    fault_end = traffic.marks.get("fault_end")
    if fault_end is not None:
        survivors = [u for u in traffic.urls if u not in killed_urls] or traffic.urls
        v.recover_s = recovery(answers, fault_end, survivors)
        v.recovered = v.recover_s is not None
    if lost:
        per_replica = Counter(a.url for a in lost)
        answered = Counter(a.url for a in oks)
        v.notes.append(
            "lost by replica port: "
            + ", ".join(
                f"{u.rsplit(':', 1)[1]}={n} of {answered[u]} ({100 * n / max(1, answered[u]):.1f} %)"
                for u, n in per_replica.items()
            )
        )
        kinds = Counter(a.kind for a in lost)
        v.notes.append("lost by kind: " + ", ".join(f"{k}={n}" for k, n in kinds.items()))
    if shared_ids:
        v.notes.append(f"{shared_ids} complete 200s share a server id with another answer (or carry none)")
    if misses:
        v.notes.append("poison misses: " + ", ".join(f"{k}×{n}" for k, n in sorted(misses.items())))
    others = {s: n for s, n in v.statuses.items() if not s.isdigit()}
    if others:
        v.notes.append(
            "no HTTP answer or broken: " + ", ".join(f"{s}×{n}" for s, n in sorted(others.items()))
        )
    fives = {s: n for s, n in v.statuses.items() if s.isdigit() and int(s) >= 500}
    if fives:
        v.notes.append("5xx: " + ", ".join(f"{s}×{n}" for s, n in sorted(fives.items())))
    if v.overruns:
        hammer_ok = sum(1 for a in answers if a.principal.rpm_limit and a.status == 200)
        v.notes.append(f"{LIMITED_RPM}-RPM key: {hammer_ok} successes")
    echo_checked = [a for a in oks if a.client_id]
    if echo_checked:
        not_echoed = sum(1 for a in echo_checked if a.echoed != a.client_id)
        if not_echoed:
            v.notes.append(f"x-client-request-id missing/wrong on {not_echoed} of {len(echo_checked)}")
    fields_wrong = sum(
        1
        for a in oks
        for r in rows.by_id.get(a.server_id or "", [])[:1]
        if r["api_key_id"] == a.principal.key_id
        and (r["streamed"] != a.streamed or r["http_status"] != 200 or r["user_id"] != a.principal.user_id)
    )
    if fields_wrong:
        v.notes.append(f"{fields_wrong} rows disagree with their answer (streamed, http_status or user_id)")
    if rows.has_client_column:
        wrong = sum(
            1
            for a in oks
            for r in rows.by_id.get(a.server_id or "", [])
            if r["api_key_id"] == a.principal.key_id and r.get("client_request_id") != a.client_id
        )
        if wrong:
            v.notes.append(f"client_request_id column wrong on {wrong} rows")
    else:
        v.notes.append("usage_logs has no client_request_id column")
    if traffic.marks:
        v.notes.append("timeline: " + ", ".join(f"{k}@{t}s" for k, t in traffic.marks.items()))
    return v


async def run_scenario(
    scenario: str,
    cluster: Cluster,
    *,
    duration_s: float,
    clients: int,
    settle_timeout_s: float = 30.0,
    poison_clients: int | None = None,
    tail_s: float = 3.0,
    outage_s: float | None = None,
) -> Verdict:
    """Drive traffic with the scenario's fault, settle, judge. The cluster must be fresh."""
    if poison_clients is None:
        poison_clients = max(1, clients // 8)
    traffic = Traffic(
        cluster,
        clients=clients,
        reuse_ids=scenario == "e",
        hammer=scenario == "e",
        poison_clients=poison_clients if scenario == "d" else 0,
    )
    fault = fault_for(scenario, cluster, duration_s, outage_s=outage_s)
    await traffic.run(duration_s, fault, tail_s=tail_s)
    for replica in cluster.replicas:  # a killed replica must be back (the scenario restarts it)
        if replica.process is None or replica.process.poll() is not None:
            await asyncio.to_thread(replica.start)
    assert cluster.pg is not None
    rows, settle_s = await settle(cluster.pg.dsn, traffic.answers, settle_timeout_s)
    killed = [cluster.replicas[-1].url] if scenario in ("a", "b") else []
    return judge(scenario, traffic, rows, duration_s=duration_s, settle_s=settle_s, killed_urls=killed)


# -- report ----------------------------------------------------------------------------------------

HEADER = (
    "| scenario | clients × s | sent | complete 200s | rows | lost | dup | 5xx | overruns "
    "| poison sent / misses | id mismatches | recovered (s) | rows settled (s) | verdict |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|"
)


def table(verdicts: Sequence[Verdict]) -> str:
    lines = [HEADER]
    for v in verdicts:
        recovered = {None: "n/a", True: "yes", False: "**no**"}[v.recovered]
        recovered += f" ({v.recover_s})" if v.recover_s is not None else ""
        settled = v.settle_s if v.settle_s is not None else "never"
        verdict = "pass" if v.passed else "FAIL: " + ", ".join(v.targets_missed())
        cells = [
            f"({v.scenario}) {v.description}",
            f"{v.clients} × {v.duration_s:g}",
            v.sent,
            v.complete_200,
            v.rows,
            v.lost,
            v.dup,
            v.five_xx,
            v.overruns,
            f"{v.poison_sent} / {v.poison_misses}",
            v.id_mismatch,
            recovered,
            settled,
            verdict,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = [f"- ({v.scenario}) " + "; ".join(v.notes) for v in verdicts if v.notes]
    return "\n".join(lines + (["", *notes] if notes else []))
