"""The results store (SQLAlchemy; SQLite by default, PostgreSQL through LEUKOTRACK_DATABASE_URL)."""

from followup.store.db import DATABASE_URL_ENV, database_url
from followup.store.store import COHORT_COLUMNS, CaseState, Store

__all__ = ["COHORT_COLUMNS", "DATABASE_URL_ENV", "CaseState", "Store", "database_url"]
