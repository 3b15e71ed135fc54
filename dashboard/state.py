"""The reader's choices that every page shares (held in ``st.session_state``): which case, which
index date day 0 is, and where the viewer looks. Also the page frame: the research-use notice and the
error boundary that turns exceptions into readable messages (never a traceback in the browser; an
unexpected error names the debug log holding its traceback, :mod:`followup.debuglog`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date

import numpy as np
import streamlit as st

from clinical.errors import ClinicalError
from dashboard import data
from followup.debuglog import describe as _describe
from followup.results import INDEX_CHOICES, CaseOutputs, index_dates
from imaging.errors import ImagingError
from safeio import OutputError

__all__ = [
    "RESEARCH_USE",
    "case_in_view",
    "current_case",
    "current_index",
    "framed",
    "request_case",
    "sidebar",
    "viewer_target",
]

RESEARCH_USE = (
    "Research use only. Not a medical device; not for diagnosis or treatment decisions. "
    "Check every result against the images."
)
CASE_KEY, INDEX_KEY = "case_id", "index_key"
#: Set by other pages to move the viewer: ``{"case": id, "session": id | None, "mm": (x, y, z) | None}``.
TARGET_KEY = "viewer_target"
PENDING_CASE_KEY = "pending_case"
log = logging.getLogger("leukotrack.dashboard")


def current_case() -> str | None:
    """The case chosen in the sidebar (None when the data folder holds no case)."""
    value = st.session_state.get(CASE_KEY)
    return str(value) if value else None


def current_index() -> tuple[str, date | None, str]:
    """(key, date, label) of day 0 for the current case."""
    key = str(st.session_state.get(INDEX_KEY) or "first_mri")
    case = current_case()
    if case is None:
        return key, None, INDEX_CHOICES.get(key, key)
    dates = index_dates(data.case_outputs(case))
    if key not in dates:
        key = next(iter(dates), key)
    return key, dates.get(key), INDEX_CHOICES.get(key, key)


def case_in_view() -> tuple[str, CaseOutputs] | None:
    """The current case and its outputs; None (with a note on what to do) when there is none."""
    case = current_case()
    if case is None:
        st.info("No case to show: analyse one on **Import and run**.")
        return None
    status, error = data.case_status(case)
    if status == "failed":
        st.error(
            f"{case} could not be analysed: {error or 'no reason recorded'}. Fix the input and "
            "analyse it again (**Import and run**, or `leukotrack batch`)."
        )
        return None
    return case, data.case_outputs(case)


def request_case(case_id: str) -> None:
    """Make ``case_id`` the current case from the next run on (the sidebar widget owns the key)."""
    st.session_state[PENDING_CASE_KEY] = case_id


def viewer_target(case: str, session: str | None = None, mm: np.ndarray | None = None) -> None:
    """Ask the viewer to open ``session`` of ``case`` (and centre on ``mm``, RAS world)."""
    st.session_state[TARGET_KEY] = {
        "case": case,
        "session": session,
        "mm": None if mm is None else tuple(float(v) for v in mm),
    }


def sidebar() -> None:
    """Case and day-0 pickers, the data folder, and the research-use notice; never raises (a
    problem shows in the sidebar, and every page still runs)."""
    try:
        _sidebar()
    except Exception as error:
        line, _log = _describe(error, "dashboard sidebar")
        st.sidebar.error(line)


def _sidebar() -> None:
    cohort = data.cohort()
    cases = [str(c) for c in cohort["case_id"]] if not cohort.empty else []
    with st.sidebar:
        st.markdown("### leukotrack")
        if cases:
            pending = st.session_state.pop(PENDING_CASE_KEY, None) or st.query_params.get("case")
            if pending in cases:
                st.session_state[CASE_KEY] = pending
            if st.session_state.get(CASE_KEY) not in cases:  # first case with images, else first
                with_images = [
                    c for c, n in zip(cases, cohort["sessions"], strict=True) if n and n > 0
                ]
                st.session_state[CASE_KEY] = (with_images or cases)[0]
            st.selectbox("Case", cases, key=CASE_KEY)
            st.query_params["case"] = str(st.session_state[CASE_KEY])
            case = current_case()
            try:
                dates = index_dates(data.case_outputs(case)) if case and _has_outputs(case) else {}
            except OutputError:  # a cut or incomplete case: its pages say what is wrong
                dates = {}
            options = [k for k in INDEX_CHOICES if k in dates]
            if options:
                if st.session_state.get(INDEX_KEY) not in options:
                    st.session_state[INDEX_KEY] = options[0]
                st.selectbox(
                    "Day 0 (index date)",
                    options,
                    key=INDEX_KEY,
                    format_func=lambda k: f"{INDEX_CHOICES[k]} ({dates[k].isoformat()})",
                    help="Every day number on every page counts from this date.",
                )
        else:
            st.info("No analysed case in this folder yet: use **Import and run**.")
        st.caption(f"Data folder: `{data.data_dir()}`")
        st.caption(f":warning: {RESEARCH_USE}")


def _has_outputs(case: str) -> bool:
    return (data.case_folder(case) / "provenance.json").is_file()


def framed(title: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Decorate a page: its title, the research-use notice, and errors as readable messages."""

    def decorate(page: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(page)
        def run() -> None:
            st.title(title)
            st.caption(RESEARCH_USE)
            try:
                page()
            except (ImagingError, ClinicalError, OutputError, FileNotFoundError) as error:
                st.error(f"{type(error).__name__}: {error}")
            except Exception as error:  # unexpected: one line here, the traceback in a debug log
                line, log_file = _describe(error, f"dashboard page {title}")
                log.error("page %s failed: %s (details in %s)", title, error, log_file)
                st.error(line)

        return run

    return decorate
