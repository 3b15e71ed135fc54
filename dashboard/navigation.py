"""The dashboard's pages, built the same way for ``st.navigation`` and for ``st.switch_page``."""

from __future__ import annotations

import streamlit as st

from dashboard.views import cohort, csf, lesions, overview, run, viewer

__all__ = ["aliases", "pages"]


def pages() -> dict[str, st.Page]:
    """Page objects by key (cohort, overview, viewer, lesions, csf, run), in menu order."""
    return {
        "cohort": st.Page(
            cohort.show, title="Cohort", icon=":material/groups:", url_path="home", default=True
        ),
        "overview": st.Page(
            overview.show, title="Case overview", icon=":material/timeline:", url_path="overview"
        ),
        "viewer": st.Page(
            viewer.show, title="Viewer", icon=":material/grid_view:", url_path="viewer"
        ),
        "lesions": st.Page(
            lesions.show, title="Lesions", icon=":material/table_rows:", url_path="lesions"
        ),
        "csf": st.Page(csf.show, title="CSF and labs", icon=":material/science:", url_path="csf"),
        "run": st.Page(
            run.show, title="Import and run", icon=":material/play_circle:", url_path="run"
        ),
    }


def aliases() -> list[st.Page]:
    """Pages reachable by URL only: ``/cohort`` (the default page itself lives at ``/``, and
    Streamlit ignores a default page's own path, so ``/cohort`` opened directly was "Page not
    found")."""
    return [st.Page(cohort.show, title="Cohort", icon=":material/groups:", url_path="cohort")]
