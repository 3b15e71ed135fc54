"""Plotly figures of a case: the course overview (drug lanes, exposure curve, lesion volumes, rADC on
one day axis) and a Reiber diagram of the CSF quotients. Built from :class:`CaseOutputs` only; no
Streamlit here, so the figures are tested as data and reused by the report.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from followup.intervals import SESSION_CHANGES, change_text, error_halves, value_text
from followup.palette import EVENT_COLOURS, SOURCE_COLOURS, drug_colour
from followup.results import CaseOutputs, finite, is_daily

__all__ = [
    "EVENT_STYLE",
    "PREBUILT",
    "overview_figure",
    "reiber_curves",
    "reiber_figure",
    "session_hover",
]

#: Overview figures built before the server started (``dashboard.server.warm_up``), by
#: (case folder, index key, provenance.json mtime); the first page view takes them from here.
PREBUILT: dict[tuple[str, str, float], go.Figure] = {}
#: Event kinds: (colour, dash, short label).
EVENT_STYLE: dict[str, tuple[str, str, str]] = {
    "symptom_onset": (EVENT_COLOURS["symptom_onset"], "dash", "symptom onset"),
    "admission": (EVENT_COLOURS["admission"], "dot", "admission"),
    "drug_stop": (EVENT_COLOURS["drug_stop"], "dashdot", "drug stop"),
    "csf_tap": (EVENT_COLOURS["csf_tap"], "dot", "CSF tap"),
}
_ROW_HEIGHTS = (0.22, 0.2, 0.36, 0.22)


def _calendar(index_on: date | None, day: float) -> str:
    if index_on is None:
        return ""
    return (index_on + timedelta(days=float(day))).isoformat()[:10]


def _days(frame: pd.DataFrame, column: str, offset: int) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce") + offset


def _drug_lanes(
    fig: go.Figure, outputs: CaseOutputs, offset: int, index_on: date | None
) -> list[str]:
    """Row 1: one lane per drug. Daily drugs as bars over their on-periods (cycles), the others as
    a marker per administration (IV infusions triangles, oral or SC doses diamonds); held doses as
    open crosses. Dose and date on hover."""
    timeline = outputs.timeline
    if timeline.empty:
        return []
    given = timeline[timeline["kind"].isin(["administration", "held"])]
    drugs = list(dict.fromkeys(given["item"]))
    for lane, drug in enumerate(drugs):
        colour = drug_colour(str(drug))
        rows = given[(given["item"] == drug) & (given["kind"] == "administration")]
        days = _days(rows, "day", offset)
        if is_daily(days):
            periods = timeline[(timeline["kind"] == "drug_on") & (timeline["item"] == drug)]
            starts = _days(periods, "day", offset)
            ends = _days(periods, "end_day", offset).fillna(starts) + 1
            dose = rows["value"].iloc[0] if len(rows) else ""
            unit = rows["unit"].iloc[0] if len(rows) else ""
            fig.add_trace(
                go.Bar(
                    base=starts,
                    x=ends - starts,
                    y=[lane] * len(periods),
                    orientation="h",
                    width=0.5,
                    marker_color=colour,
                    opacity=0.75,
                    name=drug,
                    legendgroup="drugs",
                    customdata=np.stack(
                        [
                            periods["date"].astype(str),
                            periods["end_date"].fillna(periods["date"]).astype(str),
                        ],
                        axis=1,
                    ),
                    hovertemplate=(
                        f"<b>{drug}</b> {dose:g} {unit} daily<br>%{{customdata[0]}} to "
                        "%{customdata[1]}<br>day %{base:.0f} to %{x:.0f} days later<extra></extra>"
                    )
                    if isinstance(dose, float)
                    else f"<b>{drug}</b><extra></extra>",
                ),
                row=1,
                col=1,
            )
        else:
            iv = rows["route"].astype(str).str.upper().eq("IV")
            for subset, symbol, label in (
                (rows[iv], "triangle-up", "IV"),
                (rows[~iv], "diamond", ""),
            ):
                if subset.empty:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=_days(subset, "day", offset),
                        y=[lane] * len(subset),
                        mode="markers",
                        marker={"symbol": symbol, "size": 11, "color": colour},
                        name=f"{drug} {label}".strip(),
                        legendgroup="drugs",
                        customdata=np.stack(
                            [
                                subset["date"].astype(str),
                                subset["value"].map(lambda v: f"{v:g}").astype(str),
                                subset["unit"].astype(str),
                                subset["route"].astype(str),
                                subset["detail"].fillna("").astype(str),
                            ],
                            axis=1,
                        ),
                        hovertemplate=(
                            f"<b>{drug}</b> %{{customdata[1]}} %{{customdata[2]}} "
                            "%{customdata[3]}<br>%{customdata[0]} (day %{x:.0f})<br>"
                            "%{customdata[4]}<extra></extra>"
                        ),
                    ),
                    row=1,
                    col=1,
                )
        held = given[(given["item"] == drug) & (given["kind"] == "held")]
        if not held.empty:
            fig.add_trace(
                go.Scatter(
                    x=_days(held, "day", offset),
                    y=[lane] * len(held),
                    mode="markers",
                    marker={
                        "symbol": "x-thin-open",
                        "size": 12,
                        "color": "#d62728",
                        "line": {"width": 2},
                    },
                    name=f"{drug} held",
                    legendgroup="drugs",
                    customdata=held["date"].astype(str),
                    hovertemplate=f"<b>{drug} held</b><br>%{{customdata}}<extra></extra>",
                ),
                row=1,
                col=1,
            )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(drugs))),
        ticktext=drugs,
        range=[-0.7, len(drugs) - 0.3],
        autorange="reversed",
        row=1,
        col=1,
    )
    return drugs


def _exposure(fig: go.Figure, outputs: CaseOutputs, offset: int) -> bool:
    """Row 2: modelled drug concentration (indicative population curve) and measured levels."""
    pk = outputs.pk
    if pk.empty:
        return False
    model = pk[pk["kind"] == "model"]
    for drug, rows in model.groupby("drug"):
        label = str(rows["label"].iloc[0])
        fig.add_trace(
            go.Scatter(
                x=_days(rows, "day", offset),
                y=rows["concentration_mg_l"],
                mode="lines",
                line={"color": "#6a3d9a", "width": 1.6},
                name=f"{drug}, indicative population curve ({rows['model'].iloc[0]})",
                customdata=rows["datetime"].astype(str).str[:10],
                hovertemplate=(
                    "%{customdata} (day %{x:.1f})<br>%{y:.0f} mg/L modelled<br>"
                    f"<i>{label}</i><extra></extra>"
                ),
            ),
            row=2,
            col=1,
        )
    measured = pk[pk["kind"] == "measured"]
    for key, rows in measured.groupby(["drug", "specimen"]):
        drug, specimen = str(key[0]), str(key[1])
        fig.add_trace(
            go.Scatter(
                x=_days(rows, "day", offset),
                y=rows["concentration_mg_l"],
                mode="markers",
                marker={
                    "symbol": "circle" if specimen == "serum" else "square",
                    "size": 9,
                    "color": "#e31a1c" if specimen == "serum" else "#1f78b4",
                },
                name=f"{drug} measured, {specimen}",
                customdata=rows["datetime"].astype(str).str[:10],
                hovertemplate=f"{drug} {specimen}: %{{y:g}} mg/L<br>%{{customdata}}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    has_csf = (measured["specimen"] == "csf").any() if not measured.empty else False
    fig.update_yaxes(
        title_text="mg/L",
        type="log" if has_csf else "linear",
        dtick=1 if has_csf else None,  # decades on a log axis
        rangemode="tozero",
        row=2,
        col=1,
    )
    return True


def _error_y(sessions: pd.DataFrame, column: str, colour: str) -> dict[str, Any] | None:
    """Plotly error bars of ``column`` from its 95 % interval (None: no interval to show)."""
    halves = error_halves(sessions, column)
    if halves is None:
        return None
    below, above = halves
    return {
        "type": "data",
        "symmetric": False,
        "array": above,
        "arrayminus": below,
        "color": colour,
        "thickness": 1.2,
        "width": 4,
    }


def session_hover(sessions: pd.DataFrame, column: str, *, unit: str = "") -> np.ndarray:
    """Per session (rows of ``sessions``): session id, study date, the value with its interval
    ("4.38 mL (95 % CI 4.10-4.66)") and the change from the previous session in words (with a
    line break, empty on a first session or without change columns), as a point's customdata."""
    change = SESSION_CHANGES.get(column)
    texts, changes = [], []
    for _, row in sessions.iterrows():
        texts.append(value_text(row, column, unit=unit, hover=True))
        said = change_text(row, *change, unit=unit) if change else ""
        changes.append(f"change vs previous: {said}<br>" if said else "")
    return np.stack(
        [
            sessions["session_id"].astype(str),
            sessions["study_date"].astype(str),
            np.asarray(texts, dtype=object),
            np.asarray(changes, dtype=object),
        ],
        axis=1,
    )


