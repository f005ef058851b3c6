#!/usr/bin/env python3
"""Benchmark driver: Prism vs LiteLLM's proxy vs a direct call, all against the fake upstream.

Every system answers ``POST /v1/chat/completions`` with the same fake OpenAI upstream
(``tests.fakes.openai_upstream``) behind it.  Per system it measures, at fixed
concurrency for a fixed duration:

* non-streamed c=1 and c=64 (``wrk`` + Lua when installed, else the aiohttp client):
  RPS, p50/p99 latency, added p50 over the direct call;
* full streams at c=32 (aiohttp client): streams/s, time to first byte and first token;
* CPU seconds per 1,000 requests and peak RSS of the server's process tree (``/proc``).

Usage::

    python scripts/bench.py --smoke                                  # CI: fake only (+ --prism-cmd)
    python scripts/bench.py --litellm --prism-cmd "uvicorn ..." --prism-url http://127.0.0.1:8080 \\
        --out docs/performance.md

``--prism-cmd`` may contain ``{fake_url}`` (the fake's ``/v1`` base URL) and ``{port}``; the
same values are exported as ``FAKE_UPSTREAM_URL`` / ``PRISM_BENCH_PORT``.  Exit status 1 when
any system fails on more than ``--max-error-rate`` (0.1 %) of its requests.
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
LITELLM_VERSION = "1.77.7"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PROMPT = "bench {nonce}-{n}: explain in one sentence why the sky is blue"
"""Every request of every phase is distinct (a nonce per phase), so a gateway cache never answers."""


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


def tree_rss_bytes(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


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
    """Which cores the fake, the load generator and the system under test get."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 3:
        return {
            "fake": str(cores[0]),
            "load": str(cores[1]),
            "sut": ",".join(map(str, cores[2:])),
            "direct_load": str(cores[1]),
        }
    if len(cores) == 2:  # the SUT gets a core of its own; fake and load generator share the other
        return {
            "fake": str(cores[0]),
            "load": str(cores[0]),
            "sut": str(cores[1]),
            "direct_load": str(cores[1]),
        }
    return {"fake": None, "load": None, "sut": None, "direct_load": None}


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
  local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"bench ' ..
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


async def _client_main(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, model, c, duration, stream = spec["url"], spec["model"], spec["c"], spec["duration"], spec["stream"]
    headers = {"Content-Type": "application/json", **spec["headers"]}
    lat: list[float] = []
    ttfb: list[float] = []
    ttft: list[float] = []
    errors: list[str] = []
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
                "messages": [{"role": "user", "content": PROMPT.format(nonce=nonce, n=counter)}],
            }
            if stream:
                body["stream"] = True
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=json.dumps(body), headers=headers) as r:
                    if r.status != 200:
                        errors.append(f"HTTP {r.status}")
                        await r.read()
                        continue
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
                            errors.append("stream ended without [DONE]")
                            continue
                        if first is not None:
                            ttfb.append(first)
                        if first_tok is not None:
                            ttft.append(first_tok)
                lat.append(time.perf_counter() - t0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(type(exc).__name__)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(c)))
        elapsed = time.perf_counter() - started
    n = len(lat) + len(errors)
    return {
        "requests": n,
        "errors": len(errors),
        "duration": elapsed,
        "rps": len(lat) / elapsed,
        "p50_ms": _pct(lat, 50) * 1e3,
        "p99_ms": _pct(lat, 99) * 1e3,
        "ttfb_p50_ms": _pct(ttfb, 50) * 1e3 if stream else None,
        "ttft_p50_ms": _pct(ttft, 50) * 1e3 if stream else None,
        "error_detail": ", ".join(sorted({*errors}))[:300],
    }


def client_entry(raw: str) -> None:
    spec = json.loads(raw)
    if spec.get("cores"):
        os.sched_setaffinity(0, {int(x) for x in spec["cores"].split(",")})
    try:
        import uvloop

        result = uvloop.run(_client_main(spec))
    except ImportError:
        result = asyncio.run(_client_main(spec))
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# systems


@dataclass
class SystemResult:
    name: str
    url: str
    phases: list[Phase] = field(default_factory=list)
    peak_rss_mb: float | None = None
    cpu_s_per_1k: float | None = None

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


