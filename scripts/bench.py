#!/usr/bin/env python3
"""Benchmark driver: Prism vs LiteLLM's proxy vs Portkey's gateway vs a direct call, all against the
fake upstream (``tests.fakes.openai_upstream``), in one run, with ratios.

Systems, each started fresh and measured the same way:

* ``direct``: the fake itself (the floor every "added" figure is measured from);
* ``prism``: Prism in production configuration (``--prism-cmd``), one worker;
* ``prism-Nw``: the same with ``--prism-workers`` (default: as many as cores) uvicorn workers;
* ``litellm``: LiteLLM's proxy (PyPI, own venv under ``.bench/``, no database, no callbacks, 1 worker);
* ``portkey``: Portkey's Node gateway (npm, ``.bench/portkey``), routed to the fake by headers.

Per system, at fixed concurrency for a fixed duration:

* non-streamed c=1 and c=64 (``wrk`` + Lua when installed, else the aiohttp client):
  RPS, p50/p99 latency, added p50 over the direct call;
* full streams at c=1 (added time to first byte over direct, as issue #9 defines it) and at c=32
  (aiohttp client): streams/s, time to first byte, time to first token;
* CPU seconds per 1,000 requests and peak RSS of the server's process tree (``/proc``);
* for Prism, after every phase: ``prism_backend_errors_total`` (Redis/cache/quota degradation) and
  ``prism_fallbacks_total`` from ``/metrics`` — failures a 200 would otherwise hide.

Cores (2-core machine): fake and load generator share core 0, every single-process system under test
gets core 1 to itself.  ``prism-Nw`` is allowed every core, so that phase is not core-isolated: its
workers compete with the fake and the load generator.

``--soak SECONDS`` then starts a fresh one-worker Prism and drives it at a steady ``--soak-rate``
(paced aiohttp client, 1 request in 5 streamed), sampling RSS every 5 s; it fails when RSS grows by
``--soak-max-growth`` (10 %) or more after the first minute (a third of the soak when shorter), or
any process reaches ``--soak-max-rss-mb`` (300 MB).  ``--soak-only`` skips everything else.

Usage::

    python scripts/bench.py --smoke --prism-cmd ... --prism-url ...    # CI: direct + Prism, seconds
    python scripts/bench.py --prism-cmd "... --port {port} --workers {workers}" \\
        --prism-url http://127.0.0.1:8080 --prism-setup "..." --out docs/performance.md
    python scripts/bench.py --soak 600 --soak-only --prism-cmd ... --out docs/performance.md

``--prism-cmd`` may contain ``{fake_url}`` (the fake's ``/v1`` base URL), ``{port}`` and
``{workers}``; the same values are exported as ``FAKE_UPSTREAM_URL`` / ``PRISM_BENCH_PORT`` /
``PRISM_BENCH_WORKERS``.  Exit status 1 when any system fails on more than ``--max-error-rate``
(0.1 %) of its requests, when Prism's backend errors or fallbacks exceed the same share, or when
the soak fails a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VERSION = "1.108.7"
PORTKEY_VERSION = "1.15.2"
PORTKEY_NODE_SERVER = "1.13.5"
"""``@hono/node-server`` for Portkey: the version its repository builds with (and patches).  npm would
resolve ``^1.3.3`` to 1.19.x, with which every streamed chat completion fails with ``TypeError:
immutable`` (Portkey-AI/gateway#1389; 1.14.2 fails the same way on Node 20)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PROMPT = "bench {nonce}-{n}: explain in one sentence why the sky is blue"
"""Every request of every phase is distinct (a nonce per phase), so a gateway cache never answers."""
HIDDEN_ERROR_METRICS = ("prism_backend_errors_total", "prism_fallbacks_total")
"""Prism counters of failures that still answer 200: Redis/cache/quota degradation, and a fallback
to another model (the fake was not the one answering)."""


# ---------------------------------------------------------------------------------------------
# /proc accounting


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2 :].split()
        out.setdefault(int(rest[1]), []).append(int(entry.name))
    return out


def process_tree(root: int) -> list[int]:
    children = _children_map()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def tree_cpu_seconds(root: int) -> float:
    total = 0.0
    for pid in process_tree(root):
        try:
            data = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2 :].split()
        total += (int(rest[11]) + int(rest[12])) / CLK_TCK
    return total


def proc_rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    return sum(proc_rss_bytes(pid) for pid in process_tree(root))


class RssMonitor:
    """Samples the tree's RSS every ``interval`` seconds and keeps the peak."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


# ---------------------------------------------------------------------------------------------
# processes


def cpu_layout() -> dict[str, str | None]:
    """Which cores the fake, the load generator and the system under test get (``all``: the
    multi-worker Prism, which shares every core with them)."""
    cores = sorted(os.sched_getaffinity(0))
    every = ",".join(map(str, cores))
    if len(cores) >= 3:
        return {
            "all": every,
            "fake": str(cores[0]),
            "load": str(cores[1]),
            "sut": ",".join(map(str, cores[2:])),
            "direct_load": str(cores[1]),
        }
    if len(cores) == 2:  # the SUT gets a core of its own; fake and load generator share the other
        return {
            "all": every,
            "fake": str(cores[0]),
            "load": str(cores[0]),
            "sut": str(cores[1]),
            "direct_load": str(cores[1]),
        }
    return {"all": None, "fake": None, "load": None, "sut": None, "direct_load": None}


def pinned(argv: list[str], cores: str | None) -> list[str]:
    if cores is not None and shutil.which("taskset"):
        return ["taskset", "-c", cores, *argv]
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    teardown: str | None = None  # shell command run once after the server stopped (e.g. drop its database)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        command, self.teardown = self.teardown, None
        if command:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                print(
                    f"{self.name} teardown failed ({done.returncode}): {done.stderr.strip()[-300:]}",
                    flush=True,
                )
            elif done.stdout.strip():
                print(f"{self.name} teardown: {done.stdout.strip().splitlines()[-1]}", flush=True)


def start_server(name: str, argv: list[str], env: dict[str, str], logdir: Path) -> Server:
    log = logdir / f"{name}.log"
    fh = log.open("wb")
    proc = subprocess.Popen(
        argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )
    fh.close()
    return Server(name, proc, log)


def http_post(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout: float = 5
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_ready(server: Server, url: str, model: str, headers: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.proc.returncode}; see {server.log}")
        try:
            status, body = http_post(
                url, {"model": model, "messages": [{"role": "user", "content": "ping"}]}, headers
            )
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise SystemExit(f"{server.name} not ready after {timeout:.0f}s ({last}); see {server.log}")


def fake_stats(fake_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(fake_url + "/_stats", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def fake_control(fake_url: str, **changes: Any) -> None:
    http_post(fake_url + "/_control", changes, {})


# ---------------------------------------------------------------------------------------------
# load generators


@dataclass
class Phase:
    name: str
    concurrency: int
    stream: bool
    tool: str = ""
    requests: int = 0
    errors: int = 0
    duration: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ttfb_p50_ms: float | None = None
    ttft_p50_ms: float | None = None
    cpu_s_per_1k: float | None = None
    upstream_calls: int | None = None
    hidden_errors: dict[str, int] | None = None
    """Prism only: increase of each ``HIDDEN_ERROR_METRICS`` counter over the phase."""
    error_detail: str = ""

    @property
    def error_rate(self) -> float:
        return self.errors / max(self.requests, 1)


WRK_LUA = """
local counter = 0
local nonce = %(nonce)s
local model = %(model)s
local path = %(path)s
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
request = function()
  counter = counter + 1
  local body = '{"model":"' .. model .. '","temperature":0,"messages":[{"role":"user","content":"bench ' ..
    nonce .. '-' .. counter ..
    ': explain in one sentence why the sky is blue"}]}'
  return wrk.format("POST", path, nil, body)
