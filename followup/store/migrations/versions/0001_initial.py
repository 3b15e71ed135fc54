"""The first schema: runs, cases, sessions, series, measurements, lesions, exposures, events, labs,
audit, and the cohort view.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COHORT_VIEW = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""


def _per_case(name: str, *columns: sa.Column, unique: tuple[str, ...] = ()) -> None:
    constraints = [sa.UniqueConstraint("case_pk", *unique)] if unique else []
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        *columns,
        sa.Column(
            "case_pk", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False
        ),
        *constraints,
    )
    op.create_index(f"ix_{name}_case_pk", name, ["case_pk"])


def upgrade() -> None:
    """Create every table and the cohort view."""
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("started_utc", sa.DateTime(), nullable=False),
        sa.Column("finished_utc", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("software_version", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("parameters_json", sa.Text(), nullable=False),
        sa.Column("n_cases", sa.Integer(), nullable=False),
        sa.Column("n_done", sa.Integer(), nullable=False),
        sa.Column("n_skipped", sa.Integer(), nullable=False),
        sa.Column("n_failed", sa.Integer(), nullable=False),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(128), nullable=False, unique=True),
        sa.Column("source_dir", sa.Text(), nullable=False),
        sa.Column("output_dir", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("index_date", sa.String(10), nullable=True),
        sa.Column("index_date_rule", sa.String(64), nullable=True),
        sa.Column("n_sessions", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("updated_utc", sa.DateTime(), nullable=False),
    )
    _per_case(
        "sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("study_date", sa.String(10), nullable=True),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("has_flair", sa.Boolean(), nullable=False),
        sa.Column("has_dwi", sa.Boolean(), nullable=False),
        sa.Column("flair_lesion_volume_ml", sa.Float(), nullable=True),
        sa.Column("dwi_lesion_volume_ml", sa.Float(), nullable=True),
        sa.Column("flair_lesion_count", sa.Integer(), nullable=True),
        sa.Column("dwi_lesion_count", sa.Integer(), nullable=True),
        sa.Column("dwi_lesion_adc_mean_um2s", sa.Float(), nullable=True),
        sa.Column("nawm_adc_mean_um2s", sa.Float(), nullable=True),
        sa.Column("radc", sa.Float(), nullable=True),
        unique=("session_id",),
    )
    _per_case(
        "series",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        unique=("session_id", "role"),
    )
    _per_case(
        "measurements",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        unique=("session_id", "name"),
    )
    _per_case(
        "lesions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("lesion_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("volume_ml", sa.Float(), nullable=True),
        sa.Column("centroid_x_mm", sa.Float(), nullable=True),
        sa.Column("centroid_y_mm", sa.Float(), nullable=True),
        sa.Column("centroid_z_mm", sa.Float(), nullable=True),
        sa.Column("hemisphere", sa.String(16), nullable=True),
        sa.Column("change", sa.String(16), nullable=True),
        sa.Column("region", sa.String(32), nullable=True),
        unique=("session_id", "source", "lesion_id"),
    )
    _per_case(
        "exposures",
        sa.Column("drug", sa.String(128), nullable=False),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("dose_mg", sa.Float(), nullable=True),
        sa.Column("route", sa.String(8), nullable=True),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
    )
    _per_case(
        "events",
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
    )
    _per_case(
        "labs",
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("specimen", sa.String(16), nullable=False),
        sa.Column("analyte", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(16), nullable=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at_utc", sa.DateTime(), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("row_key", sa.Text(), nullable=False),
        sa.Column("column_name", sa.String(128), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_case_id", "audit", ["case_id"])
    op.execute(COHORT_VIEW)


def downgrade() -> None:
    """Drop everything this revision created."""
    op.execute("DROP VIEW cohort")
    for name in ("audit", "labs", "events", "exposures", "lesions", "measurements", "series"):
        op.drop_table(name)
    op.drop_table("sessions")
    op.drop_table("cases")
    op.drop_table("runs")