def measure(
    name: str,
    url: str,
    model: str,
    headers: dict[str, str],
    root_pid: int | None,
    args: argparse.Namespace,
    load_cores: str | None,
    fake_url: str,
) -> SystemResult:
    result = SystemResult(name, url)
    monitor = RssMonitor(root_pid) if root_pid else None
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    plan = [(1, False), (64, False), (32, True)]
    total_cpu = total_req = 0.0
    for c, stream in plan:
        if stream:
            fake_control(fake_url, chunk_delay=args.stream_chunk_delay)
        # warm-up at the same concurrency, not measured
        if args.warmup > 0:
            if use_wrk and not stream:
                run_wrk(url, model, headers, c, args.warmup, load_cores)
            else:
                run_client(url, model, headers, c, args.warmup, stream, load_cores)
        before_up = fake_stats(fake_url)["total_requests"]
        cpu0 = tree_cpu_seconds(root_pid) if root_pid else 0.0
        if use_wrk and not stream:
            phase = run_wrk(url, model, headers, c, args.duration, load_cores)
        else:
            phase = run_client(url, model, headers, c, args.duration, stream, load_cores)
        if root_pid:
            cpu = tree_cpu_seconds(root_pid) - cpu0
            phase.cpu_s_per_1k = cpu / max(phase.requests, 1) * 1000
            if not stream:
                total_cpu += cpu
                total_req += phase.requests
        phase.upstream_calls = fake_stats(fake_url)["total_requests"] - before_up
        if stream:
            fake_control(fake_url, chunk_delay=0.0)
        result.phases.append(phase)
        print(
            f"  {name:8} {phase.name:13} rps={phase.rps:9.1f} p50={phase.p50_ms:8.2f}ms "
            f"p99={phase.p99_ms:8.2f}ms "
            f"errors={phase.errors}/{phase.requests} upstream={phase.upstream_calls}"
            + (f" ttfb_p50={phase.ttfb_p50_ms:.2f}ms" if phase.ttfb_p50_ms is not None else ""),
            flush=True,
        )
    if monitor:
        result.peak_rss_mb = monitor.stop() / 2**20
    if total_req:
        result.cpu_s_per_1k = total_cpu / total_req * 1000
    return result


def litellm_python() -> Path:
    return ROOT / ".bench" / "litellm-venv" / "bin" / "python"


def ensure_litellm(version: str) -> Path:
    venv = ROOT / ".bench" / "litellm-venv"
    marker = venv / f".litellm-{version}"
    if marker.exists():
        return venv / "bin" / "litellm"
    print(f"installing litellm[proxy]=={version} into {venv} ...", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True
    )
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"litellm[proxy]=={version}"], check=True
    )
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