end
"""

_WRK_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _WRK_UNIT[m.group(2)]


def run_wrk(
    url: str, model: str, headers: dict[str, str], c: int, duration: float, cores: str | None
) -> Phase:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lua_headers = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = WRK_LUA % {
        "model": json.dumps(model),
        "path": json.dumps(parts.path),
        "headers": lua_headers,
        "nonce": json.dumps(uuid.uuid4().hex[:12]),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        argv = pinned(
            [
                "wrk",
                "-t1",
                f"-c{c}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "30s",
                "--latency",
                "-s",
                fh.name,
                f"{parts.scheme}://{parts.netloc}{parts.path}",
            ],
            cores,
        )
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(fh.name)
    phase = Phase(f"c={c}", c, False, tool="wrk")
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        phase.requests = int(m.group(1))
        phase.duration = _wrk_ms(m.group(2) + m.group(3)) / 1000
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    phase.rps = float(m.group(1)) if m else 0.0
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            setattr(phase, attr, _wrk_ms(m.group(1)))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
        phase.error_detail += f"non-2xx={m.group(1)} "
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
        phase.error_detail += m.group(0)
    phase.errors = errors
    return phase


def run_client(
    url: str, model: str, headers: dict[str, str], c: int, duration: float, stream: bool, cores: str | None
) -> Phase:
    """Run the aiohttp load client in its own process (pinned with sched_setaffinity)."""
    spec = {
        "url": url,
        "model": model,
        "headers": headers,
        "c": c,
        "duration": duration,
        "stream": stream,
        "cores": cores,
    }
    out = subprocess.run(
        [sys.executable, __file__, "_client", json.dumps(spec)], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    phase = Phase(("stream " if stream else "") + f"c={c}", c, stream, tool="aiohttp")
    for key, value in data.items():
        setattr(phase, key, value)
    return phase


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


@dataclass
class _Samples:
    lat: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _one_request(
    session: Any, url: str, headers: dict[str, str], body: dict[str, Any], samples: _Samples
) -> None:
    """One chat completion; latency (and for streams TTFB/TTFT) or an error goes into ``samples``."""
    import aiohttp

    stream = bool(body.get("stream"))
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=json.dumps(body), headers=headers) as r:
            if r.status != 200:
                samples.errors.append(f"HTTP {r.status}")
                await r.read()
                return
            if not stream:
                await r.read()
            else:
                first = first_tok = None
                done = False
                async for line in r.content:
                    if first is None:
                        first = time.perf_counter() - t0
                    if first_tok is None and b'"content":"' in line and b'"content":""' not in line:
                        first_tok = time.perf_counter() - t0
                    if line.startswith(b"data: [DONE]"):
                        done = True
                if not done:
                    samples.errors.append("stream ended without [DONE]")
                    return
                if first is not None:
                    samples.ttfb.append(first)
                if first_tok is not None:
                    samples.ttft.append(first_tok)
        samples.lat.append(time.perf_counter() - t0)
    except (aiohttp.ClientError, TimeoutError) as exc:
        samples.errors.append(type(exc).__name__)


def _summary(samples: _Samples, elapsed: float, stream: bool) -> dict[str, Any]:
    return {
        "requests": len(samples.lat) + len(samples.errors),
        "errors": len(samples.errors),
        "duration": elapsed,
        "rps": len(samples.lat) / elapsed,
        "p50_ms": _pct(samples.lat, 50) * 1e3,
        "p99_ms": _pct(samples.lat, 99) * 1e3,
        "ttfb_p50_ms": _pct(samples.ttfb, 50) * 1e3 if stream else None,
        "ttft_p50_ms": _pct(samples.ttft, 50) * 1e3 if stream else None,
        "error_detail": ", ".join(sorted({*samples.errors}))[:300],
    }


async def _client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed loop: ``c`` workers, each sending its next request when the previous one is done."""
    import aiohttp

    url, model, c, duration, stream = spec["url"], spec["model"], spec["c"], spec["duration"], spec["stream"]
    headers = {"Content-Type": "application/json", **spec["headers"]}
    samples = _Samples()
    counter = 0
    nonce = uuid.uuid4().hex[:12]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counter
        while loop.time() < deadline:
            counter += 1
            body: dict[str, Any] = {
                "model": model,
                "temperature": 0,  # explicitly deterministic: Prism's cache takes the (miss) path
                "messages": [{"role": "user", "content": PROMPT.format(nonce=nonce, n=counter)}],
            }
            if stream:
                body["stream"] = True
            await _one_request(session, url, headers, body, samples)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(c)))
        elapsed = time.perf_counter() - started
    return _summary(samples, elapsed, stream)


