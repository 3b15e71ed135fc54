"""Cohort page: every case with its key figures; filter, sort, open a case."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.state import framed, request_case

__all__ = ["UNCERTAINTY_COLUMNS", "show", "shown_columns"]


#: Cohort columns that older outputs leave empty (no intervals): hidden when no case has them.
UNCERTAINTY_COLUMNS = (
    "peak_flair_ci_ml",
    "peak_dwi_ci_ml",
    "last_flair_change",
    "last_dwi_change",
    "uncertainty_level",
)


def shown_columns(table: pd.DataFrame) -> list[str]:
    """The cohort table's columns in order, without the uncertainty columns no case fills."""
    empty = {c for c in UNCERTAINTY_COLUMNS if c in table and table[c].isna().all()}
    return [c for c in table.columns if c not in empty]


@framed("Cohort")
def show() -> None:
    """Every case of the data folder (from the store), with filter and sort; a row opens the case."""
    table = data.cohort()
    if table.empty:
        st.info(
            "No case has been analysed into this folder yet. Run `leukotrack batch ROOT --out "
            f"{data.data_dir()}` or use **Import and run**."
        )
        return
    left, middle, right = st.columns([2, 1, 1])
    text = left.text_input("Filter by case id", placeholder="part of a case id")
    statuses = sorted(str(s) for s in table["status"].dropna().unique())
    chosen = middle.multiselect("Status", statuses, default=statuses)
    min_flair = right.number_input(
        "Peak FLAIR volume at least (mL)", min_value=0.0, value=0.0, step=1.0
    )
    shown = table[table["status"].isin(chosen)]
    if text:
        shown = shown[shown["case_id"].str.contains(text, case=False, regex=False)]
    if min_flair > 0:
        shown = shown[shown["peak_flair_ml"].fillna(0) >= min_flair]
    failed = int((table["status"] == "failed").sum())
    metrics = st.columns(4)
    metrics[0].metric("Cases", len(table))
    metrics[1].metric("Analysed", int((table["status"] == "done").sum()))
    metrics[2].metric("Failed", failed)
    metrics[3].metric("MRI sessions", int(table["sessions"].fillna(0).sum()))
    event = st.dataframe(
        shown,
        hide_index=True,
        column_order=shown_columns(table),
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="cohort_table",
        column_config={
            "case_id": st.column_config.TextColumn("Case"),
            "status": st.column_config.TextColumn("Status"),
            "sessions": st.column_config.NumberColumn("MRI sessions"),
            "days_followed": st.column_config.NumberColumn("Days followed", format="%d d"),
            "peak_flair_ml": st.column_config.NumberColumn(
                "Peak FLAIR lesions (mL)", format="%.2f"
            ),
            "peak_flair_ci_ml": st.column_config.TextColumn(
                "Peak FLAIR 95 % CI (mL)", help="95 % interval of the peak FLAIR lesion volume"
            ),
            "peak_dwi_ml": st.column_config.NumberColumn("Peak DWI lesions (mL)", format="%.2f"),
            "peak_dwi_ci_ml": st.column_config.TextColumn(
                "Peak DWI 95 % CI (mL)", help="95 % interval of the peak DWI lesion volume"
            ),
            "last_flair_change": st.column_config.TextColumn(
                "Last FLAIR change",
                help="Latest FLAIR volume change from the previous session: increase, decrease "
                "(beyond the measurement noise) or within measurement noise",
            ),
            "last_dwi_change": st.column_config.TextColumn(
                "Last DWI change",
                help="Latest DWI volume change from the previous session: increase, decrease "
                "(beyond the measurement noise) or within measurement noise",
            ),
            "latest_radc": st.column_config.NumberColumn(
                "Latest rADC",
                format="%.2f",
                help="Mean ADC in DWI lesions / NAWM, last session with lesions",
            ),
            "template_fit": st.column_config.TextColumn(
                "Template fit", help="CHECK: the template fit failed its quality check"
            ),
            "first_study": st.column_config.TextColumn("First MRI"),
            "last_study": st.column_config.TextColumn("Last MRI"),
            "index_date": st.column_config.TextColumn("Day 0"),
            "uncertainty_level": st.column_config.TextColumn(
                "Uncertainty level",
                help="How the 95 % intervals were obtained: off, fast, standard or full",
            ),
            "error": st.column_config.TextColumn("Error", width="large"),
        },
    )
    st.caption("Select a row to open the case overview. Sort by clicking a column header.")
    rows = event.selection.rows if event is not None else []
    if rows:
        case_id = str(shown.iloc[rows[0]]["case_id"])
        if shown.iloc[rows[0]]["status"] == "failed":
            st.error(f"{case_id} failed: {shown.iloc[rows[0]]['error']}")
            return
        request_case(case_id)
        from dashboard.navigation import pages

        st.switch_page(pages()["overview"])
