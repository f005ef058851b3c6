"""``python -m tests.support.serve_fd --fd N [--workers W]``: the gateway under uvicorn, serving on an
inherited listening socket (``tests/support/ports.py``: the port is never released, so no other
process can take it between choosing it and serving on it).

It runs what ``uvicorn gateway.main:create_app --factory`` runs (``uvicorn.main.run``: one ``Server``,
or the ``Multiprocess`` supervisor for several workers) with the options of ``start_gateway``.
uvicorn's own ``--fd`` is not used: it labels the descriptor ``AF_UNIX``, which makes uvloop treat a
TCP listener as a Unix one (no client address in the ASGI scope); here the family and type are read
from the descriptor itself.
"""

from __future__ import annotations

import argparse
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        "gateway.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