async def _paced_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Open loop: one request every ``1/rate`` s whatever the answers do (every ``stream_every``-th
    streamed); a request that would exceed ``max_inflight`` open ones is counted as an error."""
    import aiohttp

    url, model, rate, duration = spec["url"], spec["model"], spec["rate"], spec["duration"]
    stream_every, max_inflight = spec["stream_every"], spec["max_inflight"]
    headers = {"Content-Type": "application/json", **spec["headers"]}
    samples = _Samples()
    nonce = uuid.uuid4().hex[:12]
    loop = asyncio.get_running_loop()
    inflight: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        started = loop.time()
        for n in range(int(rate * duration)):
            delay = started + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(inflight) >= max_inflight:
                samples.errors.append(f"more than {max_inflight} in flight (rate not kept)")
                continue
            body: dict[str, Any] = {
                "model": model,
                "temperature": 0,
                "messages": [{"role": "user", "content": PROMPT.format(nonce=nonce, n=n)}],
            }
            if stream_every and n % stream_every == 0:
                body["stream"] = True
            task = asyncio.create_task(_one_request(session, url, headers, body, samples))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        await asyncio.gather(*inflight)
        elapsed = loop.time() - started
    return _summary(samples, elapsed, stream=False)


def client_entry(raw: str) -> None:
    spec = json.loads(raw)
    if spec.get("cores"):
        os.sched_setaffinity(0, {int(x) for x in spec["cores"].split(",")})
    main = _paced_main(spec) if spec.get("rate") else _client_main(spec)
    try:
        import uvloop

        result = uvloop.run(main)
    except ImportError:
        result = asyncio.run(main)
    print(json.dumps(result))


def run_paced(
    url: str,
    model: str,
    headers: dict[str, str],
    *,
    rate: float,
    duration: float,
    stream_every: int,
    cores: str | None,
) -> Phase:
    """The paced (fixed-rate) client in its own pinned process."""
    spec = {
        "url": url,
        "model": model,
        "headers": headers,
        "rate": rate,
        "duration": duration,
        "stream_every": stream_every,
        "max_inflight": 1024,
        "cores": cores,
    }
    out = subprocess.run(
        [sys.executable, __file__, "_client", json.dumps(spec)], capture_output=True, text=True, check=True
    ).stdout
    phase = Phase(f"soak {rate:g}/s", 0, False, tool="aiohttp paced")
    for key, value in json.loads(out.strip().splitlines()[-1]).items():
        setattr(phase, key, value)
    return phase


# ---------------------------------------------------------------------------------------------
# systems


@dataclass
class SystemResult:
    name: str
    url: str
    label: str = ""
    """What was measured, for the report (version, workers, settings)."""
    phases: list[Phase] = field(default_factory=list)
    peak_rss_mb: float | None = None
    cpu_s_per_1k: float | None = None

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


def scrape_counters(metrics_url: str) -> dict[str, int] | None:
    """Sum every series of each ``HIDDEN_ERROR_METRICS`` counter; ``None`` when /metrics is unreadable."""
    try:
        token = os.environ.get("PRISM_METRICS_TOKEN", "prism-bench-metrics-token")  # = bench_prism.py's
        request = urllib.request.Request(metrics_url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as r:
            text = r.read().decode()
    except OSError as exc:
        print(f"  cannot read {metrics_url}: {exc}", file=sys.stderr, flush=True)
        return None
    totals = dict.fromkeys(HIDDEN_ERROR_METRICS, 0.0)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return {name: round(value) for name, value in totals.items()}


def measure(
    name: str,
    url: str,
    model: str,
    headers: dict[str, str],
    root_pid: int | None,
    args: argparse.Namespace,
    load_cores: str | None,
    fake_url: str,
    *,
    label: str = "",
    metrics_url: str | None = None,
    extra_models: Sequence[str] = (),
) -> SystemResult:
    """Every phase of ``plan`` against ``model``; then non-streamed c=1 and c=64 against each of
    ``extra_models`` (Prism's ``auto``: intent classifier + router on top of the same path), as
    phases named ``"<model> c=N"`` that stay out of the CPU-per-request total."""
    result = SystemResult(name, url, label)
    monitor = RssMonitor(root_pid) if root_pid else None
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    plan = [(1, False, model), (64, False, model), (1, True, model), (32, True, model)]
    plan += [(c, False, extra) for extra in extra_models for c in (1, 64)]
    total_cpu = total_req = 0.0
    for c, stream, model in plan:
        extra = model in extra_models
        if stream:
            fake_control(fake_url, chunk_delay=args.stream_chunk_delay)
        # warm-up at the same concurrency, not measured
        if args.warmup > 0:
            if use_wrk and not stream:
                run_wrk(url, model, headers, c, args.warmup, load_cores)
            else:
                run_client(url, model, headers, c, args.warmup, stream, load_cores)
        before_up = fake_stats(fake_url)["total_requests"]
        before_hidden = scrape_counters(metrics_url) if metrics_url else None
        cpu0 = tree_cpu_seconds(root_pid) if root_pid else 0.0
        if use_wrk and not stream:
            phase = run_wrk(url, model, headers, c, args.duration, load_cores)
        else:
            phase = run_client(url, model, headers, c, args.duration, stream, load_cores)
        if root_pid:
            cpu = tree_cpu_seconds(root_pid) - cpu0
            phase.cpu_s_per_1k = cpu / max(phase.requests, 1) * 1000
            if not stream and not extra:
                total_cpu += cpu
                total_req += phase.requests
        phase.upstream_calls = fake_stats(fake_url)["total_requests"] - before_up
        if metrics_url:
            after_hidden = scrape_counters(metrics_url)
            if before_hidden is not None and after_hidden is not None:
                phase.hidden_errors = {k: after_hidden[k] - before_hidden[k] for k in after_hidden}
        if stream:
            fake_control(fake_url, chunk_delay=0.0)
        if extra:
            phase.name = f"{model} {phase.name}"
        result.phases.append(phase)
        print(
            f"  {name:8} {phase.name:17} rps={phase.rps:9.1f} p50={phase.p50_ms:8.2f}ms "
            f"p99={phase.p99_ms:8.2f}ms "
            f"errors={phase.errors}/{phase.requests} upstream={phase.upstream_calls}"
            + (f" ttfb_p50={phase.ttfb_p50_ms:.2f}ms" if phase.ttfb_p50_ms is not None else "")
            + (f" hidden={phase.hidden_errors}" if metrics_url else ""),
            flush=True,
        )
    if monitor:
        result.peak_rss_mb = monitor.stop() / 2**20
    if total_req:
        result.cpu_s_per_1k = total_cpu / total_req * 1000
    return result


def ensure_litellm(version: str) -> Path:
    venv = ROOT / ".bench" / "litellm-venv"
    marker = venv / f".litellm-{version}"
    if marker.exists():
        return venv / "bin" / "litellm"
    print(f"installing litellm[proxy]=={version} into {venv} ...", flush=True)
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for stale in venv.glob(".litellm-*"):
        stale.unlink()
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():  # the project's uv: same PyPI, a fraction of pip's time
        install = [str(uv), "pip", "install", "--quiet", "--python", str(python)]
    else:
        install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*install, f"litellm[proxy]=={version}"], check=True)
    marker.touch()
    return venv / "bin" / "litellm"


LITELLM_CONFIG = """model_list:
  - model_name: fake-gpt
    litellm_params:
      model: openai/fake-gpt
      api_base: {fake_v1}
      api_key: sk-fake-bench
litellm_settings:
  telemetry: false
  drop_params: true
  set_verbose: false
  callbacks: []
  success_callback: []
  failure_callback: []
  cache: false
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
  disable_adding_master_key_hash_to_db: true
"""
"""No database, no callbacks.  Since 1.10x the proxy refuses to start without a master key, so the
run sets ``LITELLM_MASTER_KEY`` and sends it (a string compare per request without a database)."""


def ensure_portkey(version: str) -> Path | None:
    """Portkey's gateway under ``.bench/portkey`` (npm, no global install, no install scripts);
    ``None`` when node or npm is missing."""
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        return None
    prefix = ROOT / ".bench" / "portkey"
    server = prefix / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    marker = prefix / f".portkey-{version}-node-server-{PORTKEY_NODE_SERVER}"
    if marker.exists() and server.exists():
        return server
    print(f"installing @portkey-ai/gateway@{version} into {prefix} ...", flush=True)
    prefix.mkdir(parents=True, exist_ok=True)
    for stale in prefix.glob(".portkey-*"):
        stale.unlink()
    manifest = {
        "private": True,
        "dependencies": {"@portkey-ai/gateway": version},
        "overrides": {"@hono/node-server": PORTKEY_NODE_SERVER},
    }
    (prefix / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts"], check=True
    )
    marker.touch()
    return server


def node_version() -> str:
    node = shutil.which("node")
    if not node:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()


# ---------------------------------------------------------------------------------------------
# soak


@dataclass
class SoakResult:
    rate: float
    seconds: float
    baseline_at: float
    phase: Phase
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(seconds since start, RSS of the process tree in MB, largest single process in MB)."""
    baseline_mb: float = float("nan")
    end_mb: float = float("nan")
    growth_pct: float = float("nan")
    max_process_mb: float = float("nan")
    max_tree_mb: float = float("nan")
    growth_ok: bool = False
    rss_ok: bool = False


class RssSampler:
    """Samples a process tree's RSS every ``interval`` seconds: total and largest process."""

    def __init__(self, root: int, interval: float = 5.0) -> None:
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        per_process = [proc_rss_bytes(pid) for pid in process_tree(self.root)]
        self.samples.append((time.monotonic() - self._t0, sum(per_process) / 1e6, max(per_process) / 1e6))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> list[tuple[float, float, float]]:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.samples


def soak(
    url: str,
    model: str,
    headers: dict[str, str],
    root_pid: int,
    args: argparse.Namespace,
    load_cores: str | None,
    metrics_url: str | None,
) -> SoakResult:
    seconds = args.soak
    result = SoakResult(
        rate=args.soak_rate,
        seconds=seconds,
        baseline_at=min(60.0, seconds / 3),
        phase=Phase("soak", 0, False),
    )
    print(
        f"soak: {args.soak_rate:g} req/s for {seconds:g}s, RSS every 5 s, "
        f"growth measured from {result.baseline_at:g}s",
        flush=True,
    )
    before_hidden = scrape_counters(metrics_url) if metrics_url else None
    sampler = RssSampler(root_pid)
    phase = run_paced(
        url, model, headers, rate=args.soak_rate, duration=seconds, stream_every=5, cores=load_cores
    )
    result.samples = sampler.stop()
    if metrics_url:
        after_hidden = scrape_counters(metrics_url)
        if before_hidden is not None and after_hidden is not None:
            phase.hidden_errors = {k: after_hidden[k] - before_hidden[k] for k in after_hidden}
    result.phase = phase
    baseline = next((s for s in result.samples if s[0] >= result.baseline_at), result.samples[-1])
    result.baseline_mb, result.end_mb = baseline[1], result.samples[-1][1]
    result.growth_pct = (result.end_mb - result.baseline_mb) / result.baseline_mb * 100
    result.max_tree_mb = max(s[1] for s in result.samples)
    result.max_process_mb = max(s[2] for s in result.samples)
    result.growth_ok = result.growth_pct < args.soak_max_growth
    result.rss_ok = result.max_process_mb < args.soak_max_rss_mb
    print(
        f"  soak: {phase.requests} requests at {phase.rps:.1f}/s, errors={phase.errors} "
        f"({phase.error_detail}) hidden={phase.hidden_errors} "
        f"p50={phase.p50_ms:.2f}ms p99={phase.p99_ms:.2f}ms",
        flush=True,
    )
    for line in soak_verdicts(result, args):
        print("  " + line, flush=True)
    return result


def soak_verdicts(result: SoakResult, args: argparse.Namespace) -> list[str]:
    return [
        f"RSS growth after {result.baseline_at:g}s: {result.growth_pct:+.1f}% "
        f"({result.baseline_mb:.1f} → {result.end_mb:.1f} MB; limit < {args.soak_max_growth:g}%): "
        + ("PASS" if result.growth_ok else "FAIL"),
        f"largest process RSS (per worker): {result.max_process_mb:.1f} MB "
        f"(limit < {args.soak_max_rss_mb:g} MB): " + ("PASS" if result.rss_ok else "FAIL"),
    ]


# ---------------------------------------------------------------------------------------------
# reporting


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 2**20:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if value is None or value != value else fmt.format(value)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}"