def render(results: list[SystemResult], args: argparse.Namespace, layout: dict[str, str | None]) -> str:
    direct = next((r for r in results if r.name == "direct"), None)
    d1 = direct.phase("c=1") if direct else None
    d64 = direct.phase("c=64") if direct else None
    lines = [
        "| system | RPS c=1 | p50 c=1 (ms) | added p50 c=1 (ms) | RPS c=64 | p50 c=64 (ms) | p99 c=64 (ms) "
        "| added p50 c=64 (ms) | streams/s c=32 | stream TTFB p50 (ms) | stream TTFT p50 (ms) "
        "| CPU s / 1k req | peak RSS (MiB) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p1, p64, ps = r.phase("c=1"), r.phase("c=64"), r.phase("stream c=32")
        errs = sum(p.errors for p in r.phases)
        reqs = sum(p.requests for p in r.phases)
        lines.append(
            "| "
            + " | ".join(
                [
                    r.name,
                    _f(p1.rps if p1 else None),
                    _f(p1.p50_ms if p1 else None, "{:.2f}"),
                    _f(p1.p50_ms - d1.p50_ms if p1 and d1 and r is not direct else None, "{:+.2f}"),
                    _f(p64.rps if p64 else None),
                    _f(p64.p50_ms if p64 else None, "{:.2f}"),
                    _f(p64.p99_ms if p64 else None, "{:.2f}"),
                    _f(p64.p50_ms - d64.p50_ms if p64 and d64 and r is not direct else None, "{:+.2f}"),
                    _f(ps.rps if ps else None),
                    _f(ps.ttfb_p50_ms if ps else None, "{:.2f}"),
                    _f(ps.ttft_p50_ms if ps else None, "{:.2f}"),
                    _f(r.cpu_s_per_1k, "{:.3f}"),
                    _f(r.peak_rss_mb),
                    f"{errs}/{reqs}",
                ]
            )
            + " |"
        )
    by = {r.name: r for r in results}
    prism, lite = by.get("prism"), by.get("litellm")

    def metric(r: SystemResult | None, phase: str, attr: str) -> float | None:
        p = r.phase(phase) if r else None
        v = getattr(p, attr) if p else None
        return float(v) if v is not None else None

    ratio64 = _ratio(metric(prism, "c=64", "rps"), metric(lite, "c=64", "rps"))
    info = machine_info()
    cmd = " ".join(shlex.quote(a) for a in ["python", "scripts/bench.py", *sys.argv[1:]])
    out = [
        "<!-- bench:start -->",
        "## Benchmark results",
        "",
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} on {info['nproc']} CPUs "
        f"({info['cpu']}), {info['memory']} RAM, kernel {info['kernel']}, Python {info['python']}.",
        f"Command: `{cmd}`",
        "",
        f"Duration {args.duration:g}s per phase after {args.warmup:g}s warm-up; fake upstream "
        f"`--chunks {args.chunks}` (streams: {args.stream_chunk_delay * 1000:g} ms between chunks); "
        f"cores: fake={layout['fake']}, load generator={layout['load']}, system under test={layout['sut']}. "
        "Non-streamed load: "
        + ("wrk" if shutil.which("wrk") and not args.no_wrk else "aiohttp client")
        + ".",
        "",
        *lines,
        "",
        f"Prism/LiteLLM RPS ratio (c=64, 1 worker): {ratio64}",
        f"Prism/LiteLLM RPS ratio (c=1): {_ratio(metric(prism, 'c=1', 'rps'), metric(lite, 'c=1', 'rps'))}",
        f"Prism/LiteLLM stream TTFB p50 ratio: "
        f"{_ratio(metric(prism, 'stream c=32', 'ttfb_p50_ms'), metric(lite, 'stream c=32', 'ttfb_p50_ms'))}",
        "Prism/LiteLLM CPU per request ratio: "
        + _ratio(prism.cpu_s_per_1k if prism else None, lite.cpu_s_per_1k if lite else None),
        "Prism/LiteLLM peak RSS ratio: "
        + _ratio(prism.peak_rss_mb if prism else None, lite.peak_rss_mb if lite else None),
        "<!-- bench:end -->",
    ]
    return "\n".join(out) + "\n"


def write_out(path: Path, section: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Performance\n\n"
    m = re.search(r"<!-- bench:start -->.*?<!-- bench:end -->\n?", text, re.S)
    text = text[: m.start()] + section + text[m.end() :] if m else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="a few seconds, no LiteLLM (CI)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured warm-up per phase")
    p.add_argument("--chunks", type=int, default=20, help="tokens per answer from the fake")
    p.add_argument(
        "--stream-chunk-delay", type=float, default=0.005, help="fake's delay between chunks (streams)"
    )
    p.add_argument("--fake-port", type=int, default=0)
    p.add_argument("--prism-cmd", default=None, help="command that starts Prism (1 worker)")
    p.add_argument("--prism-url", default="http://127.0.0.1:8080", help="Prism's base URL")
    p.add_argument("--prism-model", default="fake-gpt")
    p.add_argument("--prism-key", default=os.environ.get("PRISM_API_KEY"), help="API key for Prism")
    p.add_argument(
        "--prism-setup",
        default=None,
        help="command run once Prism is up ({url} is replaced); its last stdout line is the API key to use",
    )
    p.add_argument(
        "--litellm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run LiteLLM's proxy (default: on unless --smoke)",
    )
    p.add_argument("--litellm-version", default=LITELLM_VERSION)
    p.add_argument("--start-timeout", type=float, default=90.0)
    p.add_argument("--no-wrk", action="store_true", help="use the aiohttp client for non-streamed load too")
    p.add_argument("--max-error-rate", type=float, default=0.001)
    p.add_argument("--out", type=Path, default=None, help="markdown file to (re)write the results section in")
    p.add_argument("--json", type=Path, default=None, help="write raw results as JSON")
    p.add_argument("--logdir", type=Path, default=ROOT / "var" / "bench")
    args = p.parse_args(argv)
    if args.smoke:
        args.duration = min(args.duration, 3.0)
        args.warmup = min(args.warmup, 1.0)
        if args.litellm is None:
            args.litellm = False
    if args.litellm is None:
        args.litellm = True
    return args


