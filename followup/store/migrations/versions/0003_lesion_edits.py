"""A reader's lesion corrections (issue 15): the ``lesion_edits`` table keeps every edit (who, when,
why, where, before/after volume, undone or not) apart from the per-case tables, so re-ingesting or
re-analysing a case never loses them; sessions say which sources a reader corrected or rejected,
and the cohort view shows it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COHORT_VIEW = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc,
       s.template_fit_quality, s.template_fit_ok, s.corrected, s.rejected
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""
#: Revision 0002's view, restored by the downgrade.
COHORT_VIEW_0002 = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc,
       s.template_fit_quality, s.template_fit_ok
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""


def upgrade() -> None:
    """Create ``lesion_edits``, add the sessions' two columns and show them in the cohort view."""
    op.create_table(
        "lesion_edits",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("lesion_id", sa.String(32), nullable=True),
        sa.Column("x_mm", sa.Float(), nullable=True),
        sa.Column("y_mm", sa.Float(), nullable=True),
        sa.Column("z_mm", sa.Float(), nullable=True),
        sa.Column("radius_mm", sa.Float(), nullable=True),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at_utc", sa.DateTime(), nullable=False),
        sa.Column("volume_before_ml", sa.Float(), nullable=True),
        sa.Column("volume_after_ml", sa.Float(), nullable=True),
        sa.Column("undone_utc", sa.DateTime(), nullable=True),
        sa.Column("undone_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_lesion_edits_case_id", "lesion_edits", ["case_id"])
    op.execute("DROP VIEW cohort")
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("corrected", sa.String(16), nullable=True))
        batch.add_column(sa.Column("rejected", sa.String(16), nullable=True))
    op.execute(COHORT_VIEW)


def downgrade() -> None:
    """Back to revision 0002 (the edits are dropped with their table)."""
    op.execute("DROP VIEW cohort")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("rejected")
        batch.drop_column("corrected")
    op.execute(COHORT_VIEW_0002)
    op.drop_index("ix_lesion_edits_case_id", "lesion_edits")
    op.drop_table("lesion_edits")
