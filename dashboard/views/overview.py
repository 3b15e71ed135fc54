"""Case overview: drug exposure, events, lesion volumes and rADC on one day axis."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.state import case_in_view, current_index, framed, viewer_target
from followup.intervals import (
    SESSION_CHANGES,
    SESSION_MEASURES,
    SOURCE_VOLUMES,
    change_text,
    ci_columns,
    method_sentence,
    value_text,
)
from followup.results import CaseOutputs, drug_states, template_fit_warning

__all__ = ["show"]


def _session_table(sessions: pd.DataFrame, offset: int) -> pd.DataFrame:
    """The overview's session table: volumes and rADC with their 95 % interval where the analysis
    wrote one, and each volume's change from the previous session in words ("+2.10 mL (+1.20 to
    +3.00), beyond noise: increase", "within measurement noise"); outputs without intervals show
    the values alone and no change columns."""
    columns = {
        "session_id": "Session",
        "study_date": "Date",
        "day": "Day",
        "flair_lesion_volume_ml": "FLAIR lesions (mL)",
        "dwi_lesion_volume_ml": "DWI lesions (mL)",
        "flair_lesion_count": "FLAIR n",
        "dwi_lesion_count": "DWI n",
        "radc": "rADC (DWI lesions)",
        "flair_lesion_radc": "rADC (FLAIR lesions)",
        "flair_lesion_volume_left_ml": "FLAIR left (mL)",
        "flair_lesion_volume_right_ml": "FLAIR right (mL)",
        "template_fit_quality": "Template fit (Dice)",
    }
    table = sessions[[c for c in columns if c in sessions]].copy()
    for column in SESSION_MEASURES:
        if ci_columns(column)[0] in sessions:
            table[column] = [value_text(row, column) for _, row in sessions.iterrows()]
    table = table.rename(columns=columns)
    table["Day"] = pd.to_numeric(table["Day"], errors="coerce") + offset
    for source, measure in SOURCE_VOLUMES.items():
        change, label = SESSION_CHANGES[measure]
        if change in sessions or label in sessions:
            table[f"{source} change vs previous"] = [
                change_text(row, change, label, unit="mL") for _, row in sessions.iterrows()
            ]
    table["Drugs at the MRI"] = ["; ".join(drug_states(row)) for _, row in sessions.iterrows()]
    if "corrected" in sessions or "rejected" in sessions:  # a reader's corrections, said
        table["Corrected by a reader"] = [
            _corrections_cell(row.get("corrected"), row.get("rejected"))
            for _, row in sessions.iterrows()
        ]
    return table


def _interval_caption(outputs: CaseOutputs) -> str:
    """The caption's words on the error bars (" Error bars and brackets: 95 % intervals from
    ..."), "" for outputs without intervals."""
    said = method_sentence(outputs.sessions, outputs.provenance)
    if not said.startswith("95 %"):  # none, or level off
        return f" {said}" if said else ""
    return f" Error bars and brackets: {said}"


def _corrections_cell(corrected: object, rejected: object) -> str:
    """What a reader changed in a session: "DWI corrected", "FLAIR rejected" (empty: nothing)."""
    said = []
    for value, what in ((corrected, "corrected"), (rejected, "rejected")):
        if isinstance(value, str) and value:
            said += [f"{source.upper()} {what}" for source in value.split(";")]
    return ", ".join(said)


def _markdown(table: pd.DataFrame) -> str:
    """A small table as Markdown: numbers to 2 decimals, empty cells as a dash."""

    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "–"
        if isinstance(value, float):
            return f"{value:.0f}" if value.is_integer() and abs(value) > 2 else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


def _report_download(case: str, index_key: str) -> None:
    """The printable PDF report of the case (made on request, then offered for download)."""
    wanted = (case, index_key)
    if st.button("Make the PDF report", key="report_make", help="A4, for the chart or the board"):
        from followup.report import report_bytes

        with st.spinner("Drawing the report"):
            st.session_state["report_pdf"] = (
                wanted,
                report_bytes(data.case_folder(case), index_key),
            )
    made = st.session_state.get("report_pdf")
    if made and made[0] == wanted:
        st.download_button(
            "Download the PDF report",
            made[1],
            file_name=f"leukotrack_{case}_report.pdf",
            mime="application/pdf",
            key="report_download",
        )


@framed("Case overview")
def show() -> None:
    """The course figure (click a session to open it in the viewer) and the session table."""
    shown = case_in_view()
    if shown is None:
        return
    case, outputs = shown
    key, index_on, label = current_index()
    offset = outputs.day_offset(index_on)
    st.markdown(
        f"**{case}**: {len(outputs.sessions)} MRI sessions; day 0 = {label}"
        + (f" ({index_on.isoformat()})" if index_on else "")
        + ". Hover for dates and doses; click a lesion-volume point to open that session."
    )
    warning = template_fit_warning(outputs.provenance)
    if warning is not None:
        st.warning(warning, icon=":material/warning:")
    figure = data.overview(case, key)
    event = st.plotly_chart(
        figure,
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key=f"overview_{case}_{key}",
        config={"displaylogo": False, "scrollZoom": True},
    )
    points = event.selection.points if event is not None else []
    sessions = [p.get("customdata") for p in points if isinstance(p.get("customdata"), list)]
    sessions = [c[0] for c in sessions if c and str(c[0]).startswith("ses-")]
    if sessions:
        viewer_target(case, session=sessions[0])
        from dashboard.navigation import pages

        st.switch_page(pages()["viewer"])
    st.caption(
        "Exposure: the daratumumab curve is an indicative population curve (published model, "
        "typical patient), not a patient estimate; dots are measured levels."
        + _interval_caption(outputs)
    )
    _report_download(case, key)
    if not outputs.sessions.empty:
        st.subheader("Sessions")
        # a Markdown table: five to twenty rows need no data grid (and the page loads faster)
        st.markdown(_markdown(_session_table(outputs.sessions, offset)))
