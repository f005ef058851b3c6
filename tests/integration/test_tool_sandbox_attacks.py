"""The Python tool's sandbox under attack: real bubblewrap processes, real limits, real kernel.

Each test runs hostile code through the registry (as the tool loop will) and checks two things: the
attack is contained with a clear result, and the test process — standing in for the gateway — is
unaffected (still alive, its environment and files unread, its event loop responsive).
"""

from __future__ import annotations

import ast
import asyncio
import errno
import json
import os
import platform
import signal
import socket
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

import gateway
from gateway.config.tools import SandboxLimits, ToolsConfig
from gateway.tools import cgroup, seccomp
from gateway.tools.base import ToolCallResult
from gateway.tools.builtin import build_registry
from gateway.tools.registry import ToolRegistry
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
# No skip without bubblewrap: a security test that silently skips proves nothing. The probe's
# reason ("bubblewrap is not installed ...; apt-get install bubblewrap") is the failure message;
# .ci/install-tools.sh installs it.

SECRET = "prism-test-secret-5f1c0e"


def _registry(**limits: Any) -> ToolRegistry:
    sandbox = SandboxLimits(**{"timeout_s": 10.0, **limits})
    return build_registry(ToolsConfig(enabled=("python",), timeout_s=30, sandbox=sandbox))


async def _run(code: str, **limits: Any) -> ToolCallResult:
    registry = _registry(**limits)
    assert await registry.probe() == {}
    return await registry.call("python", json.dumps({"code": code}), call_id="call_attack")


def _payload(result: ToolCallResult) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(result.content)
    return value


def _stdout(result: ToolCallResult) -> str:
    payload = _payload(result)
    text: str = payload["stdout"] if result.ok else payload["error"]["stdout"]
    return text


def _host_has(path: str) -> bool:
    return Path(path).exists()


def _leftover_sandbox_processes() -> list[int]:
    """Processes still running as one of the sandbox uids (root) — must be none after a run."""
    base = SandboxLimits().uid_base
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int((entry / "status").read_text().split("Uid:")[1].split()[0])
        except (OSError, IndexError):
            continue
        if base <= uid < base + 256:
            pids.append(int(entry.name))
    return pids


async def test_etc_passwd_and_host_files_are_not_visible() -> None:
    repo_file = Path(gateway.__file__)
    hidden = ["/etc/passwd", "/etc/shadow", "/root", "/home", "/work", "/tmp", str(repo_file), sys.prefix]
    code = f"""
import os
for path in {hidden!r}:
    print(path, os.path.exists(path))
print(sorted(os.listdir("/")))
"""
    result = await _run(code)
    assert result.ok, result.content
    lines = _stdout(result).splitlines()
    assert all(line.endswith(" False") for line in lines[:-1]), lines
    assert sorted(ast.literal_eval(lines[-1])) == [
        "bin",
        "dev",
        "lib",
        "lib64",
        "proc",
        "sbin",
        "scratch",
        "usr",
    ]


async def test_the_gateways_environment_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_JWT_SECRET", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code = f"""
import os
print(dict(os.environ))
for path in ["/proc/self/environ", "/proc/1/environ", "/proc/2/environ", "/proc/{os.getpid()}/environ"]:
    try:
        print(path, open(path, "rb").read())
    except OSError as exc:
        print(path, "error", exc.errno)
"""
    result = await _run(code)
    assert result.ok, result.content
    out = _stdout(result)
    assert f"/proc/{os.getpid()}/environ error 2" in out  # the gateway's pid does not exist in there
    assert SECRET not in out and "GATEWAY_" not in out and "OPENAI" not in out
    env = ast.literal_eval(out.splitlines()[0])
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONIOENCODING", "PWD"}
    assert os.environ["GATEWAY_JWT_SECRET"] == SECRET  # the test process itself still has it


async def test_proc_shows_only_the_sandboxs_processes() -> None:
    code = "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    result = await _run(code)
    assert result.ok
    pids = json.loads(_stdout(result))
    assert max(pids) <= 3, pids  # bubblewrap's init (1), the interpreter (2); never the host's


async def test_no_network_tcp_to_local_redis_and_dns_fail() -> None:
    with socket.create_connection(("127.0.0.1", 6379), timeout=2):  # reachable from the test process
        pass
    code = """
