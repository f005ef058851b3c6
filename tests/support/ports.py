"""Loopback ports for the servers tests start, with no window in which another process can take them.

Other test runs on the machine pick spare ports too. Guessing a port (bind port 0, read the number,
close, hand the number to a child) leaves a window between the close and the child's bind: another
process may bind the port in between (the child then fails to start) or, worse, already listen
there and answer the readiness probe in place of our server. Two ways out, by what the server can do:

* :func:`listening_socket` — the server can take an inherited socket (the gateway under uvicorn,
  ``python -m tests.support.serve_fd``). The port is bound here (port 0: the kernel picks a free
  one) and listening before the child starts; the child serves on that very socket, and this
  process closes its copy only once the child answers. The port is never free between being
  chosen and being served, so nothing can race for it; once the child dies it is free again (a
  killed server refuses connections, as it should). This is the default for the gateway
  (``start_gateway``).
* :func:`candidate_port` + :func:`listened_by` — the server must bind by itself (``redis-server``,
  ``python -m gateway``). Its start-up is retried on a fresh port when the port turns out to be taken
  (the child exits: EADDRINUSE), and it counts as started only once the port's listening socket
  belongs to the child's own process group (Linux ``/proc``): a foreign listener can neither fail
  the test nor pass for our server. The race still happens; it can no longer produce a wrong result.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

HOST = "127.0.0.1"


def listening_socket(backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to a kernel-chosen loopback port and listening, inheritable by a child
    (``subprocess.Popen(pass_fds=[sock.fileno()])``). Close this copy once the child serves on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, 0))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def candidate_port() -> int:
    """A port that was free a moment ago: only for a server that binds by itself and whose start is
    retried on a fresh candidate and checked with :func:`listened_by` (see the module docstring)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def unused_port() -> socket.socket:
    """A port nothing listens on, held (bound, not listening) for as long as the socket is open:
    connections to it are refused. For tests that need a dead address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    return sock


def listened_by(port: int, pgid: int) -> bool | None:
    """Whether ``port``'s listening socket belongs to a process of group ``pgid``: ``True`` ours,
    ``False`` another process's, ``None`` nobody listens (yet)."""
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    listening.add(f"socket:[{parts[9]}]")
    if not listening:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != pgid:
                continue
            if any(os.readlink(fd) in listening for fd in (proc / "fd").iterdir()):
                return True
        except OSError:
            continue
    return False
