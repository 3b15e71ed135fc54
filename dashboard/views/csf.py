"""CSF and labs page: paired serum/CSF samples, quotients and indices with reference limits, and a
Reiber diagram."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.figures import reiber_figure
from dashboard.state import case_in_view, current_index, framed

__all__ = ["sample_table", "show"]


def sample_table(csf: pd.DataFrame, offset: int) -> pd.DataFrame:
    """One row per sample date, one column per measure ("value unit", "▲" when above its limit)."""
    rows = []
    for sample, group in csf.groupby("sample_date"):
        day = pd.to_numeric(group["day"], errors="coerce").iloc[0]
        row: dict[str, object] = {"sample": sample, "day": int(day) + offset}
        for _, item in group.iterrows():
            unit = item["unit"] if isinstance(item["unit"], str) else ""
            flag = " ▲" if item["abnormal"] == 1 else ""
            name = str(item["measure"]).replace("_", " ")
            row[name] = f"{item['value']:.3g} {unit}".strip().replace(" 1e-3", " x 1e-3") + flag
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")  # a measure not taken on that date


@framed("CSF and labs")
def show() -> None:
    """Indices per sample with their limits and readings; the Reiber diagram; every lab value."""
    shown = case_in_view()
    if shown is None:
        return
    case, outputs = shown
    _, index_on, label = current_index()
    offset = outputs.day_offset(index_on)
    csf = outputs.csf
    if csf.empty:
        st.info(f"{case} has no paired serum/CSF samples (labs.csv gives none).")
    else:
        st.subheader("Paired serum/CSF samples")
        st.dataframe(
            sample_table(csf, offset), hide_index=True, width="stretch", key=f"csf_table_{case}"
        )
        st.caption(
            f"Days from {label}. A cell marked ▲ is above its reference limit (limits in the column "
            "headers' help); Q_alb limit (4 + age/15) x 1e-3."
        )
        latest = csf[csf["sample_date"] == csf["sample_date"].max()]
        st.markdown(f"**Reading of the latest sample ({latest['sample_date'].iloc[0]})**")
        for reading in latest["reading"].dropna():
            st.markdown(f"- {reading}")
        with st.expander("Readings of every sample"):
            for sample, rows in csf.groupby("sample_date"):
                st.markdown(f"**{sample}**")
                for reading in rows["reading"].dropna():
                    st.markdown(f"- {reading}")
        st.subheader("Reiber diagram")
        st.plotly_chart(reiber_figure(csf), width="stretch", key=f"reiber_{case}")
        st.caption(
            "Quotients CSF/serum of IgG-sized proteins against the albumin quotient. Above the upper "
            "hyperbola: more in CSF than the barrier explains (intrathecal production); right of the "
            "dashed line: blood-CSF barrier dysfunction for the patient's age. Daratumumab is an IgG1 "
            "antibody and is read against the IgG lines."
        )
    labs = (
        outputs.timeline[outputs.timeline["kind"] == "lab"]
        if not outputs.timeline.empty
        else pd.DataFrame()
    )
    st.subheader("All lab values")
    if labs.empty:
        st.info("No lab values in this case.")
        return
    table = labs[["date", "day", "item", "value", "unit", "detail", "source"]].copy()
    table["day"] = pd.to_numeric(table["day"], errors="coerce") + offset
    st.dataframe(
        table.rename(columns={"item": "specimen and analyte"}),
        hide_index=True,
        width="stretch",
    )