import socket
try:
    socket.create_connection(("127.0.0.1", 6379), timeout=2)
    print("tcp connected")
except OSError as exc:
    print("tcp", type(exc).__name__, exc.errno)
try:
    socket.getaddrinfo("redis.invalid", 6379)
    print("dns resolved")
except OSError as exc:
    print("dns", type(exc).__name__)
print("interfaces", [name for _, name in socket.if_nameindex()])
"""
    result = await _run(code)
    assert result.ok, result.content
    out = _stdout(result)
    assert "tcp ConnectionRefusedError" in out  # the sandbox's own, empty loopback
    assert "dns gaierror" in out
    assert "interfaces ['lo']" in out


async def test_fork_bomb_is_stopped_by_the_process_limit() -> None:
    code = """
import os
children = 0
try:
    while True:
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        children += 1
except OSError as exc:
    print("fork refused after", children, exc.errno)
"""
    result = await _run(code, timeout_s=3.0, max_processes=16)
    # The parent sees EAGAIN at the limit and exits; its PID namespace dies with it (children too).
    assert result.ok or result.error_code in {"timeout", "limit_exceeded"}, result.content
    refused = [line for line in _stdout(result).splitlines() if line.startswith("fork refused after")]
    assert refused and int(refused[0].split()[3]) < 16
    child = await asyncio.create_subprocess_exec("true")  # the test process can still fork
    assert await child.wait() == 0
    await eventually(lambda: not _leftover_sandbox_processes(), "every sandbox process is gone")


async def test_memory_bomb_gets_memory_error() -> None:
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))"
    result = await _run(code, memory_mb=128)
    assert result.ok
    payload = _payload(result)
    assert payload["exit_code"] == 1 and "MemoryError" in payload["stderr"]


async def test_infinite_loop_is_killed_by_the_cpu_limit() -> None:
    result = await _run("while True:\n    pass", cpu_s=1, timeout_s=20.0)
    assert result.error_code == "limit_exceeded", result.content
    assert _payload(result)["error"]["limit"] == "cpu"


async def test_sleeping_past_the_timeout_is_killed_on_the_wall_clock() -> None:
    loop = asyncio.get_running_loop()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = loop.time()
    result = await _run("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", timeout_s=1.5)
    elapsed = loop.time() - started
    task.cancel()
    assert result.error_code == "timeout"
    assert "1.5 s" in (result.error_message or "")
    assert _payload(result)["error"]["stdout"] == "sleeping\n"  # the partial output is kept
    assert elapsed < 10
    assert ticks >= 5  # the event loop kept running while the sandbox slept
    await eventually(lambda: not _leftover_sandbox_processes(), "every sandbox process is gone")


async def test_huge_output_is_cut_and_the_run_killed() -> None:
    result = await _run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", max_output_bytes=65536)
    assert result.error_code == "limit_exceeded"
    error = _payload(result)["error"]
    assert error["limit"] == "output" and error["stdout_cut"] is True
    assert len(result.content) <= ToolsConfig().max_result_chars


async def test_writing_outside_scratch_fails_and_scratch_is_capped() -> None:
    code = """
import os
for path in ["/usr/prism-evil", "/prism-evil", "/proc/prism-evil", "/dev/prism-evil", "/dev/shm/prism-evil"]:
    try:
        open(path, "w").write("x")
        print(path, "written")
    except OSError as exc:
        print(path, "refused", exc.errno)
open("/scratch/ok.txt", "w").write("fine")
print("scratch", open("/scratch/ok.txt").read())
try:
    with open("/scratch/big", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1024 * 1024))
    print("big written")
except OSError as exc:
    print("big refused", exc.errno)
"""
    result = await _run(code, scratch_mb=4)
    assert result.ok, result.content
    out = _stdout(result)
    lines = out.splitlines()
    assert all(" refused " in line for line in lines[:5]), lines
    assert "scratch fine" in out and "big refused" in out  # 4 MB tmpfs (and RLIMIT_FSIZE)
    assert not _host_has("/usr/prism-evil") and not _host_has("/prism-evil")


async def test_killing_the_parent_and_everyone_is_contained() -> None:
    bystander = await asyncio.create_subprocess_exec("sleep", "60")  # a host process it must not reach
    try:
        code = """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
    print("sent to parent", os.getppid())
