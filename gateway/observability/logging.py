"""structlog configuration: JSON in production, readable console in development.

Request-scoped fields (request id, trace id, user) travel in contextvars and
are merged into every event; log calls below the configured level cost a
dictionary lookup, not a formatting pass.

Every line of the process goes through the same renderer: the standard library's
loggers (uvicorn, alembic, SQLAlchemy, asyncio, ``warnings``) propagate to one root
handler whose ``ProcessorFormatter`` renders them exactly like structlog's own
events (``event``, ``level``, ``logger``, ``timestamp``, ``exception``), so a log
shipper never meets a line that is not JSON (issue #26).
"""

from __future__ import annotations

import logging
import sys

import structlog

_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "sqlalchemy", "py.warnings")
"""Loggers that install handlers of their own (uvicorn's ``LOGGING_CONFIG``, alembic's
``fileConfig``): their handlers are removed and they propagate to the root handler."""


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(*, level: str = "INFO", fmt: str = "json") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*_shared_processors(), structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    # uvicorn's own loggers keep uvicorn's level (``--log-level``); SQLAlchemy's engine echo stays off.
    logging.getLogger("sqlalchemy.engine").setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)  # a DeprecationWarning becomes a JSON event of ``py.warnings``
