"""An OS sandbox for untrusted Python: bubblewrap namespaces plus rlimits, one process tree per run.

A run is ``prlimit <limits> -- bwrap <namespaces and mounts> -- python3 -I -S -`` with the code on
stdin. What the kernel enforces (docs/tools.md has the measured start-up cost and the attack list):

- **namespaces** (``--unshare-all --unshare-user``): no network (only a down loopback), a new PID
  namespace (the host's processes are invisible, ``/proc`` shows only the sandbox's), new IPC, UTS
  and cgroup namespaces; no capabilities (``--cap-drop ALL``), no further user namespaces.
- **filesystem**: an empty root with only ``ro_binds`` (default ``/usr``) mounted read-only, a
  fresh ``/proc``, a minimal read-only ``/dev`` (null, zero, random, urandom, tty), and a
  size-capped tmpfs at ``/scratch`` — the only writable place. No ``/etc``, ``/home``, ``/work``,
  ``/tmp`` of the host.
- **limits** (rlimits, inherited by every process of the run): CPU seconds, address space, number
  of processes (of the run's own uid), file size, open files, no core dumps; a wall-clock timeout
  after which the whole tree is killed; stdout/stderr capped (the run is killed past the cap).
- **system calls**: a seccomp deny-list (``seccomp.py``: io_uring, userfaultfd, bpf, perf, key
  rings, ptrace, mount and namespace calls, ...) fails them with EPERM.
- **environment**: cleared (``--clearenv``; the process is also started with an empty one), so no
  gateway secret reaches it; ``--die-with-parent`` and ``--new-session`` tie it to the gateway.

As root, run *i* runs as its own uid (``uid_base + i``) so the process limit counts that run only;
as another user, the limit counts that user's tasks and is raised by their current number.
Nothing here ever runs code without the sandbox: if bubblewrap cannot start, the run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.config.tools import SandboxLimits
from gateway.tools import cgroup, seccomp

log = structlog.get_logger("prism.tools")


class SandboxUnavailable(Exception):
    """The sandbox cannot be set up here (no bubblewrap, no user namespaces, ...)."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    exit_code: int | None
    """The interpreter's exit status; ``None`` when it was killed by a signal or the timeout."""
    signal: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_exceeded: bool
    duration_s: float
    oom_kills: int = 0
    """Processes of the run the kernel killed for the run's memory cgroup limit."""


SETPRIV = "/usr/bin/setpriv"
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_INTERPRETERS = (Path("/usr/bin/python3"), Path("/usr/local/bin/python3"))


