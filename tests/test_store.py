"""The results store: the alembic migration matches the models, on SQLite and PostgreSQL; ingest
replaces a case atomically; corrections go to the audit table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from followup.analyze import SESSION_COLUMNS, analyze_case
from followup.store import COHORT_COLUMNS, Store
from followup.store.db import _MIGRATIONS, migrate
from followup.store.models import Base
from tests.interval_case import LESIONS, SESSIONS, old_output, write_case


@pytest.fixture(scope="module")
def cns_output(sample_case: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cns")
    analyze_case(sample_case.parent / "cnsmyeloma", out)
    return out / "sub-cnsmyeloma"


def _schema_differences(store: Store) -> list:
    with store.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_the_migration_builds_exactly_the_models_on_sqlite(tmp_path):
    store = Store(tmp_path)
    assert _schema_differences(store) == []
    migrate(store.engine, "base")  # downgrade removes everything, upgrade brings it back
    with store.engine.connect() as connection:
        tables = connection.execute(
            text("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        ).scalars()
        assert set(tables) <= {"alembic_version"}
    migrate(store.engine)
    assert _schema_differences(store) == []
    store.close()


def test_the_migration_builds_exactly_the_models_on_postgresql(postgres_db_url):
    store = Store(url=postgres_db_url)
    assert _schema_differences(store) == []
    assert store.cohort_rows() == []
    store.close()


def test_ingest_replaces_a_case_in_one_transaction(cns_output: Path, tmp_path):
    store = Store(tmp_path)
    store.ingest_case(cns_output, Path("cnsmyeloma"), None)
    with store.engine.connect() as connection:
        before = connection.execute(text("SELECT count(*) FROM exposures")).scalar_one()
    assert before == len(
        [1 for line in (cns_output / "timeline.tsv").open() if "\tadministration\t" in line]
    )
    broken = tmp_path / "sub-cnsmyeloma"
    shutil.copytree(cns_output, broken)
    lines = (broken / "timeline.tsv").read_text().splitlines()
    (broken / "timeline.tsv").write_text("\n".join([*lines[:50], "cnsmyeloma\tevent"]) + "\n")
    with pytest.raises(IntegrityError):  # a short row: the event has no date
        store.ingest_case(broken, Path("cnsmyeloma"), None)
    with store.engine.connect() as connection:  # the old rows are intact
        assert connection.execute(text("SELECT count(*) FROM exposures")).scalar_one() == before
        assert connection.execute(text("SELECT count(*) FROM cases")).scalar_one() == 1
    store.close()


def test_a_manual_correction_is_audited_and_survives_reingest(cns_output: Path, tmp_path):
    store = Store(tmp_path)
    store.ingest_case(cns_output, Path("cnsmyeloma"), None)
    store.correct("cnsmyeloma", "labs", "2018-07-07 csf albumin", "value", 1400, 1380,
                  author="reader1", reason="lab re-measured")  # fmt: skip
    store.ingest_case(cns_output, Path("cnsmyeloma"), None)
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT author, old_value, new_value FROM audit")).all()
    assert rows == [("reader1", "1400", "1380")]
    store.close()


def test_the_cohort_view_carries_the_template_fit_flag(cns_output: Path, tmp_path):
    """A session whose template fit failed its check is flagged in the store's cohort view (the
    batch's cohort.tsv and the dashboard read it there)."""
    folder = tmp_path / "sub-cnsmyeloma"
    shutil.copytree(cns_output, folder)
    row = dict.fromkeys(SESSION_COLUMNS, "")
    row.update(
        case_id="cnsmyeloma",
        session_id="ses-1",
        study_date="2023-01-02",
        day="0",
        has_flair="1",
        has_dwi="0",
        flair_lesion_volume_ml="1.5",
        template_fit_quality="0.71",
        template_fit_ok="0",
    )
    (folder / "sessions.tsv").write_text(
        "\t".join(SESSION_COLUMNS) + "\n" + "\t".join(row[c] for c in SESSION_COLUMNS) + "\n"
    )
    store = Store(tmp_path)
    store.ingest_case(folder, Path("cnsmyeloma"), None)
    (cohort,) = store.cohort_rows()
    assert cohort["template_fit_quality"] == pytest.approx(0.71)
    assert cohort["template_fit_ok"] in (0, False)
    with store.engine.connect() as connection:
        measured = connection.execute(
            text("SELECT value FROM measurements WHERE name = 'template_fit_ok'")
        ).scalar_one()
    assert measured == 0
    store.close()


def test_the_store_keeps_the_volume_intervals_labels_and_level(tmp_path):
    """Issue 16: a case whose sessions.tsv has the uncertainty columns keeps the FLAIR and DWI
    volume intervals, their change labels and the level in the cohort view (and cohort.tsv); an
    older output without the columns ingests with them empty."""
    store = Store(tmp_path)
    store.ingest_case(write_case(tmp_path / "sub-ci"), Path("ci"), None)
    first, second = store.cohort_rows()
    assert second["session_id"] == "ses-2"
    assert second["flair_lesion_volume_ml_ci_low"] == pytest.approx(6.10)
    assert second["flair_lesion_volume_ml_ci_high"] == pytest.approx(6.90)
    assert second["dwi_lesion_volume_ml_ci_low"] == pytest.approx(1.10)
    assert second["dwi_lesion_volume_ml_ci_high"] == pytest.approx(1.40)
    assert second["flair_lesion_volume_change_beyond_noise"] == "increase"
    assert second["dwi_lesion_volume_change_beyond_noise"] == "within noise"
    assert second["uncertainty_level"] == "standard"
    assert first["flair_lesion_volume_change_beyond_noise"] is None  # a first session: no change
    assert set(COHORT_COLUMNS) <= set(second)
    with store.engine.connect() as connection:  # the numbers are measurements too
        names = set(
            connection.execute(text("SELECT name FROM measurements WHERE session_id = 'ses-2'"))
            .scalars()
            .all()
        )
    assert {"radc_ci_low", "flair_lesion_volume_change_ml_ci_high"} <= names
    old = tmp_path / "old" / "sub-ci"
    store.ingest_case(write_case(old, old_output(SESSIONS), old_output(LESIONS)), old, None)
    for row in store.cohort_rows():
        assert row["flair_lesion_volume_ml"] is not None
        assert row["flair_lesion_volume_ml_ci_low"] is None and row["uncertainty_level"] is None
    store.close()


def test_the_interval_migration_upgrades_and_downgrades(tmp_path):
    """Revision 0004 adds the sessions' uncertainty columns to the table and the cohort view;
    its downgrade restores revision 0003's view, rows kept."""

    store = Store(tmp_path)
    store.ingest_case(write_case(tmp_path / "sub-ci"), Path("ci"), None)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    rows = store.cohort_rows()
    assert [r["session_id"] for r in rows] == ["ses-1", "ses-2"]
    assert "uncertainty_level" not in rows[0] and "corrected" in rows[0]
    migrate(store.engine)
    rows = store.cohort_rows()
    assert [r["uncertainty_level"] for r in rows] == [None, None]  # re-ingest fills them
    assert _schema_differences(store) == []
    store.close()
