"""A memory bound for a whole sandbox run: one cgroup (v1 memory controller) per concurrency slot.

RLIMIT_AS bounds each process; a run of several processes could still hold ``max_processes ×
memory_mb``. Where the gateway runs as root and finds a writable cgroup-v1 memory hierarchy (this
machine), each slot gets ``<own memory cgroup>/prism-sandbox-<uid>`` with
``memory.limit_in_bytes = run_memory_mb``, its ``cgroup.procs`` owned by the slot's uid, and the
run joins it before exec (``sh -c 'echo $$ > cgroup.procs && exec ...'``): every process of the
run, and its tmpfs pages, are charged there, and past the limit the kernel's OOM killer picks a
process of the run — never one of the gateway's. The kill count (``oom_kill`` of
``memory.oom_control``) tells the result which limit hit. cgroup v2 needs delegation of a subtree
the gateway does not hold here; it is not used (docs/tools.md).
"""

from __future__ import annotations

import os
from pathlib import Path

JOIN = 'echo $$ > "$0" && exec "$@"'
"""The shell line that moves itself into the cgroup named by ``$0`` and becomes the command."""


def discover(proc_self: Path = Path("/proc/self")) -> Path | None:
    """This process's cgroup-v1 memory cgroup directory, if it exists and is writable."""
    try:
        membership = (proc_self / "cgroup").read_text()
        mountinfo = (proc_self / "mountinfo").read_text()
    except OSError:
        return None
    relative = None
    for line in membership.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            relative = path
    if relative is None:
        return None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, super_fields = left.split(), right.split()
        if len(super_fields) >= 3 and super_fields[0] == "cgroup" and "memory" in super_fields[2].split(","):
            root, mount_point = fields[3], fields[4]
            inside = os.path.relpath(relative, root) if relative.startswith(root) else relative.lstrip("/")
            directory = Path(mount_point) / inside
            if (directory / "memory.limit_in_bytes").exists() and os.access(directory, os.W_OK):
                return directory
    return None


def prepare(base: Path, *, uid: int, limit_bytes: int) -> Path:
    """The slot's cgroup (created or updated): the limit set, ``cgroup.procs`` owned by ``uid``.
    Returns the ``cgroup.procs`` path a run writes its pid to."""
    directory = base / f"prism-sandbox-{uid}"
    directory.mkdir(exist_ok=True)
    # With swap accounting, memory+swap must stay >= memory: raise it first, lower it last (one
    # of the two writes fails harmlessly); it keeps a run from swapping out to escape the limit.
    swap = directory / "memory.memsw.limit_in_bytes"
    _try_write(swap, limit_bytes)
    (directory / "memory.limit_in_bytes").write_text(str(limit_bytes))
    _try_write(swap, limit_bytes)
    for name in ("cgroup.procs", "tasks"):
        os.chown(directory / name, uid, uid)
    return directory / "cgroup.procs"


def _try_write(path: Path, value: int) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        pass


def oom_kills(procs: Path) -> int:
    """How many processes the kernel's OOM killer has killed in this cgroup so far."""
    try:
        text = (procs.parent / "memory.oom_control").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0
