"""Sessions keep their measurement uncertainty (issue 16): the level the intervals were obtained at
(``uncertainty_level``), the 95 % intervals of the FLAIR and DWI lesion volumes (``*_ci_low``,
``*_ci_high``) and the labels of their change from the previous session
(``*_change_beyond_noise``: increase, decrease, within noise); the cohort view shows them. Rows of
older outputs leave them empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The new columns of ``sessions``, in the order the view shows them.
COLUMNS: list[tuple[str, sa.types.TypeEngine[Any]]] = [
    ("uncertainty_level", sa.String(16)),
    ("flair_lesion_volume_ml_ci_low", sa.Float()),
    ("flair_lesion_volume_ml_ci_high", sa.Float()),
    ("dwi_lesion_volume_ml_ci_low", sa.Float()),
    ("dwi_lesion_volume_ml_ci_high", sa.Float()),
    ("flair_lesion_volume_change_beyond_noise", sa.String(16)),
    ("dwi_lesion_volume_change_beyond_noise", sa.String(16)),
]
COHORT_VIEW = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc,
       s.template_fit_quality, s.template_fit_ok, s.corrected, s.rejected,
       s.uncertainty_level, s.flair_lesion_volume_ml_ci_low, s.flair_lesion_volume_ml_ci_high,
       s.dwi_lesion_volume_ml_ci_low, s.dwi_lesion_volume_ml_ci_high,
       s.flair_lesion_volume_change_beyond_noise, s.dwi_lesion_volume_change_beyond_noise
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""
#: Revision 0003's view, restored by the downgrade.
COHORT_VIEW_0003 = """
CREATE VIEW cohort AS
SELECT c.case_id, c.status, c.error, c.index_date, c.index_date_rule,
       s.session_id, s.study_date, s.day, s.has_flair, s.has_dwi,
       s.flair_lesion_volume_ml, s.dwi_lesion_volume_ml, s.flair_lesion_count,
       s.dwi_lesion_count, s.dwi_lesion_adc_mean_um2s, s.nawm_adc_mean_um2s, s.radc,
       s.template_fit_quality, s.template_fit_ok, s.corrected, s.rejected
FROM cases c LEFT JOIN sessions s ON s.case_pk = c.id
"""


def upgrade() -> None:
    """Add the sessions' uncertainty columns and show them in the cohort view."""
    op.execute("DROP VIEW cohort")
    with op.batch_alter_table("sessions") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.execute(COHORT_VIEW)


def downgrade() -> None:
    """Back to revision 0003's sessions table and cohort view."""
    op.execute("DROP VIEW cohort")
    with op.batch_alter_table("sessions") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
    op.execute(COHORT_VIEW_0003)
