"""Start the real gateway under uvicorn on a loopback port of its own, for integration tests.

The port cannot be taken by another process (``tests/support/ports.py``): under uvicorn the gateway
serves on a socket this process bound and held until the gateway served on it; ``python -m gateway``
binds by itself, so its start-up moves to a fresh port when its port was taken, and only its own
listener counts as ready."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.support.ports import candidate_port, listened_by, listening_socket

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    config_path: Path
    log_file: IO[bytes]
    listener: socket.socket | None = None
    """This process's copy of the socket the gateway serves on (uvicorn entry), held until the gateway
    is ready, then closed: from then on the gateway alone holds the port, so a killed gateway refuses
    connections like any dead server instead of leaving them queued on our copy."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def reload_config(self, text: str, *, timeout: float = 5.0) -> None:
        """Rewrite the routing file and SIGHUP the server; waits until the reload is logged."""
        before = self.log().count("config_loaded")
        self.config_path.write_text(text)
        self.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count("config_loaded") > before:
                return
            time.sleep(0.05)
        raise TimeoutError(f"config reload not seen in the log:\n{self.log()[-3000:]}")

    def stop(self, *, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        if self.listener is not None:
            self.listener.close()
        return int(self.process.returncode)


def start_gateway(
    tmp_path: Path,
    *,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    ready_timeout: float = 40.0,
    entry: str = "uvicorn",
) -> GatewayProcess:
    """``entry="gateway"`` runs ``python -m gateway`` (the production entry point: its own
    drain and exit status) instead of uvicorn."""
    config_path = tmp_path / "prism.yaml"
    config_path.write_text(config if config is not None else (ROOT / "config" / "prism.yaml").read_text())
    if entry == "gateway":
        for _ in range(PORT_ATTEMPTS):
            gateway = _start(tmp_path, config_path, None, env, workers, ready_timeout, entry)
            if gateway is not None:
                return gateway
        raise RuntimeError(f"python -m gateway: its port was taken by another process {PORT_ATTEMPTS} times")
    listener = listening_socket()
    try:
        gateway = _start(tmp_path, config_path, listener, env, workers, ready_timeout, entry)
    except BaseException:
        listener.close()
        raise
    assert gateway is not None  # an inherited socket cannot be taken
    return gateway


PORT_ATTEMPTS = 5


def _start(
    tmp_path: Path,
    config_path: Path,
    listener: socket.socket | None,
    env: Mapping[str, str] | None,
    workers: int,
    ready_timeout: float,
    entry: str,
) -> GatewayProcess | None:
    """Start and wait for ``/readyz``; ``None`` when the port turned out to be another process's."""
    port = int(listener.getsockname()[1]) if listener is not None else candidate_port()
    log_path = tmp_path / f"gateway-{port}.log"
    full_env = {
        **os.environ,
        "GATEWAY_CONFIG": str(config_path),
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/prism-{port}.db",
        "GATEWAY_AUTH_ENABLED": "false",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_ENV": "test",
        "OPENBLAS_NUM_THREADS": "1",
        "GATEWAY_USAGE_SPILL_DIR": str(tmp_path / "spill"),
        **(env or {}),
    }
    if "PROMETHEUS_MULTIPROC_DIR" not in (env or {}):
        # Never inherit one from the test process (a test may have left a deleted directory there).
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    pass_fds: tuple[int, ...] = ()
    if listener is not None:
        command = [sys.executable, "-m", "tests.support.serve_fd", "--fd", str(listener.fileno())]
        command += ["--workers", str(workers)]
        pass_fds = (listener.fileno(),)
    else:
        command = [sys.executable, "-m", "gateway"]
        full_env.update(GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(port), GATEWAY_WORKERS=str(workers))
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        pass_fds=pass_fds,
        start_new_session=listener is None,  # its own process group: whose listener it is, is checked
    )
    gateway = GatewayProcess(
        process=process,
        port=port,
        log_path=log_path,
        config_path=config_path,
        log_file=log_file,
        listener=listener,
    )
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_file.close()
            if listener is None and listened_by(port, process.pid) is False:
                return None  # another process holds the port: try a fresh one
            raise RuntimeError(f"gateway exited with {process.returncode}:\n{gateway.log()[-5000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{gateway.url}/readyz", timeout=1.0).status_code == 200:
                if listener is not None:
                    listener.close()  # the child serves on its own inherited copy
                    gateway.listener = None
                    return gateway
                if listened_by(port, process.pid):
                    return gateway
                gateway.stop()  # the answer came from another process's listener
                return None
        time.sleep(0.1)
    gateway.stop()
    raise TimeoutError(f"gateway not ready in {ready_timeout}s:\n{gateway.log()[-5000:]}")


@contextlib.contextmanager
def running_gateway(tmp_path: Path, **kwargs: object) -> Iterator[GatewayProcess]:
    gateway = start_gateway(tmp_path, **kwargs)  # type: ignore[arg-type]
    try:
        yield gateway
    finally:
        gateway.stop()