def _metric(r: SystemResult | None, phase: str, attr: str) -> float | None:
    p = r.phase(phase) if r else None
    v = getattr(p, attr) if p else None
    return float(v) if v is not None else None


def _added(r: SystemResult | None, direct: SystemResult | None, phase: str, attr: str) -> float | None:
    """``attr`` of ``r`` over the direct call's in the same phase (the latency a gateway adds)."""
    a, d = _metric(r, phase, attr), _metric(direct, phase, attr)
    return a - d if a is not None and d is not None and r is not direct else None


def _hidden(r: SystemResult) -> str:
    counts = [p.hidden_errors for p in r.phases]
    if not any(c is not None for c in counts):
        return "–"
    return "/".join(str(sum((c or {}).get(name, 0) for c in counts)) for name in HIDDEN_ERROR_METRICS)


def _cmd() -> str:
    return " ".join(shlex.quote(a) for a in ["python", "scripts/bench.py", *sys.argv[1:]])


def render(results: list[SystemResult], args: argparse.Namespace, layout: dict[str, str | None]) -> str:
    by = {r.name: r for r in results}
    direct = by.get("direct")
    lines = [
        "| system | RPS c=1 | p50 c=1 (ms) | added p50 c=1 (ms) | RPS c=64 | p50 c=64 (ms) | p99 c=64 (ms) "
        "| added p50 c=64 (ms) | added TTFB p50 c=1 (ms) | streams/s c=32 | stream TTFB p50 c=32 (ms) "
        "| stream TTFT p50 c=32 (ms) | CPU s / 1k req | peak RSS (MiB) | errors | backend errors/fallbacks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p1, p64, ps = r.phase("c=1"), r.phase("c=64"), r.phase("stream c=32")
        errs = sum(p.errors for p in r.phases)
        reqs = sum(p.requests for p in r.phases)
        cells = [
            r.name,
            _f(p1.rps if p1 else None),
            _f(p1.p50_ms if p1 else None, "{:.2f}"),
            _f(_added(r, direct, "c=1", "p50_ms"), "{:+.2f}"),
            _f(p64.rps if p64 else None),
            _f(p64.p50_ms if p64 else None, "{:.2f}"),
            _f(p64.p99_ms if p64 else None, "{:.2f}"),
            _f(_added(r, direct, "c=64", "p50_ms"), "{:+.2f}"),
            _f(_added(r, direct, "stream c=1", "ttfb_p50_ms"), "{:+.2f}"),
            _f(ps.rps if ps else None),
            _f(ps.ttfb_p50_ms if ps else None, "{:.2f}"),
            _f(ps.ttft_p50_ms if ps else None, "{:.2f}"),
            _f(r.cpu_s_per_1k, "{:.3f}"),
            _f(r.peak_rss_mb),
            f"{errs}/{reqs}",
            _hidden(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")

    prism, lite, portkey = by.get("prism"), by.get("litellm"), by.get("portkey")
    auto = args.prism_auto_model
    if prism is not None and auto and prism.phase(f"{auto} c=1") is not None:
        a1, a64 = prism.phase(f"{auto} c=1"), prism.phase(f"{auto} c=64")
        lines += [
            "",
            f'`model: "{auto}"` on one-worker Prism (intent classifier + smart router on top of the same '
            "path; non-streamed):",
            "",
            "| phase | RPS | p50 (ms) | added p50 over direct (ms) | over the explicit model (ms) "
            "| p99 (ms) | CPU s / 1k req | upstream calls / requests |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c, ph in (("1", a1), ("64", a64)):
            if ph is None:
                continue
            explicit = prism.phase(f"c={c}")
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"{auto} c={c}",
                        _f(ph.rps),
                        _f(ph.p50_ms, "{:.2f}"),
                        _f(
                            ph.p50_ms - direct_p50
                            if (direct_p50 := _metric(direct, f"c={c}", "p50_ms"))
                            else None,
                            "{:+.2f}",
                        ),
                        _f(ph.p50_ms - explicit.p50_ms if explicit else None, "{:+.2f}"),
                        _f(ph.p99_ms, "{:.2f}"),
                        _f(ph.cpu_s_per_1k, "{:.3f}"),
                        f"{ph.upstream_calls}/{ph.requests}",
                    ]
                )
                + " |"
            )
    multi = next((r for r in results if r.name.startswith("prism-") and r.name.endswith("w")), None)
    cores = len(os.sched_getaffinity(0))
    workers = multi.name.removeprefix("prism-").removesuffix("w") if multi else str(cores)
    deltas: list[str] = []
    ratios = [
        (
            f"`{args.prism_auto_model}`/explicit model RPS ratio (c=64, 1 worker, unique prompts)",
            _metric(prism, f"{args.prism_auto_model} c=64", "rps") if args.prism_auto_model else None,
            _metric(prism, "c=64", "rps"),
        ),
        (
            "Prism/LiteLLM RPS ratio (c=64, 1 worker)",
            _metric(prism, "c=64", "rps"),
            _metric(lite, "c=64", "rps"),
        ),
        (
            f"Prism ({workers} workers)/Portkey RPS ratio (c=64)",
            _metric(multi, "c=64", "rps"),
            _metric(portkey, "c=64", "rps"),
        ),
        ("Prism/LiteLLM RPS ratio (c=1)", _metric(prism, "c=1", "rps"), _metric(lite, "c=1", "rps")),
        (
            "Prism/LiteLLM added p50 ratio (c=1)",
            _added(prism, direct, "c=1", "p50_ms"),
            _added(lite, direct, "c=1", "p50_ms"),
        ),
        (
            "Prism/Portkey added p50 ratio (c=1, 1 worker)",
            _added(prism, direct, "c=1", "p50_ms"),
            _added(portkey, direct, "c=1", "p50_ms"),
        ),
        (
            "Prism/LiteLLM streams/s ratio (c=32)",
            _metric(prism, "stream c=32", "rps"),
            _metric(lite, "stream c=32", "rps"),
        ),
        (
            f"Prism ({workers} workers)/Portkey streams/s ratio (c=32)",
            _metric(multi, "stream c=32", "rps"),
            _metric(portkey, "stream c=32", "rps"),
        ),
        (
            "Prism/LiteLLM stream TTFB p50 ratio (c=1)",
            _metric(prism, "stream c=1", "ttfb_p50_ms"),
            _metric(lite, "stream c=1", "ttfb_p50_ms"),
        ),
        (
            "Prism/Portkey stream TTFB p50 ratio (c=1, 1 worker)",
            _metric(prism, "stream c=1", "ttfb_p50_ms"),
            _metric(portkey, "stream c=1", "ttfb_p50_ms"),
        ),
        (
            "Prism/LiteLLM CPU per request ratio",
            prism.cpu_s_per_1k if prism else None,
            lite.cpu_s_per_1k if lite else None,
        ),
        (
            "Prism/LiteLLM peak RSS ratio",
            prism.peak_rss_mb if prism else None,
            lite.peak_rss_mb if lite else None,
        ),
    ]
    base = by.get("prism-baseline")
    if base is not None and prism is not None:
        ratios += [
            ("Prism/baseline RPS ratio (c=64)", _metric(prism, "c=64", "rps"), _metric(base, "c=64", "rps")),
            ("Prism/baseline RPS ratio (c=1)", _metric(prism, "c=1", "rps"), _metric(base, "c=1", "rps")),
        ]
        for c in ("1", "64"):
            now, before = _metric(prism, f"c={c}", "p50_ms"), _metric(base, f"c={c}", "p50_ms")
            if now is not None and before is not None:
                deltas.append(f"Prism p50 minus baseline p50 (c={c}): {now - before:+.3f} ms")
    info = machine_info()
    use_wrk = shutil.which("wrk") and not args.no_wrk
    labels = [f"- {r.name}: {r.label}" for r in results if r.label]
    out = [
        "<!-- bench:start -->",
        "## Benchmark results",
        "",
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} on {info['nproc']} CPUs "
        f"({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}, Python {info['python']}.",
        f"Command: `{_cmd()}`",
        "",
        f"Duration {args.duration:g}s per phase after {args.warmup:g}s warm-up; fake upstream "
        f"`--chunks {args.chunks}` (streams: {args.stream_chunk_delay * 1000:g} ms between chunks); "
        f"cores: fake={layout['fake']}, load generator={layout['load']}, single-process systems under "
        f"test={layout['sut']}"
        + (f", prism-{workers}w={layout['all']} (not core-isolated)" if multi else "")
        + ". Non-streamed load: "
        + ("wrk" if use_wrk else "aiohttp client")
        + ".",
        "",
        *labels,
        "",
        *lines,
        "",
        *(f"{label}: {_ratio(a, b)}" for label, a, b in ratios),
        *deltas,
        "",
        *targets(prism, multi, lite, portkey, direct, auto),
        "<!-- bench:end -->",
    ]
    return "\n".join(out) + "\n"


