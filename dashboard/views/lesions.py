"""Lesions page: every tracked lesion with its change classes and volume trajectory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.state import case_in_view, current_index, framed, viewer_target
from followup.intervals import LESION_INTERVAL, ci_columns, lesion_intervals
from followup.results import lesion_courses
from followup.tsv import safe_frame

__all__ = ["bounded", "lesion_table", "show"]

CHANGE_ORDER = [
    "baseline",
    "new",
    "enlarging",
    "stable",
    "shrinking",
    "merged",
    "split",
    "resolved",
]


def bounded(lesions: pd.DataFrame) -> bool:
    """Whether lesions.tsv has the volumes' 95 % intervals (older outputs do not)."""
    return ci_columns(LESION_INTERVAL)[0] in lesions


def lesion_table(lesions: pd.DataFrame, sessions: list[str], offset: int) -> pd.DataFrame:
    """One row per tracked lesion (:func:`followup.results.lesion_courses`) with, where lesions.tsv
    has them, the 95 % interval of its peak and last volume (``peak_ci_ml``, ``last_ci_ml``) and its
    last change from the previous session in words (``last_change_vs_previous``)."""
    table = lesion_courses(lesions, sessions, offset)
    if table.empty or not bounded(lesions):
        return table
    return table.merge(lesion_intervals(lesions), on=["source", "lesion"], how="left")


@framed("Lesions")
def show() -> None:
    """Sortable, filterable lesion table; selecting a row centres the viewer on the lesion."""
    in_view = case_in_view()
    if in_view is None:
        return
    case, outputs = in_view
    _, index_on, label = current_index()
    table = lesion_table(outputs.lesions, outputs.session_ids, outputs.day_offset(index_on))
    if table.empty:
        st.info(f"No lesions were found in {case}.")
        return
    intervals = bounded(outputs.lesions)
    filters = st.columns([1, 2, 1, 1])
    sources = filters[0].multiselect("Source", ["flair", "dwi"], default=["flair", "dwi"])
    seen = [c for c in CHANGE_ORDER if table["changes"].str.contains(c).any()]
    changes = filters[1].multiselect(
        "Had change", seen, default=seen, help="Lesions that had any of these classes"
    )
    sides = sorted(str(h) for h in table["hemisphere"].dropna().unique())
    hemispheres = filters[2].multiselect("Hemisphere", sides, default=sides)
    minimum = filters[3].number_input(
        "Peak volume at least (mL)", min_value=0.0, value=0.0, step=0.1
    )
    shown = table[
        table["source"].isin(sources)
        & table["changes"].map(lambda text: any(c in text for c in changes))
        & (table["hemisphere"].isin(hemispheres) | table["hemisphere"].isna())
        & (table["peak_ml"].fillna(0) >= minimum)
    ].reset_index(drop=True)
    st.caption(
        f"{len(shown)} of {len(table)} lesions; days from {label}. Change classes between consecutive "
        "sessions: new, enlarging, stable, shrinking, resolved, merged, split. Select a row to centre "
        "the viewer on the lesion."
        + (
            " Enlarging and shrinking need a change beyond the measurement noise (95 % interval) "
            "and of at least 30 %."
            if intervals
            else ""
        )
    )
    event = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=f"lesion_table_{case}",
        column_order=[
            "lesion",
            "source",
            "hemisphere",
            "region",
            "first_day",
            "last_day",
            "peak_ml",
            *(["peak_ci_ml"] if intervals else []),
            "last_ml",
            *(["last_ci_ml"] if intervals else []),
            "last_change",
            *(["last_change_vs_previous"] if intervals else []),
            "trajectory_ml",
            "changes",
        ],
        column_config={
            "lesion": st.column_config.TextColumn("Lesion"),
            "source": st.column_config.TextColumn("Source"),
            "first_day": st.column_config.NumberColumn("First seen (day)"),
            "last_day": st.column_config.NumberColumn("Last seen (day)"),
            "peak_ml": st.column_config.NumberColumn("Peak (mL)", format="%.3f"),
            "last_ml": st.column_config.NumberColumn("Last (mL)", format="%.3f"),
            "peak_ci_ml": st.column_config.TextColumn(
                "Peak 95 % CI (mL)", help="95 % interval of the peak volume"
            ),
            "last_ci_ml": st.column_config.TextColumn(
                "Last 95 % CI (mL)", help="95 % interval of the last volume"
            ),
            "last_change": st.column_config.TextColumn("Last change"),
            "last_change_vs_previous": st.column_config.TextColumn(
                "Last change vs previous",
                help="Volume change from the previous session with its 95 % interval, and whether "
                "it is beyond the measurement noise",
            ),
            "trajectory_ml": st.column_config.LineChartColumn(
                "Volume by session", y_min=0.0, help="mL per session, in time order"
            ),
            "changes": st.column_config.TextColumn("Course", width="large"),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows:
        chosen = shown.iloc[rows[0]]
        if chosen["x_mm"] is not None:
            viewer_target(
                case,
                session=str(chosen["session"]),
                mm=np.array([chosen["x_mm"], chosen["y_mm"], chosen["z_mm"]], float),
            )
            from dashboard.navigation import pages

            st.switch_page(pages()["viewer"])
    csv = safe_frame(shown.drop(columns=["trajectory_ml"])).to_csv(index=False).encode()
    st.download_button(
        "Download this table (CSV)", csv, file_name=f"{case}_lesions.csv", mime="text/csv"
    )
