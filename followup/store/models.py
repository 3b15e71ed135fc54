"""The results store's tables (SQLAlchemy 2 declarative models).

The TSV and NIfTI outputs stay the interchange format; these tables index them for the dashboard and
for cohort queries. Every per-case table refers to ``cases.id`` and is replaced as a whole, in one
transaction, whenever a case is (re)ingested. The schema is created and upgraded by the alembic
migrations in ``followup/store/migrations`` (never by ``create_all``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Audit",
    "Base",
    "Case",
    "Event",
    "Exposure",
    "Lab",
    "Lesion",
    "Measurement",
    "Run",
    "Series",
    "SessionRow",
    "StoredEdit",
]


class Base(DeclarativeBase):
    """Declarative base of the store."""


class Run(Base):
    """One ``batch`` or ``analyze`` invocation: who, when, with what, and how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_utc: Mapped[datetime] = mapped_column(DateTime)
    finished_utc: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))  # running, finished, interrupted
    command: Mapped[str] = mapped_column(Text)
    software_version: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    parameters_json: Mapped[str] = mapped_column(Text)
    n_cases: Mapped[int] = mapped_column(Integer, default=0)
    n_done: Mapped[int] = mapped_column(Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    """One patient folder and the state of its latest analysis."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(128), unique=True)
    source_dir: Mapped[str] = mapped_column(Text)
    output_dir: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # done, failed
    error: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    index_date: Mapped[str | None] = mapped_column(String(10))
    index_date_rule: Mapped[str | None] = mapped_column(String(64))
    n_sessions: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    updated_utc: Mapped[datetime] = mapped_column(DateTime)


class _PerCase:
    case_pk: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)


class SessionRow(_PerCase, Base):
    """One MRI session of a case with its key measures (all of them in ``measurements``)."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("case_pk", "session_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(10))
    day: Mapped[int | None] = mapped_column(Integer)
    has_flair: Mapped[bool] = mapped_column(Boolean)
    has_dwi: Mapped[bool] = mapped_column(Boolean)
    flair_lesion_volume_ml: Mapped[float | None] = mapped_column(Float)
    dwi_lesion_volume_ml: Mapped[float | None] = mapped_column(Float)
    flair_lesion_count: Mapped[int | None] = mapped_column(Integer)
    dwi_lesion_count: Mapped[int | None] = mapped_column(Integer)
    dwi_lesion_adc_mean_um2s: Mapped[float | None] = mapped_column(Float)
    nawm_adc_mean_um2s: Mapped[float | None] = mapped_column(Float)
    radc: Mapped[float | None] = mapped_column(Float)
    template_fit_quality: Mapped[float | None] = mapped_column(Float)
    template_fit_ok: Mapped[bool | None] = mapped_column(Boolean)
    #: Sources a reader corrected (``flair``, ``dwi``, ``flair;dwi``) or rejected; empty otherwise.
    corrected: Mapped[str | None] = mapped_column(String(16))
    rejected: Mapped[str | None] = mapped_column(String(16))
    #: How the 95 % intervals were obtained (``off``, ``fast``, ``standard``, ``full``; issue 16).
    uncertainty_level: Mapped[str | None] = mapped_column(String(16))
    flair_lesion_volume_ml_ci_low: Mapped[float | None] = mapped_column(Float)
    flair_lesion_volume_ml_ci_high: Mapped[float | None] = mapped_column(Float)
    dwi_lesion_volume_ml_ci_low: Mapped[float | None] = mapped_column(Float)
    dwi_lesion_volume_ml_ci_high: Mapped[float | None] = mapped_column(Float)
    #: The volume change from the previous session: ``increase``, ``decrease``, ``within noise``.
    flair_lesion_volume_change_beyond_noise: Mapped[str | None] = mapped_column(String(16))
    dwi_lesion_volume_change_beyond_noise: Mapped[str | None] = mapped_column(String(16))


class Series(_PerCase, Base):
    """A series used by the analysis of a session (FLAIR, DWI, ADC) and where it came from."""

    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("case_pk", "session_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # flair, dwi, adc
    source: Mapped[str] = mapped_column(Text)


class Measurement(_PerCase, Base):
    """Every numeric column of sessions.tsv, long: (session, name) -> value."""

    __tablename__ = "measurements"
    __table_args__ = (UniqueConstraint("case_pk", "session_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float)


class Lesion(_PerCase, Base):
    """One tracked lesion in one session (lesions.tsv)."""

    __tablename__ = "lesions"
    __table_args__ = (UniqueConstraint("case_pk", "session_id", "source", "lesion_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64))
    lesion_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(8))
    day: Mapped[int | None] = mapped_column(Integer)
    volume_ml: Mapped[float | None] = mapped_column(Float)
    centroid_x_mm: Mapped[float | None] = mapped_column(Float)
    centroid_y_mm: Mapped[float | None] = mapped_column(Float)
    centroid_z_mm: Mapped[float | None] = mapped_column(Float)
    hemisphere: Mapped[str | None] = mapped_column(String(16))
    change: Mapped[str | None] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(32))


class Exposure(_PerCase, Base):
    """One administration (given or held) from the case's timeline."""

    __tablename__ = "exposures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    drug: Mapped[str] = mapped_column(String(128))
    date: Mapped[str] = mapped_column(String(10))
    day: Mapped[int | None] = mapped_column(Integer)
    dose_mg: Mapped[float | None] = mapped_column(Float)
    route: Mapped[str | None] = mapped_column(String(8))
    given: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)


class Event(_PerCase, Base):
    """One clinical event (symptom onset, admission, drug stop, ...)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    date: Mapped[str] = mapped_column(String(10))
    day: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(Text)


class Lab(_PerCase, Base):
    """One laboratory value."""

    __tablename__ = "labs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    date: Mapped[str] = mapped_column(String(10))
    day: Mapped[int | None] = mapped_column(Integer)
    specimen: Mapped[str] = mapped_column(String(16))
    analyte: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(16))


class Audit(Base):
    """A manual correction: which value of which row was changed, from what, by whom, and why.

    Kept apart from the per-case tables, so that re-ingesting a case never erases its history.
    """

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_utc: Mapped[datetime] = mapped_column(DateTime)
    author: Mapped[str] = mapped_column(String(128))
    case_id: Mapped[str] = mapped_column(String(128), index=True)
    table_name: Mapped[str] = mapped_column(String(64))
    row_key: Mapped[str] = mapped_column(Text)
    column_name: Mapped[str] = mapped_column(String(128))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class StoredEdit(Base):
    """A reader's lesion correction (followup/corrections.py): erase, paint, grow or reject, at a
    baseline-space point, by whom, when, why, with the volume of the session's source before and
    after. Never deleted: an undo sets ``undone_utc``. Kept apart from the per-case tables, so that
    re-ingesting or re-analysing a case keeps them (a batch re-run applies them again)."""

    __tablename__ = "lesion_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(128), index=True)
    session_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(16))
    lesion_id: Mapped[str | None] = mapped_column(String(32))
    x_mm: Mapped[float | None] = mapped_column(Float)
    y_mm: Mapped[float | None] = mapped_column(Float)
    z_mm: Mapped[float | None] = mapped_column(Float)
    radius_mm: Mapped[float | None] = mapped_column(Float)
    author: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    at_utc: Mapped[datetime] = mapped_column(DateTime)
    volume_before_ml: Mapped[float | None] = mapped_column(Float)
    volume_after_ml: Mapped[float | None] = mapped_column(Float)
    undone_utc: Mapped[datetime | None] = mapped_column(DateTime)
    undone_by: Mapped[str | None] = mapped_column(String(128))
