"""A private redis-server on a spare loopback port, for tests that stop or break Redis.

redis-server binds by itself, so its port is a candidate (``tests/support/ports.py``): a first start
that finds the port taken moves to a fresh one, and the server counts as started only when the
Redis answering on the port reports our child's pid (``INFO server``), never another process's.
A restart (``port=`` given) keeps its port: clients hold the URL; if another process took the port
while the server was down, the restart fails loudly instead of talking to the wrong server.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.support.ports import candidate_port

ATTEMPTS = 5


class RedisProcess:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.workdir = workdir
        self._fixed = port is not None
        self.port = port or candidate_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        for _ in range(1 if self._fixed else ATTEMPTS):
            if self._start_once():
                self._fixed = True  # later starts are restarts: same port
                return self
            self.port = candidate_port()
        raise RuntimeError(f"redis-server: no port of its own after {ATTEMPTS} attempts")

    def _start_once(self) -> bool:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
                *("--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.process.poll() is not None:  # could not bind: the port is another's
                    if self._fixed:
                        raise RuntimeError(f"redis-server could not start again on port {self.port}")
                    return False
                try:
                    pid = int(client.info("server")["process_id"])
                except redis.RedisError:
                    time.sleep(0.05)
                    continue
                if pid == self.process.pid:
                    return True
                time.sleep(0.05)  # another process's Redis answers: ours exits on its bind error
        finally:
            client.close()
        self.kill()
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class RedisServer:
    """One ``redis-server`` (or sentinel) process with the given arguments, stopped at the end."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None, tls: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.port = port or candidate_port()  # binds by itself; no retry (TLS, sentinel and cluster variants)
        self.workdir = workdir
        listen = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        self.command = [binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, command: list[str] | None = None) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            command or self.command, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: {command or self.command}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on {self.port} did not listen")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def servers(*started: RedisServer) -> Iterator[None]:
    try:
        yield
    finally:
        for server in started:
            server.kill()