def _lesions(fig: go.Figure, outputs: CaseOutputs, offset: int) -> None:
    """Rows 3 and 4: FLAIR and DWI lesion volumes per session, and rADC, with their 95 % intervals
    as error bars where the analysis wrote them; each point carries its session id so that a click
    can open the session in the viewer, and its interval and change in words for the hover."""
    sessions = outputs.sessions
    sessions = sessions.sort_values("day")
    days = _days(sessions, "day", offset)
    for source, name in (("flair", "FLAIR lesions"), ("dwi", "DWI lesions")):
        column = f"{source}_lesion_volume_ml"
        if column not in sessions:
            continue
        fig.add_trace(
            go.Scatter(
                x=days,
                y=sessions[column],
                mode="lines+markers",
                marker={"size": 11, "color": SOURCE_COLOURS[source]},
                line={"color": SOURCE_COLOURS[source], "width": 2},
                error_y=_error_y(sessions, column, SOURCE_COLOURS[source]),
                name=f"{name} (mL)",
                customdata=session_hover(sessions, column, unit="mL"),
                hovertemplate=(
                    f"<b>{name}</b> %{{customdata[2]}}<br>%{{customdata[3]}}%{{customdata[0]}}, "
                    "%{customdata[1]} (day %{x})<br><i>click to open in the viewer</i><extra></extra>"
                ),
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(title_text="lesion volume (mL)", rangemode="tozero", row=3, col=1)
    for column, name, dash in (
        ("radc", "rADC of DWI lesions", "solid"),
        ("flair_lesion_radc", "rADC of FLAIR lesions", "dot"),
    ):
        if column not in sessions:
            continue
        fig.add_trace(
            go.Scatter(
                x=days,
                y=sessions[column],
                mode="lines+markers",
                marker={"size": 9, "color": "#444444"},
                line={"color": "#444444", "dash": dash},
                error_y=_error_y(sessions, column, "#444444"),
                name=name,
                customdata=session_hover(sessions, column),
                hovertemplate=(
                    f"{name} %{{customdata[2]}}<br>%{{customdata[3]}}%{{customdata[0]}}, "
                    "%{customdata[1]}<extra></extra>"
                ),
            ),
            row=4,
            col=1,
        )
    fig.add_hline(
        y=1.0,
        line={"color": "#aaaaaa", "dash": "dot", "width": 1},
        annotation_text="NAWM",
        annotation_position="bottom right",
        row=4,
        col=1,
    )
    fig.update_yaxes(title_text="rADC", range=[0.3, 1.4], row=4, col=1)


def _events(fig: go.Figure, outputs: CaseOutputs, offset: int) -> None:
    """Events as vertical lines through every panel, labelled at the top (labels of events a few
    days apart are stepped down so that they do not overlap).

    One shape per event in paper height on the shared x axis (rather than one per panel through
    ``add_vline(row="all")``, which is slow to build), all added in one layout update.
    """
    timeline = outputs.timeline
    if timeline.empty:
        return
    events = timeline[timeline["kind"] == "event"].copy()
    events["_day"] = pd.to_numeric(events["day"], errors="coerce") + offset
    events = events.dropna(subset=["_day"]).sort_values("_day")
    all_days = pd.to_numeric(timeline["day"], errors="coerce")
    span = max(float(all_days.max() - all_days.min()), 1.0)
    shapes, annotations = list(fig.layout.shapes), list(fig.layout.annotations)
    ends: list[float] = []  # where the last label of each level ends (days)
    day_per_char = span / 170  # 11 px text on a plot about 1100 px wide
    for _, event in events.iterrows():
        kind = str(event["item"])
        colour, dash, label = EVENT_STYLE.get(kind, ("#7f7f7f", "dot", kind.replace("_", " ")))
        day = float(event["_day"])
        level = next((n for n, end in enumerate(ends) if day > end), len(ends))
        if level == len(ends):
            ends.append(0.0)
        ends[level] = day + (len(label) + 1) * day_per_char
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": day,
                "x1": day,
                "y0": 0,
                "y1": 1,
                "line": {"color": colour, "dash": dash, "width": 1.4},
                "name": kind,
            }
        )
        annotations.append(
            {
                "x": day,
                "y": 1.0 - 0.045 * level,
                "xref": "x",
                "yref": "paper",
                "text": label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "bgcolor": "rgba(255,255,255,0.8)",
                "font": {"size": 11, "color": colour},
                "hovertext": f"{event['date']}: {event.get('detail', '')}",
            }
        )
    fig.update_layout(shapes=shapes, annotations=annotations)


