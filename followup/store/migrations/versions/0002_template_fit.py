"""Sessions record the template fit's quality (issue 13): ``template_fit_quality`` (Dice of the warped
template brain with the image's own brain estimate) and ``template_fit_ok`` (whether the fit passed
its quality check); the cohort view shows both.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COHORT_VIEW = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc,
       s.template_fit_quality, s.template_fit_ok
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""
#: Revision 0001's view, restored by the downgrade.
COHORT_VIEW_0001 = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""


def upgrade() -> None:
    """Add the two columns and show them in the cohort view."""
    op.execute("DROP VIEW cohort")
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("template_fit_quality", sa.Float(), nullable=True))
        batch.add_column(sa.Column("template_fit_ok", sa.Boolean(), nullable=True))
    op.execute(COHORT_VIEW)


def downgrade() -> None:
    """Back to revision 0001's sessions table and cohort view."""
    op.execute("DROP VIEW cohort")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("template_fit_ok")
        batch.drop_column("template_fit_quality")
    op.execute(COHORT_VIEW_0001)