except OSError as exc:
    print("parent refused", exc.errno)
os.system("kill -9 -1")
print("still here")
"""
        result = await _run(code)
        # kill -9 -1 inside reaches every process of the sandbox, the program included
        assert result.error_code == "limit_exceeded", result.content
        assert _payload(result)["error"]["limit"] == "killed"
        assert bystander.returncode is None
        os.kill(os.getpid(), 0)  # the test process lives
        again = await _run("print('next run fine')")
        assert again.ok and "next run fine" in _stdout(again)
    finally:
        bystander.send_signal(signal.SIGTERM)
        await bystander.wait()


async def test_back_to_back_runs_in_one_slot_do_not_exhaust_the_process_budget() -> None:
    """Regression: bubblewrap leaves an orphan zombie per run that the host's init reaps lazily;
    zombies count against RLIMIT_NPROC, so a tight budget once failed after a few quick runs."""
    registry = _registry(max_concurrency=1, max_processes=4)
    assert await registry.probe() == {}
    for i in range(12):
        result = await registry.call("python", {"code": f"print({i})"}, call_id=f"c{i}")
        assert result.ok and _stdout(result) == f"{i}\n", (i, result.content)


async def test_concurrent_runs_each_get_their_own_limits() -> None:
    registry = _registry(timeout_s=10.0)
    assert await registry.probe() == {}
    code = json.dumps({"code": "import os\nprint(os.getpid(), sum(range(10**5)))"})
    results = await asyncio.gather(*(registry.call("python", code, call_id=f"c{i}") for i in range(6)))
    assert all(r.ok and _stdout(r).split()[1] == str(sum(range(10**5))) for r in results)


async def test_fails_closed_without_bubblewrap(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    registry = build_registry(
        ToolsConfig(enabled=("python", "calculator"), sandbox=SandboxLimits(bwrap=tmp_path / "no-bwrap"))
    )
    unavailable = await registry.probe()
    assert "bubblewrap is not installed" in unavailable["python"]
    assert registry.names == ["calculator"]
    assert [spec["function"]["name"] for spec in registry.specs()] == ["calculator"]
    result = await registry.call("python", {"code": f"open({str(marker)!r}, 'w')"}, call_id="c1")
    assert result.error_code == "unavailable" and "bubblewrap" in (result.error_message or "")
    assert not marker.exists()


async def test_fails_closed_when_the_interpreter_is_outside_the_sandbox(tmp_path: Path) -> None:
    registry = build_registry(
        ToolsConfig(enabled=("python",), sandbox=SandboxLimits(python=Path(sys.executable)))
    )
    unavailable = await registry.probe()
    if Path(sys.executable).is_relative_to("/usr"):
        pytest.skip("this interpreter lives under /usr")
    assert "not under a read-only bind" in unavailable["python"]


async def test_a_dying_gateway_takes_its_sandboxes_with_it(tmp_path: Path) -> None:
    """SIGKILL of the process that started a run (the gateway crashing) kills the run too:
    ``--die-with-parent`` plus the PID namespace, no orphan keeps running."""
    script = tmp_path / "gateway_stand_in.py"
    script.write_text(
        "import asyncio\n"
        "from gateway.tools.sandbox import Sandbox\n"
        "asyncio.run(Sandbox().run('import time\\nwhile True: time.sleep(1)', timeout_s=120))\n"
    )
    root = Path(gateway.__file__).parent.parent
    stand_in = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env={"PYTHONPATH": str(root)}
    )
    try:
        await eventually(_leftover_sandbox_processes, "the stand-in's sandbox is running")
        stand_in.kill()
        await stand_in.wait()
        await eventually(lambda: not _leftover_sandbox_processes(), "the sandbox died with its parent")
    finally:
        if stand_in.returncode is None:
            stand_in.kill()
            await stand_in.wait()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86-64's")
async def test_seccomp_denies_kernel_attack_surface() -> None:
    code = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
calls = [("ptrace", 101, (0, 0, 0, 0)), ("io_uring_setup", 425, (1, 0)), ("keyctl", 250, (0, 0, 0)),
         ("userfaultfd", 323, (0,)), ("bpf", 321, (0, 0, 0)), ("unshare", 272, (0x10000000,)),
         ("mount", 165, (0, 0, 0, 0, 0)), ("getpid", 39, ())]
for name, nr, args in calls:
    result = libc.syscall(nr, *args)
    print(name, result, ctypes.get_errno() if result == -1 else 0)
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("Seccomp:")][0])
"""
    result = await _run(code)
    assert result.ok, result.content
    lines = dict(line.split(" ", 1) for line in _stdout(result).splitlines() if " " in line)
    for name in ("ptrace", "io_uring_setup", "keyctl", "userfaultfd", "bpf", "unshare", "mount"):
        assert lines[name] == f"-1 {errno.EPERM}", (name, lines[name])
    assert lines["getpid"].split()[0] == "2"
    assert _stdout(result).splitlines()[-1] == "2"  # SECCOMP_MODE_FILTER


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 ABI is x86-64's")
async def test_a_foreign_syscall_abi_kills_the_program() -> None:
    code = "import ctypes\nprint('before', flush=True)\nctypes.CDLL(None).syscall(0x40000000 | 39)\nprint(1)"
    result = await _run(code)
    assert result.error_code == "limit_exceeded", result.content
    error = _payload(result)["error"]
    assert error["signal"] == signal.SIGSYS and error["limit"] == "syscall"
    assert "forbidden system call" in error["message"]
    assert error["stdout"] == "before\n"


