"""Shared fixtures: where the real scans are, and where the sample case is."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgserver import PostgresServer, require_pg_bin

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SCANS = REPO / "sample_scans"


def realdata_root() -> Path:
    """``$LEUKOTRACK_REALDATA`` or ``../shared/realdata`` beside the repository."""
    configured = os.environ.get("LEUKOTRACK_REALDATA")
    return Path(configured) if configured else REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session", autouse=True)
def debug_log_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Debug logs of unexpected errors (followup.debuglog) go to a temporary folder, not the
    user's ~/.cache, for the whole session (a test may point LEUKOTRACK_LOG_DIR elsewhere)."""
    folder = tmp_path_factory.mktemp("debug-logs")
    before = os.environ.get("LEUKOTRACK_LOG_DIR")
    os.environ["LEUKOTRACK_LOG_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("LEUKOTRACK_LOG_DIR", None)
    else:
        os.environ["LEUKOTRACK_LOG_DIR"] = before


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real scans folder; the test is skipped when it is absent."""
    root = realdata_root()
    if not root.is_dir():
        pytest.skip(f"real scans not found at {root} (set LEUKOTRACK_REALDATA)")
    return root


@pytest.fixture(scope="session")
def sample_case() -> Path:
    """The bundled sample case (sample_scans/indexcase)."""
    case = SAMPLE_SCANS / "indexcase"
    if not (case / "DICOM").is_dir():
        pytest.fail("sample_scans/indexcase is missing: run `make samples`")
    return case


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL server for the session (tests/pgserver.py).

    Skipped when no server binaries are installed, unless LEUKOTRACK_REQUIRE_POSTGRES=1
    (set by CI), in which case the tests fail.
    """
    bin_dir = require_pg_bin()
    with PostgresServer(tmp_path_factory.mktemp("postgres"), bin_dir=bin_dir) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session server's ``leukotrack_test`` database."""
    return postgres_server.url


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test (isolation without dropping)."""
    return postgres_server.new_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def analyzed_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample_scans/ analysed once into a store-backed output folder (as `leukotrack demo` does)."""
    from followup.batch import run_batch

    if not (SAMPLE_SCANS / "indexcase" / "DICOM").is_dir():
        pytest.skip("sample_scans/indexcase is missing; run `make samples`")
    out = tmp_path_factory.mktemp("dashboard") / "out"
    summary = run_batch(SAMPLE_SCANS, out, workers=0)
    assert summary.n_failed == 0, [o.error for o in summary.outcomes]
    return out


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests keep screenshots: ``$LEUKOTRACK_ARTIFACTS`` or ``test-artifacts/`` (git-ignored)."""
    folder = Path(os.environ.get("LEUKOTRACK_ARTIFACTS") or REPO / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _template_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The MNI template cache of the test session goes to a temporary folder, never the user's
    ~/.cache (imaging.template.CACHE_ENV; subprocesses inherit it)."""
    from imaging.template import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("template-cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before