def _mri_days(fig: go.Figure, outputs: CaseOutputs, offset: int) -> None:
    """Each MRI session's day as a thin line through the drug lanes and the exposure panel, so that
    what a patient had received by each scan reads off the figure."""
    days = _days(outputs.sessions, "day", offset).dropna()
    for day in days:
        for axis in ("y", "y2"):
            fig.add_shape(
                type="line",
                xref="x",
                yref=f"{axis} domain",
                x0=float(day),
                x1=float(day),
                y0=0,
                y1=1,
                line={"color": SOURCE_COLOURS["flair"], "width": 1, "dash": "dot"},
                opacity=0.6,
                name="mri_day",
            )


def overview_figure(
    outputs: CaseOutputs, index_on: date | None, index_label: str, *, height: int = 820
) -> go.Figure:
    """The case on one day axis: drug lanes, exposure, lesion volumes, rADC (shared x, in days from
    ``index_on``, calendar dates on hover).

    Parameters
    ----------
    outputs : CaseOutputs
    index_on : date or None
        Day 0 of the axis (None: the analysis' own index date).
    index_label : str
        What day 0 is ("first MRI", "first dose", ...), for the axis title.
    """
    index_on = index_on or outputs.analysis_index
    offset = outputs.day_offset(index_on)
    imaging = not outputs.sessions.empty  # a clinical-only case has no lesion panels
    rows = 4 if imaging else 2
    heights = list(_ROW_HEIGHTS) if imaging else [0.55, 0.45]
    titles = ("drugs", "exposure", "lesions", "diffusion (rADC)")[:rows]
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.035 if imaging else 0.08,
        row_heights=heights,
        subplot_titles=titles,
    )
    _drug_lanes(fig, outputs, offset, index_on)
    if not _exposure(fig, outputs, offset):
        low, high = fig.layout.yaxis2.domain
        fig.add_annotation(
            text="no exposure model for these drugs",
            xref="paper",
            yref="paper",
            x=0.5,
            y=(low + high) / 2,
            showarrow=False,
            font={"color": "#7f7f7f"},
        )
    if imaging:
        _lesions(fig, outputs, offset)
        _mri_days(fig, outputs, offset)
    _events(fig, outputs, offset)
    fig.add_shape(
        type="line",
        xref="x",
        yref="paper",
        x0=0,
        x1=0,
        y0=0,
        y1=1,
        line={"color": "#cccccc", "width": 1},
    )
    title = f"day from {index_label}"
    if index_on is not None:
        title += f" ({index_on.isoformat()})"
    fig.update_xaxes(title_text=title, row=rows, col=1, showticklabels=True)
    fig.update_xaxes(showgrid=True, gridcolor="#eeeeee", zeroline=False)
    fig.update_layout(
        height=height if imaging else int(height * 0.55),
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.08 if imaging else -0.16, "x": 0, "font": {"size": 11}},
        hovermode="closest",
        plot_bgcolor="white",
        barmode="overlay",
        clickmode="event+select",
        dragmode="pan",
        uirevision=outputs.case_id,
    )
    return fig