async def test_fails_closed_without_a_seccomp_filter_for_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "supported", lambda machine=None: False)
    registry = build_registry(ToolsConfig(enabled=("python",)))
    assert "no seccomp filter for this architecture" in (await registry.probe())["python"]
    allowed = build_registry(ToolsConfig(enabled=("python",), sandbox=SandboxLimits(seccomp=False)))
    assert await allowed.probe() == {}  # the operator's explicit choice: namespaces and rlimits only


async def test_a_program_cannot_pose_as_a_broken_sandbox() -> None:
    """Set-up failures are told apart by bubblewrap's status document, not by the output."""
    result = await _run("import sys\nsys.stderr.write('bwrap: Can\\'t fork\\n')\nsys.exit(1)")
    assert result.ok, result.content
    assert _payload(result)["exit_code"] == 1


async def test_a_broken_sandbox_is_unavailable_not_a_program_error(tmp_path: Path) -> None:
    registry = build_registry(
        ToolsConfig(enabled=("python",), sandbox=SandboxLimits(ro_binds=(Path("/usr"), tmp_path / "gone")))
    )
    reason = (await registry.probe())["python"]
    assert "the sandbox could not be set up: bwrap: Can't find source path" in reason


NON_ROOT_RUN = """
import asyncio, json, os
from gateway.config.tools import SandboxLimits
from gateway.tools.sandbox import Sandbox

BOMB = '''
import os
n = 0
try:
    while True:
        if os.fork() == 0:
            import time
            time.sleep(3)
            os._exit(0)
        n += 1
except OSError as exc:
    print("refused after", n, exc.errno)
'''

async def main():
    sandbox = Sandbox(SandboxLimits(max_processes=8, timeout_s=10))
    bomb = await sandbox.run(BOMB)
    runs = [await sandbox.run(f"print({i})") for i in range(4)]
    outputs = [r.stdout.decode() for r in runs]
    print(json.dumps({"uid": os.getuid(), "bomb": bomb.stdout.decode(), "runs": outputs}))

asyncio.run(main())
"""