class Sandbox:
    def __init__(
        self, limits: SandboxLimits | None = None, *, prlimit: Path = Path("/usr/bin/prlimit")
    ) -> None:
        self.limits = limits or SandboxLimits()
        self._prlimit = prlimit
        self._slots: asyncio.Queue[int] | None = None
        self._root = os.geteuid() == 0
        self._cgroup_base: Path | None = None
        if self._root and self.limits.cgroup != "off":
            self._cgroup_base = cgroup.discover()
        self._cgroup_procs: dict[int, Path] = {}
        self.python = self.limits.python or next(
            (path for path in _INTERPRETERS if os.access(path, os.X_OK)), _INTERPRETERS[0]
        )

    # -- the command ------------------------------------------------------------------------------

    def bwrap_args(self, *, seccomp_fd: int | None = None, status_fd: int | None = None) -> list[str]:
        lim = self.limits
        args = [
            str(lim.bwrap),
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--uid", "65534",
            "--gid", "65534",
            "--hostname", "sandbox",
            "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
            "--setenv", "HOME", "/scratch",
            "--setenv", "TMPDIR", "/scratch",
            "--setenv", "LANG", "C.UTF-8",
            "--setenv", "PYTHONIOENCODING", "utf-8",
        ]  # fmt: skip
        for path in lim.ro_binds:
            args += ["--ro-bind", str(path), str(path)]
        for name in _ROOT_LINKS:  # merged-/usr systems: /lib -> usr/lib and so on
            host = Path("/") / name
            if host.is_symlink() and (Path("/usr") / name).exists():
                args += ["--symlink", f"usr/{name}", f"/{name}"]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        if status_fd is not None:  # bubblewrap writes {"exit-code": n} there once the program ran
            args += ["--json-status-fd", str(status_fd)]
        args += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(lim.scratch_mb * 1024 * 1024),
            "--tmpfs", "/scratch",
            "--chdir", "/scratch",
            "--remount-ro", "/dev",
            "--remount-ro", "/",
            "--",
            str(self.python), "-I", "-S", "-B", "-",
        ]  # fmt: skip
        return args

    def command(
        self, *, extra_tasks: int = 0, seccomp_fd: int | None = None, status_fd: int | None = None
    ) -> list[str]:
        lim = self.limits
        memory = lim.memory_mb * 1024 * 1024
        file_size = lim.scratch_mb * 1024 * 1024
        return [
            str(self._prlimit),
            f"--as={memory}:{memory}",
            f"--cpu={lim.cpu_s}:{lim.cpu_s + 1}",
            f"--nproc={lim.max_processes + extra_tasks}:{lim.max_processes + extra_tasks}",
            f"--fsize={file_size}:{file_size}",
            f"--nofile={lim.max_open_files}:{lim.max_open_files}",
            "--core=0:0",
            "--",
            *self.bwrap_args(seccomp_fd=seccomp_fd, status_fd=status_fd),
        ]

    # -- running ----------------------------------------------------------------------------------

    def check_installed(self) -> None:
        lim = self.limits
        if not os.access(lim.bwrap, os.X_OK):
            raise SandboxUnavailable(f"bubblewrap is not installed ({lim.bwrap}); apt-get install bubblewrap")
        if not os.access(self._prlimit, os.X_OK):
            raise SandboxUnavailable(
                f"prlimit is not installed ({self._prlimit}); apt-get install util-linux"
            )
        if not any(self.python.is_relative_to(path) for path in lim.ro_binds):
            raise SandboxUnavailable(
                f"the interpreter {self.python} is not under a read-only bind {lim.ro_binds}"
            )
        if not os.access(self.python, os.X_OK):
            raise SandboxUnavailable(f"the interpreter {self.python} is not installed")
        if self._cgroup_base is not None and not os.access("/bin/sh", os.X_OK):
            raise SandboxUnavailable("/bin/sh is needed to join the run's memory cgroup")
        if lim.cgroup == "required" and self._cgroup_base is None:
            raise SandboxUnavailable(
                "tools.sandbox.cgroup is required but no writable memory cgroup was found "
                "(the gateway must run as root with a cgroup-v1 memory hierarchy)"
            )
        if lim.seccomp and not seccomp.supported():
            raise SandboxUnavailable(
                "no seccomp filter for this architecture; set tools.sandbox.seccomp: false to run without one"
            )

    async def run(self, code: str, *, timeout_s: float | None = None) -> RunOutcome:
        """Run ``code`` in a fresh sandbox. Raises :class:`SandboxUnavailable` when the sandbox cannot
        be set up; everything the code does (crash, limits, timeout) is in the outcome."""
        self.check_installed()
        if self._slots is None:
            self._slots = asyncio.Queue()
            for slot in range(self.limits.max_concurrency):
                self._slots.put_nowait(slot)
        slot = await self._slots.get()
        try:
            return await self._run(code, slot, timeout_s or self.limits.timeout_s)
        finally:
            try:
                if self._root:
                    await self._wait_until_gone(self.limits.uid_base + slot)
            finally:
                self._slots.put_nowait(slot)

    async def _wait_until_gone(self, uid: int) -> None:
        """The kernel kills a dead PID namespace's processes asynchronously; the slot is reused
        only once its uid owns no live task, so the next run does not inherit a spent budget."""
        for _ in range(1000):  # at most ~5 s: there is no event to wait on, only /proc to read
            live, _zombies = await asyncio.to_thread(tasks_of_uid, uid)
            if not live:
                return
            await asyncio.sleep(0.005)

    async def _run(self, code: str, slot: int, timeout_s: float) -> RunOutcome:
        lim = self.limits
        drop: list[str] = []
        uid = os.getuid()
        if self._root:
            # ``setpriv`` (util-linux) rather than ``create_subprocess_exec(user=, group=)``: uvloop,
            # the gateway's event loop, refuses those arguments.
            uid = lim.uid_base + slot
            drop = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        # Tasks the uid already has count against the limit: the gateway's own (not root), and
        # zombies of earlier runs that the host's init has not reaped yet (bubblewrap leaves one).
        extra = sum(await asyncio.to_thread(tasks_of_uid, uid))
        join: list[str] = []
        procs = await self._slot_cgroup(uid) if self._root else None
        if procs is not None:
            join = ["/bin/sh", "-c", cgroup.JOIN, str(procs)]
        kills_before = cgroup.oom_kills(procs) if procs is not None else 0
        filter_fd = _seccomp_memfd() if lim.seccomp else None
        status_read, status_write = os.pipe()
        os.set_blocking(status_read, False)
        started = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *drop,
                *join,
                *self.command(extra_tasks=extra, seccomp_fd=filter_fd, status_fd=status_write),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                cwd="/",
                start_new_session=True,
                close_fds=True,
                pass_fds=(status_write,) if filter_fd is None else (status_write, filter_fd),
            )
        except OSError as exc:
            os.close(status_read)
            raise SandboxUnavailable(f"the sandbox could not be started: {exc}") from None
        finally:
            os.close(status_write)
            if filter_fd is not None:
                os.close(filter_fd)
        exceeded = asyncio.Event()
        timed_out = False
        out, err = bytearray(), bytearray()  # filled as the program writes: partial on a timeout
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(
                    _read_capped(proc.stdout, out, lim.max_output_bytes, exceeded, proc),
                    _read_capped(proc.stderr, err, lim.max_output_bytes, exceeded, proc),
                    _feed(proc, code.encode("utf-8", "surrogatepass")),
                )
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            _kill(proc)
            await _reap(proc)
            status = _read_all(status_read)
        duration = time.perf_counter() - started
        code_ = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        if code_ < 0:
            sig: int | None = -code_
        elif code_ > 128 and not timed_out:
            sig = code_ - 128  # bubblewrap reports a child killed by a signal as 128 + signal
        else:
            sig = None
        if b'"exit-code"' not in status and not timed_out and not exceeded.is_set() and code_ == 1:
            # bubblewrap stopped before the program ran (its own message is on stderr); the
            # program cannot fake this: the status document is written by bubblewrap's outer process.
            raise SandboxUnavailable(
                f"the sandbox could not be set up: {err.decode(errors='replace').strip()}"
            )
        return RunOutcome(
            exit_code=None if (sig is not None or timed_out) else code_,
            signal=sig if not timed_out else signal.SIGKILL,
            stdout=bytes(out),
            stderr=bytes(err),
            timed_out=timed_out,
            output_exceeded=exceeded.is_set(),
            duration_s=duration,
            oom_kills=cgroup.oom_kills(procs) - kills_before if procs is not None else 0,
        )

    async def _slot_cgroup(self, uid: int) -> Path | None:
        """The slot's memory cgroup (made once per slot), or ``None`` without a cgroup hierarchy."""
        if self._cgroup_base is None:
            return None
        procs = self._cgroup_procs.get(uid)
        if procs is None:
            limit = self.limits.run_memory_mb * 1024 * 1024
            try:
                procs = await asyncio.to_thread(cgroup.prepare, self._cgroup_base, uid=uid, limit_bytes=limit)
            except OSError as exc:
                if self.limits.cgroup == "required":
                    raise SandboxUnavailable(f"the run's memory cgroup could not be made: {exc}") from None
                log.warning("sandbox_cgroup_unavailable", uid=uid, error=str(exc))
                return None
            self._cgroup_procs[uid] = procs
        return procs


