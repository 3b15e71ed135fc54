"""Opening the results store: the URL, the engine, the alembic upgrade.

SQLite file ``OUT/leukotrack.sqlite`` by default; any SQLAlchemy URL (e.g.
``postgresql+psycopg://user@host/db``) through ``LEUKOTRACK_DATABASE_URL``. SQLite runs in WAL mode
with a generous busy timeout, so that a second ``batch`` on the same output waits instead of failing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text

__all__ = ["DATABASE_URL_ENV", "database_url", "make_engine", "migrate"]

#: The environment variable naming the database URL.
DATABASE_URL_ENV = "LEUKOTRACK_DATABASE_URL"
#: The SQLite file inside the output folder when no URL is configured.
SQLITE_NAME = "leukotrack.sqlite"
_MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(out_dir: Path | None = None, url: str | None = None) -> str:
    """The store's URL: ``url``, else ``$LEUKOTRACK_DATABASE_URL``, else SQLite in ``out_dir``."""
    chosen = url or os.environ.get(DATABASE_URL_ENV)
    if chosen:
        return chosen
    if out_dir is None:
        raise ValueError(f"no database: give an output folder or set {DATABASE_URL_ENV}")
    return f"sqlite:///{(Path(out_dir) / SQLITE_NAME).resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, foreign keys and a 120 s busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 120})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=120000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the alembic migrations shipped in the package
    (``"base"`` downgrades to the empty database).

    One process migrates at a time: PostgreSQL through a transaction-scoped advisory lock, SQLite
    through an exclusive lock on a file beside the database.
    """
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    with contextlib.ExitStack() as stack:
        if database:
            handle = stack.enter_context(Path(f"{database}.migrate.lock").open("a"))
            fcntl.flock(handle, fcntl.LOCK_EX)
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(5829301)"))
            config.attributes["connection"] = connection
            if revision == "base":
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)
