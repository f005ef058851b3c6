"""The parent process of ``python -m gateway --workers N``: uvicorn's supervisor, with a SIGHUP that
reloads the routing config in every worker instead of restarting them (``gateway/config_sync.py``).

Imported by the parent, so it stays light: no application modules.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from uvicorn.supervisors import Multiprocess

logger = logging.getLogger("uvicorn.error")


def status_dir(supervisor_pid: int) -> Path:
    """Where the workers of one parent (without Redis) leave their config status files."""
    return Path(tempfile.gettempdir()) / f"prism-config-{supervisor_pid}"


def prepare_supervisor() -> None:
    """Tell the workers who their parent is (they ask it to fan a reload out) and give them a status
    directory, removed at exit. Call in the parent before the workers start."""
    os.environ["GATEWAY_SUPERVISOR_PID"] = str(os.getpid())
    directory = status_dir(os.getpid())
    directory.mkdir(parents=True, exist_ok=True)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


class PrismMultiprocess(Multiprocess):
    """uvicorn's worker supervisor, except that SIGHUP reloads the routing config in every worker
    (forwarded to each, ``gateway/config_sync.py``) instead of restarting them all: no start-up cost,
    and circuits, canary states and open streams survive."""

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, forwarding it to %d workers (config reload).", len(self.processes))
        for process in self.processes:
            if process.pid is not None and process.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)