def _seccomp_memfd() -> int:
    """The seccomp program in a memory file, rewound, for bubblewrap to read (``--seccomp FD``)."""
    fd = os.memfd_create("prism-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, seccomp.deny_list_program())
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()


def _read_all(fd: int) -> bytes:
    """What bubblewrap wrote to its status pipe (every writer is gone: the read does not block)."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


async def _read_capped(
    stream: asyncio.StreamReader | None,
    buffer: bytearray,
    limit: int,
    exceeded: asyncio.Event,
    proc: asyncio.subprocess.Process,
) -> None:
    assert stream is not None
    while chunk := await stream.read(65536):
        room = limit - len(buffer)
        if len(chunk) > room:
            buffer += chunk[:room]
            exceeded.set()
            _kill(proc)
            break
        buffer += chunk


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for the killed tree and drain its pipes to EOF, so every transport closes (the kernel
    keeps at most a pipe buffer of output for a killed run; the bound is only a safety net)."""
    with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
        async with asyncio.timeout(5):
            await proc.communicate()
    if proc.returncode is None:
        await proc.wait()


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the run's process group (bubblewrap); its PID namespace dies with it."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def tasks_of_uid(uid: int) -> tuple[int, int]:
    """``(live tasks, zombies)`` of ``uid`` now, from ``/proc``. Threads count as tasks and zombies
    still count against RLIMIT_NPROC until their parent — for an orphan, the host's init — reaps them."""
    live = zombies = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] in ("Z", "X"):
            zombies += 1
        else:
            live += int(fields[17])  # num_threads
    return live, zombies
