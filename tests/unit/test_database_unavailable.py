"""Which database errors mean "cannot reach the database" (503 + Retry-After) and which stay errors.

asyncpg's server-side refusals while Postgres starts or stops reach SQLAlchemy as a generic
``DBAPIError`` (not ``OperationalError``); before this check one of them answered a 500 in the
full-size ledger chaos run (scenario b: Postgres stopped and started under load)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from gateway.errors import DatabaseUnavailable, as_database_unavailable, sqlstate


@pytest.mark.parametrize(
    "orig",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CrashShutdownError("crash shutdown"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection does not exist"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_server_refusals_are_unavailable(orig: Exception) -> None:
    wrapped = sa_exc.DBAPIError("SELECT 1", None, orig)
    assert type(wrapped) is sa_exc.DBAPIError  # not OperationalError: the SQLSTATE decides
    assert isinstance(as_database_unavailable(wrapped), DatabaseUnavailable)


@pytest.mark.parametrize(
    "orig",
    [
        asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bad_data_and_bugs_stay_errors(orig: Exception) -> None:
    wrapped = sa_exc.DBAPIError("SELECT 1", None, orig)
    assert sqlstate(wrapped) == orig.sqlstate  # type: ignore[attr-defined]
    assert as_database_unavailable(wrapped) is None
