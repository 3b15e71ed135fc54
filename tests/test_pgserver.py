"""The throw-away PostgreSQL server of tests/pgserver.py, exercised through SQLAlchemy."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from tests.pgserver import PostgresServer, require_pg_bin


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    """An engine on ``leukotrack_test``, disposed after the test."""
    eng = create_engine(postgres_url)
    try:
        yield eng
    finally:
        eng.dispose()


def _server_processes(data_dir: Path) -> str:
    """``pgrep -a -f DATA_DIR``: the processes still running from that cluster."""
    result = subprocess.run(
        ["pgrep", "-a", "-f", str(data_dir)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def test_version_and_commit(engine: Engine) -> None:
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version()")).scalar_one()
        assert "PostgreSQL" in version
        assert conn.execute(text("SHOW server_encoding")).scalar_one() == "UTF8"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE scan (id serial PRIMARY KEY, label text NOT NULL)"))
        conn.execute(
            text("INSERT INTO scan (label) VALUES (:label)"),
            [{"label": "DWI"}, {"label": "ADC"}, {"label": "FLAIR ⍺"}],
        )
    with engine.connect() as conn:
        labels = conn.execute(text("SELECT label FROM scan ORDER BY id")).scalars().all()
    assert labels == ["DWI", "ADC", "FLAIR ⍺"]


def test_rollback_leaves_no_row(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rolled (id int PRIMARY KEY)"))
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("INSERT INTO rolled VALUES (1), (2)"))
        assert conn.execute(text("SELECT count(*) FROM rolled")).scalar_one() == 2
        trans.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rolled")).scalar_one() == 0


def test_read_committed_between_two_connections(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE shared (id int PRIMARY KEY)"))
    with engine.connect() as writer, engine.connect() as reader:
        assert writer.connection.dbapi_connection is not reader.connection.dbapi_connection
        reader_trans = reader.begin()
        level = reader.execute(text("SHOW transaction_isolation")).scalar_one()
        assert level == "read committed"

        writer_trans = writer.begin()
        writer.execute(text("INSERT INTO shared VALUES (1)"))
        # uncommitted: invisible to the reader, visible to the writer itself
        assert reader.execute(text("SELECT count(*) FROM shared")).scalar_one() == 0
        assert writer.execute(text("SELECT count(*) FROM shared")).scalar_one() == 1
        writer_trans.commit()
        # committed: the reader's next statement sees it, inside the same transaction
        assert reader.execute(text("SELECT count(*) FROM shared")).scalar_one() == 1
        reader_trans.commit()


def test_new_database_is_empty_and_separate(
    postgres_server: PostgresServer, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE only_in_main (id int)"))
    other_url = postgres_server.new_database("leukotrack_isolated")
    assert other_url.endswith(f":{postgres_server.port}/leukotrack_isolated")
    other = create_engine(other_url)
    try:
        with other.begin() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == (
                "leukotrack_isolated"
            )
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
            assert tables == 0
            conn.execute(text("CREATE TABLE only_in_other (id int)"))
    finally:
        other.dispose()
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        assert "only_in_other" not in set(names)
    with pytest.raises(ValueError, match="invalid database name"):
        postgres_server.new_database("bad-name; DROP")


def test_server_is_gone_after_the_context_manager(tmp_path: Path) -> None:
    bin_dir = require_pg_bin()
    with PostgresServer(tmp_path, bin_dir=bin_dir) as server:
        data_dir = server.data_dir
        workdir = server.workdir
        assert workdir is not None
        assert _server_processes(data_dir)
        eng = create_engine(server.url)
        try:
            with eng.connect() as conn:  # an open client must not block the fast stop
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
                server.stop()
                with pytest.raises(OperationalError):
                    conn.execute(text("SELECT 1"))  # disconnect: SQLAlchemy invalidates conn
        finally:
            eng.dispose()
        server.stop()  # idempotent
    assert _server_processes(data_dir) == ""
    assert not workdir.exists()


def test_failed_start_reports_log_and_cleans_up(tmp_path: Path) -> None:
    bin_dir = require_pg_bin()
    server = PostgresServer(tmp_path, bin_dir=bin_dir, options=["shared_buffers=nonsense"])
    with pytest.raises(RuntimeError, match="pg_ctl start failed") as excinfo, server:
        pass
    assert "shared_buffers" in str(excinfo.value)  # from the server log's tail
    assert server.workdir is None
    log_line = next(line for line in str(excinfo.value).splitlines() if "--- tail of" in line)
    workdir = Path(log_line.split()[3]).parent
    assert workdir.name.startswith("leukotrack-pg-")
    assert not workdir.exists()
    assert _server_processes(workdir) == ""