async def test_the_non_root_gateway_path(tmp_path: Path) -> None:
    """The image runs the gateway as a non-root user: the sandbox then runs as that user, and the
    process limit is raised by the tasks the user already has. Run a stand-in gateway as an
    unused uid (needs root to switch, and a system interpreter of this Python version)."""
    system_python = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not _host_has(str(system_python)):
        pytest.skip("needs root (to start a process as another uid) and /usr/bin/python3")
    version = await asyncio.create_subprocess_exec(
        str(system_python), "-c", "import sys; print(sys.version_info[:2])", stdout=asyncio.subprocess.PIPE
    )
    if (await version.communicate())[0].decode().strip() != str(sys.version_info[:2]):
        pytest.skip("/usr/bin/python3 is another Python version than the venv's packages")
    root = Path(gateway.__file__).parent.parent
    site = sysconfig.get_paths()["purelib"]
    stand_in = await asyncio.create_subprocess_exec(
        str(system_python), "-c", NON_ROOT_RUN,
        env={"PYTHONPATH": f"{root}:{site}"},
        cwd="/",
        user=62_000,
        group=62_000,
        extra_groups=[],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await stand_in.communicate()
    assert stand_in.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["uid"] == 62_000
    refused = report["bomb"].split()
    assert refused[:2] == ["refused", "after"] and int(refused[2]) < 8, report
    assert report["runs"] == ["0\n", "1\n", "2\n", "3\n"]


async def test_the_registry_timeout_kills_a_run_it_cancels() -> None:
    """The per-call bound of the registry (shorter than the sandbox's own here) cancels the run:
    the cancellation reaches the sandbox, which kills and reaps the tree on its way out."""
    registry = build_registry(
        ToolsConfig(enabled=("python",), timeout_s=1.0, sandbox=SandboxLimits(timeout_s=60.0, cpu_s=60))
    )
    assert await registry.probe() == {}
    result = await registry.call("python", {"code": "while True:\n    pass"}, call_id="c1")
    assert result.error_code == "timeout" and "1 s" in (result.error_message or "")
    await eventually(lambda: not _leftover_sandbox_processes(), "every sandbox process is gone")


async def test_a_multi_process_memory_bomb_is_bounded_by_the_runs_cgroup() -> None:
    """Each process stays under its RLIMIT_AS; together they pass the run's memory cgroup."""
    if os.geteuid() != 0 or cgroup.discover() is None:
        pytest.skip(
            "no writable cgroup-v1 memory hierarchy (tools.sandbox.cgroup: auto falls back to rlimits)"
        )
    code = """
import os, time
for i in range(4):
    if os.fork() == 0:
        try:
            block = b"\\x01" * (120 << 20)
            time.sleep(3)
        finally:
            os._exit(0)
print([os.waitstatus_to_exitcode(os.waitpid(-1, 0)[1]) for _ in range(4)])
"""
    result = await _run(code, run_memory_mb=256, memory_mb=256)
    assert result.ok, result.content  # the parent survives; the kernel killed children of the run
    payload = _payload(result)
    assert payload["oom_kills"] >= 1
    assert -signal.SIGKILL in json.loads(payload["stdout"])
    os.kill(os.getpid(), 0)


async def test_a_single_process_over_the_run_budget_is_killed_with_a_memory_reason() -> None:
    if os.geteuid() != 0 or cgroup.discover() is None:
        pytest.skip("no writable cgroup-v1 memory hierarchy")
    code = "blocks = []\nwhile True:\n    blocks.append(b'\\x01' * (16 << 20))"
    result = await _run(code, run_memory_mb=64, memory_mb=512)
    assert result.error_code == "limit_exceeded", result.content
    error = _payload(result)["error"]
    assert error["limit"] == "memory" and "more than 64 MB together" in error["message"]


def test_a_slots_cgroup_limit_can_be_lowered_and_raised() -> None:
    """Regression: with swap accounting, raising memory.limit_in_bytes above memsw's limit failed
    (EINVAL) and the run went without its cgroup."""
    base = cgroup.discover() if os.geteuid() == 0 else None
    if base is None:
        pytest.skip("no writable cgroup-v1 memory hierarchy")
    uid = SandboxLimits().uid_base + 250  # no slot uses it
    try:
        for megabytes in (64, 256, 32, 512):
            procs = cgroup.prepare(base, uid=uid, limit_bytes=megabytes << 20)
            assert (procs.parent / "memory.limit_in_bytes").read_text().strip() == str(megabytes << 20)
            assert procs.stat().st_uid == uid
    finally:
        (base / f"prism-sandbox-{uid}").rmdir()