def reiber_curves(q_alb: np.ndarray) -> dict[str, np.ndarray]:
    """Reiber's hyperbolic reference range for IgG (Reiber 1994): ``q_alb`` and the returned
    quotients are plain ratios (not x 1e-3).

    Q_lim = 0.93 sqrt(Q_alb^2 + 6e-6) - 1.7e-3 (upper), mean 0.65 sqrt(Q_alb^2 + 8e-6) - 1.4e-3,
    lower 0.33 sqrt(Q_alb^2 + 2e-6) - 0.3e-3.
    """
    q = np.asarray(q_alb, float)
    return {
        "upper": 0.93 * np.sqrt(q**2 + 6e-6) - 1.7e-3,
        "mean": 0.65 * np.sqrt(q**2 + 8e-6) - 1.4e-3,
        "lower": 0.33 * np.sqrt(q**2 + 2e-6) - 0.3e-3,
    }


def _points(csf: pd.DataFrame) -> list[dict[str, Any]]:
    """One point per sample date and IgG-like quotient: IgG, drug (an IgG1 antibody), M-protein."""
    points: list[dict[str, Any]] = []
    for sample, rows in csf.groupby("sample_date"):
        values = dict(zip(rows["measure"], rows["value"], strict=False))
        q_alb = finite(values.get("albumin_quotient"))
        if q_alb is None:
            continue
        q_alb /= 1000.0
        for measure, value in values.items():
            number = finite(value)
            if number is None:
                continue
            if measure == "igg_index":
                points.append({"date": sample, "what": "IgG", "q_alb": q_alb, "q": number * q_alb})
            elif measure == "m_protein_index":
                points.append(
                    {"date": sample, "what": "M-protein", "q": number * q_alb, "q_alb": q_alb}
                )
            elif str(measure).endswith("_csf_serum_ratio"):
                drug = str(measure).removesuffix("_csf_serum_ratio")
                points.append({"date": sample, "what": drug, "q_alb": q_alb, "q": number / 100.0})
    return points