def targets(
    prism: SystemResult | None,
    multi: SystemResult | None,
    lite: SystemResult | None,
    portkey: SystemResult | None,
    direct: SystemResult | None,
    auto: str = "",
) -> list[str]:
    """Issue #9's targets, each met / missed / n/a (a system that was not run)."""

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "missed")

    def ge(a: float | None, b: float | None) -> bool | None:
        return None if a is None or b is None or a != a or b != b else a >= b

    rps = _metric(prism, "c=64", "rps")
    lite_rps = _metric(lite, "c=64", "rps")
    added = _added(prism, direct, "c=1", "p50_ms")
    lite_added = _added(lite, direct, "c=1", "p50_ms")
    ttfb = _added(prism, direct, "stream c=1", "ttfb_p50_ms")
    rows = [
        ("1 worker, c=64: ≥ 600 RPS", ge(rps, 600)),
        ("1 worker, c=64: ≥ 8× LiteLLM's RPS", ge(rps, 8 * lite_rps if lite_rps is not None else None)),
        (
            "as many workers as cores, c=64: ≥ Portkey's RPS",
            ge(_metric(multi, "c=64", "rps"), _metric(portkey, "c=64", "rps")),
        ),
        ("added p50 at c=1 ≤ 2 ms", ge(2.0, added)),
        ("added p50 at c=1 ≤ ⅙ of LiteLLM's", ge(lite_added / 6 if lite_added is not None else None, added)),
        ("full streams at c=32 ≥ 500/s", ge(_metric(prism, "stream c=32", "rps"), 500)),
        ("added stream TTFB p50 at c=1 ≤ 2 ms", ge(2.0, ttfb)),
    ]
    auto_rps = _metric(prism, f"{auto} c=64", "rps") if auto else None
    if auto_rps is not None:
        rows.append(
            (
                f"`{auto}` at c=64, a unique prompt per request: ≥ 0.8× the explicit model's RPS "
                f"(issue #21; measured {_ratio(auto_rps, rps)})",
                ge(auto_rps, 0.8 * rps if rps is not None else None),
            )
        )
    auto_p50 = _metric(prism, f"{auto} c=1", "p50_ms") if auto else None
    explicit_p50 = _metric(prism, "c=1", "p50_ms")
    if auto_p50 is not None and explicit_p50 is not None:
        rows.append(
            (
                f"`{auto}` at c=1: p50 ≤ the explicit model's + 5 ms (the classifier's p95 budget)",
                ge(explicit_p50 + 5.0, auto_p50),
            )
        )
    return ["Targets (issue #9):", "", *(f"- {label}: {verdict(ok)}" for label, ok in rows)]


