"""The results store: runs, and each case's tables replaced in one transaction from its outputs."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from followup.store.db import database_url, make_engine, migrate
from followup.store.models import (
    Audit,
    Case,
    Event,
    Exposure,
    Lab,
    Lesion,
    Measurement,
    Run,
    Series,
    SessionRow,
    StoredEdit,
)

__all__ = ["COHORT_COLUMNS", "SESSION_INTERVAL_COLUMNS", "CaseState", "Store"]

#: The sessions' uncertainty columns the store keeps (issue 16; empty for older outputs): the
#: level, the 95 % intervals of the FLAIR and DWI lesion volumes and their change labels.
SESSION_INTERVAL_COLUMNS = [
    "uncertainty_level",
    "flair_lesion_volume_ml_ci_low",
    "flair_lesion_volume_ml_ci_high",
    "dwi_lesion_volume_ml_ci_low",
    "dwi_lesion_volume_ml_ci_high",
    "flair_lesion_volume_change_beyond_noise",
    "dwi_lesion_volume_change_beyond_noise",
]
#: Columns of cohort.tsv and of the store's ``cohort`` view.
COHORT_COLUMNS = [
    "case_id",
    "status",
    "error",
    "index_date",
    "index_date_rule",
    "session_id",
    "study_date",
    "day",
    "has_flair",
    "has_dwi",
    "flair_lesion_volume_ml",
    "dwi_lesion_volume_ml",
    "flair_lesion_count",
    "dwi_lesion_count",
    "dwi_lesion_adc_mean_um2s",
    "nawm_adc_mean_um2s",
    "radc",
    "template_fit_quality",
    "template_fit_ok",
    "corrected",
    "rejected",
    *SESSION_INTERVAL_COLUMNS,
]
_PER_CASE = (SessionRow, Series, Measurement, Lesion, Exposure, Event, Lab)
_SESSION_KEYS = ("case_id", "session_id", "study_date", "day", "adc_source")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _read_tsv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _float(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: str | None) -> int | None:
    number = _float(value)
    return None if number is None else round(number)


def _intervals(row: dict[str, str]) -> dict[str, Any]:
    """A sessions.tsv row's uncertainty cells for :class:`SessionRow` (None where empty or
    absent, as in older outputs): numbers for the intervals, text for the level and labels."""
    return {
        name: _float(row.get(name)) if "_ci_" in name else (row.get(name) or "").strip() or None
        for name in SESSION_INTERVAL_COLUMNS
    }


@dataclass(frozen=True)
class CaseState:
    """What the store knows of a case: status and the fingerprint of the inputs it was made from."""

    status: str
    fingerprint: str | None


class Store:
    """The results store behind one output folder (or ``$LEUKOTRACK_DATABASE_URL``).

    Parameters
    ----------
    out_dir : Path, optional
        The output folder (holds the SQLite file by default).
    url : str, optional
        A SQLAlchemy URL overriding both.
    """

    def __init__(self, out_dir: Path | None = None, url: str | None = None) -> None:
        self.url = database_url(out_dir, url)
        self.engine: Engine = make_engine(self.url)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    # ---------------------------------------------------------------------------------- runs
    def start_run(
        self, command: str, parameters: dict[str, Any], version: str, n_cases: int
    ) -> int:
        """Record a new run; earlier runs of this host whose process is gone become interrupted."""
        host = socket.gethostname()
        with self.session() as s:
            for run in s.scalars(select(Run).where(Run.status == "running", Run.host == host)):
                if not _alive(run.pid):
                    run.status = "interrupted"
            run = Run(
                started_utc=_now(),
                status="running",
                command=command,
                software_version=version,
                host=host,
                pid=os.getpid(),
                parameters_json=json.dumps(parameters, sort_keys=True, default=str),
                n_cases=n_cases,
                n_done=0,
                n_skipped=0,
                n_failed=0,
            )
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, *, done: int, skipped: int, failed: int) -> None:
        """Close a run with its counts."""
        with self.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            run.finished_utc = _now()
            run.status = "finished"
            run.n_done, run.n_skipped, run.n_failed = done, skipped, failed

    # --------------------------------------------------------------------------------- cases
    def case_state(self, case_id: str) -> CaseState | None:
        """The stored status and fingerprint of ``case_id`` (None if never stored)."""
        with self.session() as s:
            case = s.scalar(select(Case).where(Case.case_id == case_id))
            return None if case is None else CaseState(case.status, case.fingerprint)

    def _case(self, s: Session, case_id: str, source_dir: Path) -> Case:
        case = s.scalar(select(Case).where(Case.case_id == case_id))
        if case is None:
            case = Case(
                case_id=case_id,
                source_dir=str(source_dir),
                status="new",
                n_sessions=0,
                updated_utc=_now(),
            )
            s.add(case)
            s.flush()
        for table in _PER_CASE:
            s.execute(delete(table).where(table.case_pk == case.id))
        return case

    def record_failure(
        self, case_id: str, source_dir: Path, error: str, run_id: int | None
    ) -> None:
        """Store a failed case: its reason, and no measurements (the old ones would be stale)."""
        with self.session() as s:
            case = self._case(s, case_id, source_dir)
            case.status, case.error, case.fingerprint = "failed", error, None
            case.run_id, case.updated_utc, case.n_sessions = run_id, _now(), 0
            case.output_dir = None

    def ingest_case(self, folder: Path, source_dir: Path, run_id: int | None) -> str:
        """Replace a case's rows with what its output folder ``OUT/sub-<case>`` holds.

        Everything happens in one transaction: a reader sees the old rows or the new ones, never a
        mix, and a crash leaves the old ones. Returns the case id.
        """
        provenance = json.loads((folder / "provenance.json").read_text())
        case_id = folder.name.removeprefix("sub-")
        sessions = _read_tsv(folder / "sessions.tsv")
        lesions = _read_tsv(folder / "lesions.tsv")
        timeline = _read_tsv(folder / "timeline.tsv")
        with self.session() as s:
            case = self._case(s, case_id, source_dir)
            case.status, case.error = "done", None
            case.fingerprint = provenance.get("fingerprint")
            case.output_dir = str(folder.resolve())
            case.index_date = provenance.get("index_date")
            case.index_date_rule = provenance.get("index_date_rule")
            case.n_sessions, case.run_id, case.updated_utc = len(sessions), run_id, _now()
            pk = case.id
            for row in sessions:
                s.add(
                    SessionRow(
                        case_pk=pk,
                        session_id=row["session_id"],
                        study_date=row["study_date"] or None,
                        day=_int(row["day"]),
                        has_flair=row.get("has_flair") == "1",
                        has_dwi=row.get("has_dwi") == "1",
                        flair_lesion_volume_ml=_float(row.get("flair_lesion_volume_ml")),
                        dwi_lesion_volume_ml=_float(row.get("dwi_lesion_volume_ml")),
                        flair_lesion_count=_int(row.get("flair_lesion_count")),
                        dwi_lesion_count=_int(row.get("dwi_lesion_count")),
                        dwi_lesion_adc_mean_um2s=_float(row.get("dwi_lesion_adc_mean_um2s")),
                        nawm_adc_mean_um2s=_float(row.get("nawm_adc_mean_um2s")),
                        radc=_float(row.get("radc")),
                        template_fit_quality=_float(row.get("template_fit_quality")),
                        template_fit_ok=(
                            None
                            if _int(row.get("template_fit_ok")) is None
                            else row.get("template_fit_ok") == "1"
                        ),
                        corrected=row.get("corrected") or None,
                        rejected=row.get("rejected") or None,
                        **_intervals(row),
                    )
                )
                for name, value in row.items():
                    if name not in _SESSION_KEYS and value not in ("", None):
                        number = _float(value)
                        if number is not None:
                            s.add(
                                Measurement(
                                    case_pk=pk,
                                    session_id=row["session_id"],
                                    name=name,
                                    value=number,
                                )
                            )
                sources = (
                    provenance.get("sessions", {}).get(row["session_id"], {}).get("sources", {})
                )
                for role, source in sources.items():
                    if source:
                        s.add(
                            Series(
                                case_pk=pk,
                                session_id=row["session_id"],
                                role=role,
                                source=str(source),
                            )
                        )
            for row in lesions:
                s.add(
                    Lesion(
                        case_pk=pk,
                        session_id=row["session_id"],
                        lesion_id=row["lesion_id"],
                        source=row["source"],
                        day=_int(row["day"]),
                        volume_ml=_float(row["volume_ml"]),
                        centroid_x_mm=_float(row["centroid_x_mm"]),
                        centroid_y_mm=_float(row["centroid_y_mm"]),
                        centroid_z_mm=_float(row["centroid_z_mm"]),
                        hemisphere=row["hemisphere"] or None,
                        change=row["change"] or None,
                        region=row.get("region") or None,
                    )
                )
            for row in timeline:
                kind = row["kind"]
                if kind in ("administration", "held"):
                    s.add(
                        Exposure(
                            case_pk=pk,
                            drug=row["item"],
                            date=row["date"],
                            day=_int(row["day"]),
                            dose_mg=_float(row["value"]),
                            route=row["route"] or None,
                            given=kind == "administration",
                            detail=row["detail"] or None,
                            source=row["source"] or None,
                        )
                    )
                elif kind == "event":
                    s.add(
                        Event(
                            case_pk=pk,
                            date=row["date"],
                            day=_int(row["day"]),
                            kind=row["item"],
                            label=row["detail"] or None,
                        )
                    )
                elif kind == "lab":
                    specimen, _, analyte = row["item"].partition(" ")
                    s.add(
                        Lab(
                            case_pk=pk,
                            date=row["date"],
                            day=_int(row["day"]),
                            specimen=specimen,
                            analyte=analyte,
                            value=_float(row["value"]),
                            unit=row["unit"] or None,
                        )
                    )
        return case_id

    # ------------------------------------------------------------------------ cohort, audit
    def cohort_rows(self) -> list[dict[str, Any]]:
        """The ``cohort`` view: one row per case and session (one row for a case without any)."""
        with self.engine.connect() as connection:
            result = connection.execute(
                text("SELECT * FROM cohort ORDER BY case_id, day, session_id")
            )
            return [dict(row._mapping) for row in result]

    @staticmethod
    def read_cohort(out_dir: Path | None = None, url: str | None = None) -> list[dict[str, Any]]:
        """The ``cohort`` view of an existing store, read without migrating or writing anything
        (for readers such as the dashboard); empty when the store has no schema yet."""
        engine = make_engine(database_url(out_dir, url))
        try:
            with engine.connect() as connection:
                result = connection.execute(
                    text("SELECT * FROM cohort ORDER BY case_id, day, session_id")
                )
                return [dict(row._mapping) for row in result]
        except OperationalError:  # no schema yet: nothing was stored
            return []
        finally:
            engine.dispose()

    def correct(
        self,
        case_id: str,
        table: str,
        row_key: str,
        column: str,
        old: Any,
        new: Any,
        author: str,
        reason: str,
    ) -> None:
        """Record a manual correction in the audit table (the value itself lives in the outputs)."""
        with self.session() as s:
            s.add(
                Audit(
                    at_utc=_now(),
                    author=author,
                    case_id=case_id,
                    table_name=table,
                    row_key=row_key,
                    column_name=column,
                    old_value=str(old),
                    new_value=str(new),
                    reason=reason,
                )
            )

    # ------------------------------------------------------------------------ lesion edits
    @contextmanager
    def new_edit(self, case_id: str, edit: Any) -> Iterator[StoredEdit]:
        """Store a reader's edit (a :class:`followup.corrections.LesionEdit`); yields its row.

        The row is committed when the block ends without error (the caller re-derives the case
        inside it), and rolled back otherwise: an edit that could not be applied is not kept.
        """
        with self.session() as s:
            x, y, z = edit.point_mm if edit.point_mm is not None else (None, None, None)
            row = StoredEdit(
                case_id=case_id,
                session_id=edit.session_id,
                source=edit.source,
                action=edit.action,
                lesion_id=edit.lesion_id or None,
                x_mm=x,
                y_mm=y,
                z_mm=z,
                radius_mm=edit.radius_mm,
                author=edit.author,
                reason=edit.reason,
                at_utc=edit.at_utc,
            )
            s.add(row)
            s.flush()
            yield row

    def edit_rows(self, case_id: str) -> list[StoredEdit]:
        """Every edit of a case, oldest first (undone ones included)."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(StoredEdit).where(StoredEdit.case_id == case_id).order_by(StoredEdit.id)
                )
            )

    @contextmanager
    def undoing(self, case_id: str, author: str) -> Iterator[StoredEdit | None]:
        """Mark the newest active edit of a case undone; yields its row (None when there is
        none). Committed when the block ends without error, as :meth:`new_edit`."""
        with self.session() as s:
            row = s.scalar(
                select(StoredEdit)
                .where(StoredEdit.case_id == case_id, StoredEdit.undone_utc.is_(None))
                .order_by(StoredEdit.id.desc())
            )
            if row is not None:
                row.undone_utc, row.undone_by = _now().replace(microsecond=0), author
                s.flush()
            yield row


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