@contextlib.contextmanager
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        yield started
    finally:
        for s in reversed(started):
            s.stop()


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    args.logdir.mkdir(parents=True, exist_ok=True)
    layout = cpu_layout()
    results: list[SystemResult] = []
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    print(f"cores: {layout}", flush=True)
    with servers() as running:
        fake_port = args.fake_port or free_port()
        fake = start_server(
            "fake",
            pinned(
                [
                    sys.executable,
                    "-m",
                    "tests.fakes.openai_upstream",
                    "--port",
                    str(fake_port),
                    "--chunks",
                    str(args.chunks),
                    "--latency",
                    "0",
                    "--chunk-delay",
                    "0",
                    "--error-rate",
                    "0",
                ],
                layout["fake"],
            ),
            base_env,
            args.logdir,
        )
        running.append(fake)
        fake_url = f"http://127.0.0.1:{fake_port}"
        direct_url = fake_url + "/v1/chat/completions"
        wait_ready(fake, direct_url, "fake-gpt", {}, 20)
        print(f"fake upstream ready at {fake_url}", flush=True)
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
            )
        )

        if args.prism_cmd:
            port_m = re.search(r":(\d+)", args.prism_url)
            env = {
                **base_env,
                "FAKE_UPSTREAM_URL": fake_url + "/v1",
                "PRISM_BENCH_PORT": port_m.group(1) if port_m else "",
            }
            cmd = args.prism_cmd.format(fake_url=fake_url + "/v1", port=env["PRISM_BENCH_PORT"])
            prism = start_server("prism", pinned(["bash", "-c", cmd], layout["sut"]), env, args.logdir)
            running.append(prism)
            if args.prism_setup:
                setup = subprocess.run(
                    ["bash", "-c", args.prism_setup.format(url=args.prism_url.rstrip("/"))],
                    capture_output=True,
                    text=True,
                    timeout=args.start_timeout,
                    check=True,
                )
                args.prism_key = setup.stdout.strip().splitlines()[-1]
            headers = {"Authorization": f"Bearer {args.prism_key}"} if args.prism_key else {}
            url = args.prism_url.rstrip("/") + "/v1/chat/completions"
            wait_ready(prism, url, args.prism_model, headers, args.start_timeout)
            print(f"prism ready at {args.prism_url}", flush=True)
            results.append(
                measure(
                    "prism", url, args.prism_model, headers, prism.proc.pid, args, layout["load"], fake_url
                )
            )
            prism.stop()

        if args.litellm:
            litellm_bin = ensure_litellm(args.litellm_version)
            port = free_port()
            cfg = args.logdir / "litellm-config.yaml"
            cfg.write_text(LITELLM_CONFIG.format(fake_v1=fake_url + "/v1"))
            env = {
                **base_env,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "NO_DOCS": "True",
            }
            env.pop("DATABASE_URL", None)
            lite = start_server(
                "litellm",
                pinned(
                    [
                        str(litellm_bin),
                        "--config",
                        str(cfg),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--num_workers",
                        "1",
                    ],
                    layout["sut"],
                ),
                env,
                args.logdir,
            )
            running.append(lite)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            wait_ready(lite, url, "fake-gpt", {}, args.start_timeout)
            print(f"litellm ready on port {port}", flush=True)
            results.append(
                measure("litellm", url, "fake-gpt", {}, lite.proc.pid, args, layout["load"], fake_url)
            )
            lite.stop()

    section = render(results, args, layout)
    print()
    print(section)
    if args.out:
        write_out(args.out, section)
        print(f"results written to {args.out}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    failed = [
        f"{r.name} {p.name}: {p.errors}/{p.requests} errors ({p.error_detail.strip()})"
        for r in results
        for p in r.phases
        if p.requests == 0 or p.error_rate > args.max_error_rate
    ]
    if failed:
        print(
            f"FAIL: error rate above {args.max_error_rate:.2%}:\n  " + "\n  ".join(failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_client":
        client_entry(sys.argv[2])
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