def render_soak(result: SoakResult, args: argparse.Namespace) -> str:
    phase = result.phase
    info = machine_info()
    per_minute = {int(s[0] // 60): s for s in reversed(result.samples) if s[0] >= 60}  # first of each
    per_minute = dict(sorted(per_minute.items())) or {0: result.samples[-1]}
    hidden = "/".join(str((phase.hidden_errors or {}).get(n, "?")) for n in HIDDEN_ERROR_METRICS)
    lines = [
        "<!-- soak:start -->",
        "## Soak results",
        "",
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} on {info['nproc']} CPUs "
        f"({info['cpu']}), {info['memory']} RAM. Command: `{_cmd()}`",
        "",
        f"Prism (production configuration, 1 worker) driven at {result.rate:g} req/s "
        f"for {result.seconds:g}s by a paced aiohttp client (1 request in 5 streamed); "
        "RSS sampled every 5 s.",
        f"{phase.requests} requests at {phase.rps:.1f}/s, {phase.errors} errors, "
        f"backend errors/fallbacks {hidden}, p50 {phase.p50_ms:.2f} ms, p99 {phase.p99_ms:.2f} ms.",
        "",
        f"| RSS (MB) | after {result.baseline_at:g} s | at the end | growth | max (tree) "
        "| max (one process) |",
        "|---|---|---|---|---|---|",
        f"| prism | {result.baseline_mb:.1f} | {result.end_mb:.1f} | {result.growth_pct:+.1f}% "
        f"| {result.max_tree_mb:.1f} | {result.max_process_mb:.1f} |",
        "",
        "RSS by minute (MB): " + ", ".join(f"{m} min {s[1]:.1f}" for m, s in per_minute.items()),
        "",
        *(f"- {line}" for line in soak_verdicts(result, args)),
        "<!-- soak:end -->",
    ]
    return "\n".join(lines) + "\n"


def write_out(path: Path, section: str, marker: str = "bench") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Performance\n\n"
    m = re.search(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->\n?", text, re.S)
    text = text[: m.start()] + section + text[m.end() :] if m else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="a few seconds: direct + Prism only (CI)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured warm-up per phase")
    p.add_argument("--chunks", type=int, default=20, help="tokens per answer from the fake")
    p.add_argument(
        "--stream-chunk-delay",
        type=float,
        default=0.0,
        help="fake's delay between chunks (streams); 0 as in issue #9's anchors: the fake is never the limit",
    )
    p.add_argument("--fake-port", type=int, default=0)
    p.add_argument(
        "--prism-cmd", default=None, help="command that starts Prism ({fake_url}, {port}, {workers})"
    )
    p.add_argument(
        "--prism-teardown",
        default=None,
        help="command run after each Prism server stopped, even on failure ({port}; e.g. drop its database)",
    )
    p.add_argument("--prism-url", default="http://127.0.0.1:8080", help="Prism's base URL")
    p.add_argument("--prism-model", default="fake-gpt")
    p.add_argument(
        "--prism-auto-model",
        default="auto",
        help="smart alias measured in extra non-streamed phases of 1-worker Prism ('' skips; not in --smoke)",
    )
    p.add_argument("--prism-key", default=os.environ.get("PRISM_API_KEY"), help="API key for Prism")
    p.add_argument(
        "--prism-setup",
        default=None,
        help="command run once Prism is up ({url} is replaced); its last stdout line is the API key to use",
    )
    p.add_argument(
        "--baseline-root",
        type=Path,
        default=None,
        help="another checkout (e.g. a `git worktree` of the commit before a change) measured first as "
        "prism-baseline with the same --prism-* commands: before/after ratios in the same run",
    )
    p.add_argument(
        "--prism-workers",
        type=int,
        default=None,
        help="workers of the extra multi-worker Prism (default: as many as cores; 0 or 1: none; smoke: none)",
    )
    p.add_argument(
        "--litellm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run LiteLLM's proxy (default: on unless --smoke)",
    )
    p.add_argument("--litellm-version", default=LITELLM_VERSION)
    p.add_argument(
        "--portkey",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run Portkey's gateway (needs node and npm; default: on unless --smoke)",
    )
    p.add_argument("--portkey-version", default=PORTKEY_VERSION)
    p.add_argument("--soak", type=float, default=0.0, help="seconds of steady-rate soak on Prism (0: none)")
    p.add_argument("--soak-only", action="store_true", help="only the soak (no side-by-side phases)")
    p.add_argument("--soak-rate", type=float, default=200.0, help="requests per second during the soak")
    p.add_argument("--soak-max-growth", type=float, default=10.0, help="RSS growth limit, percent")
    p.add_argument("--soak-max-rss-mb", type=float, default=300.0, help="RSS limit per process, MB")
    p.add_argument("--start-timeout", type=float, default=90.0)
    p.add_argument("--no-wrk", action="store_true", help="use the aiohttp client for non-streamed load too")
    p.add_argument("--max-error-rate", type=float, default=0.001)
    p.add_argument("--out", type=Path, default=None, help="markdown file to (re)write the results section in")
    p.add_argument("--json", type=Path, default=None, help="write raw results as JSON")
    p.add_argument(
        "--logdir",
        type=Path,
        default=None,
        help="server logs and configs (default: var/bench/run-<pid>, so concurrent runs never share one)",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.duration = min(args.duration, 3.0)
        args.warmup = min(args.warmup, 1.0)
        for flag in ("litellm", "portkey"):
            if getattr(args, flag) is None:
                setattr(args, flag, False)
        if args.prism_workers is None:
            args.prism_workers = 0
        args.prism_auto_model = ""
    for flag in ("litellm", "portkey"):
        if getattr(args, flag) is None:
            setattr(args, flag, True)
    if args.prism_workers is None:
        args.prism_workers = len(os.sched_getaffinity(0))
    if args.soak_only and args.soak <= 0:
        p.error("--soak-only needs --soak SECONDS")
    if args.soak_only:
        args.litellm = args.portkey = False
        args.prism_workers = 0
    return args


@contextlib.contextmanager
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        yield started
    finally:
        for s in reversed(started):
            s.stop()


@dataclass
class Prism:
    server: Server
    url: str
    headers: dict[str, str]
    metrics_url: str


def start_prism(
    args: argparse.Namespace,
    base_env: dict[str, str],
    fake_url: str,
    *,
    name: str,
    workers: int,
    cores: str | None,
    running: list[Server],
    root: Path | None = None,
) -> Prism:
    """Start Prism with ``--prism-cmd``; with ``root``, the commands run in that checkout instead
    (``cd root``, ``PYTHONPATH=root``): the before/after reference of ``--baseline-root``."""
    base = args.prism_url.rstrip("/")
    port_m = re.search(r":(\d+)", base)
    env = {
        **base_env,
        "FAKE_UPSTREAM_URL": fake_url + "/v1",
        "PRISM_BENCH_PORT": port_m.group(1) if port_m else "",
        "PRISM_BENCH_WORKERS": str(workers),
    }
    at = f"cd {shlex.quote(str(root))} && PYTHONPATH={shlex.quote(str(root))} " if root else ""
    cmd = at + args.prism_cmd.format(fake_url=fake_url + "/v1", port=env["PRISM_BENCH_PORT"], workers=workers)
    server = start_server(name, pinned(["bash", "-c", cmd], cores), env, args.logdir)
    if args.prism_teardown:
        server.teardown = at + args.prism_teardown.format(port=env["PRISM_BENCH_PORT"])
    running.append(server)
    key = args.prism_key
    if args.prism_setup:
        try:
            setup = subprocess.run(
                ["bash", "-c", at + args.prism_setup.format(url=base)],
                capture_output=True,
                text=True,
                timeout=args.start_timeout,
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(
                f"{name}: --prism-setup did not finish in {args.start_timeout:.0f}s; see {server.log}"
            ) from None
        lines = setup.stdout.strip().splitlines()
        if setup.returncode != 0 or not lines:
            exited = server.proc.poll()
            raise SystemExit(
                f"{name}: --prism-setup failed ({setup.returncode}): {setup.stderr.strip()[-400:]}"
                + (f"; the server exited with {exited}" if exited is not None else "")
                + f"; see {server.log}"
            )
        key = lines[-1]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = base + "/v1/chat/completions"
    wait_ready(server, url, args.prism_model, headers, args.start_timeout)
    print(f"{name} ready at {base} ({workers} worker{'s' if workers > 1 else ''})", flush=True)
    return Prism(server, url, headers, base + "/metrics")


def run_litellm(
    args: argparse.Namespace,
    base_env: dict[str, str],
    fake_url: str,
    layout: dict[str, str | None],
    running: list[Server],
) -> SystemResult:
    litellm_bin = ensure_litellm(args.litellm_version)
    port = free_port()
    cfg = args.logdir / "litellm-config.yaml"
    cfg.write_text(LITELLM_CONFIG.format(fake_v1=fake_url + "/v1"))
    master_key = f"sk-bench-{uuid.uuid4().hex}"
    env = {
        **base_env,
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
    }
    env.pop("DATABASE_URL", None)
    argv = [str(litellm_bin), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    lite = start_server("litellm", pinned([*argv, "--num_workers", "1"], layout["sut"]), env, args.logdir)
    running.append(lite)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {master_key}"}
    wait_ready(lite, url, "fake-gpt", headers, args.start_timeout)
    print(f"litellm ready on port {port}", flush=True)
    label = f"LiteLLM {args.litellm_version} proxy, 1 worker, no database, no callbacks, master key set"
    result = measure(
        "litellm", url, "fake-gpt", headers, lite.proc.pid, args, layout["load"], fake_url, label=label
    )
    lite.stop()
    return result


def run_portkey(
    args: argparse.Namespace,
    base_env: dict[str, str],
    fake_url: str,
    layout: dict[str, str | None],
    running: list[Server],
) -> SystemResult | None:
    server_js = ensure_portkey(args.portkey_version)
    if server_js is None:
        print("portkey: skipped — it needs node and npm on PATH (e.g. apt-get install nodejs npm)")
        return None
    port = free_port()
    env = {**base_env, "NODE_ENV": "production"}
    argv = [shutil.which("node") or "node", str(server_js), f"--port={port}", "--headless"]
    portkey = start_server("portkey", pinned(argv, layout["sut"]), env, args.logdir)
    running.append(portkey)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": fake_url + "/v1",
        "Authorization": "Bearer sk-fake-bench",
    }
    wait_ready(portkey, url, "fake-gpt", headers, args.start_timeout)
    print(f"portkey ready on port {port}", flush=True)
    label = (
        f"Portkey gateway {args.portkey_version} on Node {node_version()} (one process, headless, "
        f"NODE_ENV=production, @hono/node-server {PORTKEY_NODE_SERVER}), routed by x-portkey-provider "
        "and x-portkey-custom-host headers"
    )
    result = measure(
        "portkey", url, "fake-gpt", headers, portkey.proc.pid, args, layout["load"], fake_url, label=label
    )
    portkey.stop()
    return result


def failures(results: list[SystemResult], soaked: SoakResult | None, args: argparse.Namespace) -> list[str]:
    """Every reason to exit non-zero: request errors, Prism's hidden errors, soak verdicts."""
    out = []
    phases = [(r.name, p) for r in results for p in r.phases]
    if soaked:
        phases.append(("prism", soaked.phase))
    for name, p in phases:
        if p.requests == 0 or p.error_rate > args.max_error_rate:
            out.append(f"{name} {p.name}: {p.errors}/{p.requests} request errors ({p.error_detail.strip()})")
        if not name.startswith("prism"):
            continue
        if p.hidden_errors is None:
            out.append(f"{name} {p.name}: backend errors unknown (/metrics not readable)")
            continue
        for metric, count in p.hidden_errors.items():
            if count / max(p.requests, 1) > args.max_error_rate:
                out.append(f"{name} {p.name}: {metric} rose by {count} over {p.requests} requests")
    if soaked and not (soaked.growth_ok and soaked.rss_ok):
        out.extend(line for line in soak_verdicts(soaked, args) if line.endswith("FAIL"))
    return out


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    args.logdir = args.logdir or ROOT / "var" / "bench" / f"run-{os.getpid()}"
    args.logdir.mkdir(parents=True, exist_ok=True)
    layout = cpu_layout()
    results: list[SystemResult] = []
    soaked: SoakResult | None = None
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    print(f"cores: {layout}; logs in {args.logdir}", flush=True)
    with servers() as running:
        fake_port = args.fake_port or free_port()
        fake_argv = [sys.executable, "-m", "tests.fakes.openai_upstream", "--port", str(fake_port)]
        fake_argv += ["--chunks", str(args.chunks), "--latency", "0", "--chunk-delay", "0"]
        fake_argv += ["--error-rate", "0"]
        fake = start_server("fake", pinned(fake_argv, layout["fake"]), base_env, args.logdir)
        running.append(fake)
        fake_url = f"http://127.0.0.1:{fake_port}"
        direct_url = fake_url + "/v1/chat/completions"
        wait_ready(fake, direct_url, "fake-gpt", {}, 20)
        print(f"fake upstream ready at {fake_url}", flush=True)

        if not args.soak_only:
            results.append(
                measure(
                    "direct",
                    direct_url,
                    "fake-gpt",
                    {"Authorization": "Bearer sk-fake"},
                    fake.proc.pid,
                    args,
                    layout["direct_load"],
                    fake_url,
                    label="the fake upstream called directly",
                )
            )
        prism_runs = [] if args.soak_only else [("prism", 1, layout["sut"])]
        if args.prism_workers > 1 and not args.soak_only:
            if args.prism_cmd and "{workers}" not in args.prism_cmd:
                print("prism multi-worker: skipped — --prism-cmd has no {workers} placeholder", flush=True)
            else:
                prism_runs.append((f"prism-{args.prism_workers}w", args.prism_workers, layout["all"]))
        if args.baseline_root and not args.soak_only:
            # the reference tree first, then this one: a before/after in the same run
            prism_runs.insert(0, ("prism-baseline", 1, layout["sut"]))
        if args.prism_cmd:
            for name, workers, cores in prism_runs:
                prism = start_prism(
                    args,
                    base_env,
                    fake_url,
                    name=name,
                    workers=workers,
                    cores=cores,
                    running=running,
                    root=args.baseline_root if name == "prism-baseline" else None,
                )
                auto_phases = bool(args.prism_auto_model) and workers == 1
                label = (
                    f"Prism, production configuration, {workers} uvicorn worker{'s' if workers > 1 else ''}"
                    + (" sharing every core with the fake and the load generator" if workers > 1 else "")
                )
                results.append(
                    measure(
                        name,
                        prism.url,
                        args.prism_model,
                        prism.headers,
                        prism.server.proc.pid,
                        args,
                        layout["load"],
                        fake_url,
                        label=label,
                        metrics_url=prism.metrics_url,
                        extra_models=(args.prism_auto_model,) if auto_phases else (),
                    )
                )
                prism.server.stop()
        if args.litellm:
            results.append(run_litellm(args, base_env, fake_url, layout, running))
        if args.portkey:
            portkey = run_portkey(args, base_env, fake_url, layout, running)
            if portkey:
                results.append(portkey)
        if args.soak > 0:
            if not args.prism_cmd:
                raise SystemExit("--soak needs --prism-cmd")
            prism = start_prism(
                args, base_env, fake_url, name="prism-soak", workers=1, cores=layout["sut"], running=running
            )
            soaked = soak(
                prism.url,
                args.prism_model,
                prism.headers,
                prism.server.proc.pid,
                args,
                layout["load"],
                prism.metrics_url,
            )
            prism.server.stop()

    if results:
        section = render(results, args, layout)
        print()
        print(section)
        if args.out:
            write_out(args.out, section, "bench")
            print(f"results written to {args.out}")
    if soaked:
        section = render_soak(soaked, args)
        print()
        print(section)
        if args.out:
            write_out(args.out, section, "soak")
            print(f"soak written to {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        raw = {"systems": [asdict(r) for r in results], "soak": asdict(soaked) if soaked else None}
        args.json.write_text(json.dumps(raw, indent=2))
    failed = failures(results, soaked, args)
    if failed:
        print(
            f"FAIL (error limit {args.max_error_rate:.2%} of requests):\n  " + "\n  ".join(failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_client":
        client_entry(sys.argv[2])
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