def reiber_figure(csf: pd.DataFrame, *, height: int = 460) -> go.Figure:
    """Reiber diagram: CSF/serum quotient of IgG-sized proteins against the albumin quotient (log-log,
    both x 1e-3), with the IgG reference hyperbolas and the age-related albumin-quotient limit.

    Points above the upper hyperbola mean more of the protein in CSF than the barrier explains
    (intrathecal synthesis); right of the vertical line, a barrier dysfunction.
    """
    fig = go.Figure()
    q = np.logspace(np.log10(1.5e-3), np.log10(1.5e-1), 200)
    curves = reiber_curves(q)
    for key, dash in (("upper", "solid"), ("mean", "dot"), ("lower", "solid")):
        fig.add_trace(
            go.Scatter(
                x=q * 1000,
                y=curves[key] * 1000,
                mode="lines",
                line={"color": "#555555", "dash": dash, "width": 1.2},
                name=f"IgG reference, {key} (Reiber)",
                hoverinfo="skip",
            )
        )
    if not csf.empty:
        limits = csf[csf["measure"] == "albumin_quotient"]["upper_limit"].map(finite).dropna()
        if len(limits):
            limit = float(limits.iloc[0])
            fig.add_shape(
                type="line",
                xref="x",
                yref="paper",
                x0=limit,
                x1=limit,
                y0=0,
                y1=1,
                line={"color": "#d62728", "dash": "dash"},
            )
            fig.add_annotation(
                x=np.log10(limit),
                y=1,
                xref="x",
                yref="paper",
                text=f"Q_alb limit {limit:.1f} (age)",
                showarrow=False,
                xanchor="left",
                yanchor="top",
                font={"color": "#d62728", "size": 11},
            )
        symbols = {"IgG": "circle", "M-protein": "diamond"}
        for what, rows in pd.DataFrame(_points(csf)).groupby("what") if _points(csf) else []:
            fig.add_trace(
                go.Scatter(
                    x=rows["q_alb"] * 1000,
                    y=rows["q"] * 1000,
                    mode="markers",
                    marker={"size": 11, "symbol": symbols.get(str(what), "square")},
                    name=f"Q {what}",
                    customdata=rows["date"],
                    hovertemplate=(
                        f"Q {what} %{{y:.2f}} x 1e-3<br>Q_alb %{{x:.1f}} x 1e-3<br>%{{customdata}}"
                        "<extra></extra>"
                    ),
                )
            )
    fig.update_xaxes(
        type="log",
        title_text="Q albumin (x 1e-3)",
        range=[np.log10(1.5), np.log10(150)],
        tickvals=[2, 5, 10, 20, 50, 100],
        gridcolor="#eeeeee",
    )
    fig.update_yaxes(
        type="log",
        title_text="Q IgG-class protein (x 1e-3)",
        range=[np.log10(0.5), np.log10(1000)],
        tickvals=[0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
        gridcolor="#eeeeee",
    )
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        plot_bgcolor="white",
        legend={"font": {"size": 11}},
    )
    return fig
