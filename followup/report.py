"""``leukotrack report``: the printable follow-up report of one analysed case, as a PDF of A4 pages.

Drawn with Matplotlib (no browser, no network) from the case's output folder only:

* page 1: the case header, the course on one day axis (drugs, exposure, lesion volumes, rADC, events)
  and the session table;
* pages 2 and on (cases with images): the sessions-by-sequence grid at the most affected axial slice
  (five sessions a page, images about 5 cm high), with FLAIR and DWI lesions, new or enlarging
  lesions outlined, orientation letters and a 20 mm scale bar on every image;
* last page: the lesion change summary, a reader's corrections when there are any, CSF indices when
  there are paired samples, methods, software version and provenance.

Values a reader corrected are marked ``*`` (rejected ones "rejected") wherever they appear.

Every page carries the research-use statement. Written atomically: a failure leaves no partial file.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no screen, no browser
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from followup.corrections import read_corrections
from followup.intervals import (
    LESION_INTERVAL,
    SESSION_CHANGES,
    SOURCE_VOLUMES,
    change_text,
    ci_columns,
    error_halves,
    interval_text,
    lesion_intervals,
    method_sentence,
    uncertainty_levels,
)
from followup.palette import EVENT_COLOURS, SOURCE_COLOURS, drug_colour
from followup.results import (
    INDEX_CHOICES,
    CaseOutputs,
    ImageKind,
    finite,
    index_dates,
    is_daily,
    lesion_courses,
    load_case_outputs,
    marked_labels,
    session_aliases,
    template_fit_warning,
)
from imaging.display import (
    DWI_RGB,
    FLAIR_RGB,
    Overlay,
    Volume,
    Window,
    annotate,
    compose,
    load_volume,
    presets,
    side_by_side,
)
from safeio import OutputIsFolderError, write_bytes

__all__ = ["RESEARCH_USE", "most_affected_slice", "report_bytes", "write_report"]

RESEARCH_USE = (
    "Research use only. leukotrack is not a medical device; this report is not for diagnosis or "
    "treatment decisions. Check every figure against the images."
)
A4 = (8.27, 11.69)
SEQUENCES = ("DWI", "ADC", "FLAIR")


@dataclass(frozen=True)
class Redaction:
    """How a de-identified report names things: the case pseudonym and session aliases; it shows no
    calendar date (days from the index date only) and no analysis time stamps."""

    name: str
    sessions: dict[str, str]

    def session(self, session_id: str) -> str:
        """The alias of a session label."""
        return self.sessions.get(session_id, "ses-xx")


def _frame(fig: Figure, page: int, pages: int, case_id: str) -> None:
    fig.text(0.06, 0.975, f"leukotrack follow-up report: {case_id}", fontsize=9, color="#555555")
    fig.text(0.94, 0.975, f"page {page} of {pages}", fontsize=9, color="#555555", ha="right")
    fig.text(
        0.5,
        0.012,
        RESEARCH_USE,
        fontsize=7.5,
        color="#b00000",
        ha="center",
        wrap=True,
    )


def _days(frame: pd.DataFrame, column: str, offset: int) -> pd.Series:
    return pd.to_numeric(frame[column], errors="coerce") + offset


def _course(fig: Figure, box: list[float], outputs: CaseOutputs, offset: int, label: str) -> None:
    """Drug lanes, exposure, lesion volumes and rADC on one day axis inside ``box`` (figure coords)."""
    imaging = not outputs.sessions.empty
    heights = [1.1, 1.0, 1.5, 0.9] if imaging else [1.2, 1.0]
    grid = fig.add_gridspec(
        len(heights),
        1,
        left=box[0],
        bottom=box[1],
        right=box[2],
        top=box[3],
        hspace=0.32,  # room for each panel's title below the tick labels of the panel above
        height_ratios=heights,
    )
    axes = [fig.add_subplot(grid[0])]
    axes += [fig.add_subplot(grid[n], sharex=axes[0]) for n in range(1, len(heights))]
    timeline = outputs.timeline
    given = (
        timeline[timeline["kind"].isin(["administration", "held"])]
        if not timeline.empty
        else timeline
    )
    drugs = list(dict.fromkeys(given["item"])) if not given.empty else []
    for lane, drug in enumerate(drugs):
        rows = given[(given["item"] == drug) & (given["kind"] == "administration")]
        days = _days(rows, "day", offset)
        colour = drug_colour(str(drug))
        if is_daily(days):
            periods = timeline[(timeline["kind"] == "drug_on") & (timeline["item"] == drug)]
            starts = _days(periods, "day", offset)
            ends = _days(periods, "end_day", offset).fillna(starts) + 1
            axes[0].broken_barh(
                list(zip(starts, ends - starts, strict=True)), (lane - 0.25, 0.5), color=colour
            )
        else:
            iv = rows["route"].astype(str).str.upper().eq("IV")
            axes[0].scatter(days[iv], [lane] * int(iv.sum()), marker="^", s=22, color=colour)
            axes[0].scatter(days[~iv], [lane] * int((~iv).sum()), marker="D", s=14, color=colour)
        held = given[(given["item"] == drug) & (given["kind"] == "held")]
        axes[0].scatter(_days(held, "day", offset), [lane] * len(held), marker="x", color="#d62728")
    axes[0].set_yticks(range(len(drugs)), drugs, fontsize=7)
    axes[0].set_ylim(max(len(drugs), 1) - 0.5, -0.5)  # one empty lane without drugs
    axes[0].set_title(
        "drugs (triangles IV, diamonds oral/SC, bars daily cycles, x held; dotted: MRI days)",
        fontsize=8,
    )
    if imaging:  # each MRI day through the drug lanes: what had been given by each scan
        for day in _days(outputs.sessions, "day", offset).dropna():
            axes[0].axvline(
                float(day), color=SOURCE_COLOURS["flair"], lw=0.7, ls=":", gid="mri_day"
            )
    pk = outputs.pk
    if not pk.empty:
        for drug, rows in pk[pk["kind"] == "model"].groupby("drug"):
            axes[1].plot(
                _days(rows, "day", offset),
                rows["concentration_mg_l"],
                lw=1,
                color="#6a3d9a",
                label=f"{drug!s}: indicative population curve ({rows['model'].iloc[0]!s})",
            )
        measured = pk[pk["kind"] == "measured"]
        for specimen, rows in measured.groupby("specimen"):
            axes[1].scatter(
                _days(rows, "day", offset),
                rows["concentration_mg_l"],
                s=14,
                marker="o" if specimen == "serum" else "s",
                label=f"measured, {specimen}",
                zorder=3,
            )
        if (measured["specimen"] == "csf").any():
            axes[1].set_yscale("log")
        axes[1].legend(fontsize=6, loc="upper right", frameon=False)
    axes[1].set_ylabel("mg/L", fontsize=7)
    axes[1].set_title("exposure (model curve: typical patient, not a patient estimate)", fontsize=8)
    if imaging:
        sessions = outputs.sessions.sort_values("day")
        days = _days(sessions, "day", offset)
        for column, name, colour in (
            ("flair_lesion_volume_ml", "FLAIR lesions", SOURCE_COLOURS["flair"]),
            ("dwi_lesion_volume_ml", "DWI lesions", SOURCE_COLOURS["dwi"]),
        ):
            if column in sessions:
                axes[2].plot(days, sessions[column], "o-", color=colour, ms=4, lw=1.4, label=name)
                _error_bars(axes[2], days, sessions, column, colour)
        axes[2].set_ylabel("mL", fontsize=7)
        axes[2].set_ylim(bottom=0)  # a volume axis starts at zero, one session or many
        axes[2].legend(fontsize=6, loc="upper left", frameon=False)
        axes[2].set_title("lesion volume per session", fontsize=8)
        for column, name, style in (
            ("radc", "DWI lesions", "o-"),
            ("flair_lesion_radc", "FLAIR lesions", "s--"),
        ):
            if column in sessions:
                axes[3].plot(
                    days, sessions[column], style, color="#444444", ms=3.5, lw=1, label=name
                )
                _error_bars(axes[3], days, sessions, column, "#444444")
        axes[3].axhline(1.0, color="#aaaaaa", lw=0.8, ls=":")
        axes[3].set_ylabel("rADC", fontsize=7)
        axes[3].legend(fontsize=6, loc="upper left", frameon=False)
        axes[3].set_title("ADC in lesions / normal-appearing white matter", fontsize=8)
    events = timeline[timeline["kind"] == "event"] if not timeline.empty else timeline
    for _, event in events.iterrows():
        day = finite(event["day"])
        if day is None:
            continue
        colour = EVENT_COLOURS.get(str(event["item"]), "#2ca02c")
        for axis in axes:
            axis.axvline(day + offset, color=colour, lw=0.8, ls="--")
        axes[0].annotate(
            str(event["item"]).replace("_", " "),
            (day + offset, -0.5),
            fontsize=6,
            color=colour,
            rotation=90,
            va="top",
            ha="right",
        )
    for axis in axes:
        axis.tick_params(labelsize=7)
        axis.grid(axis="x", color="#eeeeee")
    for axis in axes[:-1]:
        axis.tick_params(labelbottom=False)
    axes[-1].set_xlabel(f"day from {label}", fontsize=8)


def _error_bars(
    axis: Any, days: pd.Series, sessions: pd.DataFrame, column: str, colour: str
) -> None:
    """The 95 % interval of ``column`` as error bars on its points (nothing for outputs without
    intervals, and no bar where a session has none)."""
    halves = error_halves(sessions, column)
    if halves is None:
        return
    values = pd.to_numeric(sessions[column], errors="coerce").to_numpy(float)
    known = np.isfinite(values) & np.isfinite(halves[0]) & np.isfinite(halves[1])
    if not known.any():
        return
    axis.errorbar(
        np.asarray(days, float)[known],
        values[known],
        yerr=np.stack([halves[0][known], halves[1][known]]),
        fmt="none",
        ecolor=colour,
        elinewidth=1,
        capsize=2.5,
        label=f"_ci_{column}",  # underscore: not in the legend
    )


def _table(
    fig: Figure,
    box: list[float],
    frame: pd.DataFrame,
    font: float = 7,
    widths: list[float] | None = None,
) -> None:
    """``frame`` as a table in ``box`` (left, bottom, width, height; figure fractions). Without
    ``widths``, columns are as wide as their longest text, and the font shrinks (to 5.5 pt at
    least) until the table fits the box's width."""
    axis = fig.add_axes((box[0], box[1], box[2], box[3]))
    axis.axis("off")
    if frame.empty:
        return
    if widths is None:
        chars = [
            max([len(str(column))] + [len(str(cell)) for cell in frame[column]]) + 2
            for column in frame.columns
        ]
        widths = [n / sum(chars) for n in chars]
        width_pt = box[2] * fig.get_figwidth() * 72
        font = max(5.5, min(font, width_pt / (0.6 * sum(chars))))  # about 0.6 em a character
    table = axis.table(
        cellText=frame.to_numpy().tolist(),
        colLabels=list(frame.columns),
        loc="upper center",
        cellLoc="center",
        colWidths=widths,
    )
    table.auto_set_font_size(False)
    table.set_fontsize(font)
    table.scale(1, 1.25)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#cccccc")
        if row == 0:
            cell.set_facecolor("#f0f0f0")


def _fmt(value: Any, digits: int = 2) -> str:
    number = finite(value)
    if number is None:
        return (
            "–"
            if value in (None, "") or (isinstance(value, float) and value != value)
            else str(value)
        )
    return f"{number:.{digits}f}"


def _sources(value: Any) -> set[str]:
    return set(value.split(";")) if isinstance(value, str) and value else set()


def _marks(row: pd.Series) -> dict[str, Any]:
    """Per source, how a session's value is printed: ``*`` when a reader corrected it, "rejected"
    when a reader took the source out of measurement; a value's 95 % interval (``span``,
    "4.10-4.66") follows in brackets, after the mark."""
    corrected, rejected = _sources(row.get("corrected")), _sources(row.get("rejected"))

    def bracket(span: str) -> str:
        return f" ({span})" if span else ""

    def marker(source: str) -> Any:
        if source in rejected:
            return lambda _text, _span="": "rejected"
        if source in corrected:
            return lambda text, span="": f"{text}*{bracket(span)}"
        return lambda text, span="": f"{text}{bracket(span)}"

    return {source: marker(source) for source in ("flair", "dwi")}


def _measure(row: pd.Series, column: str, mark: Any) -> str:
    """A session's value with a reader's mark and its 95 % interval: "4.38* (4.10-4.66)"."""
    return str(mark(_fmt(row.get(column)), interval_text(row, column)))


def session_table(
    outputs: CaseOutputs, offset: int, redaction: Redaction | None = None
) -> pd.DataFrame:
    """The report's session table: one row per MRI (volumes in mL and rADC with their 95 %
    intervals, change counts, and where the analysis wrote them each volume's change from the
    previous session: "+2.10, beyond noise: increase", "+0.05, within measurement noise"); with a
    redaction, sessions by alias and no date column."""
    rows = []
    lesions = outputs.lesions
    for _, row in outputs.sessions.sort_values("day").iterrows():
        here = lesions[lesions["session_id"] == row["session_id"]] if not lesions.empty else lesions
        counts = here["change"].value_counts() if not here.empty else pd.Series(dtype=int)
        day = finite(row["day"])
        mark = _marks(row)
        rows.append(
            {
                "session": row["session_id"],
                "date": row["study_date"],
                "day": "–" if day is None else str(int(day) + offset),
                "FLAIR mL": _measure(row, "flair_lesion_volume_ml", mark["flair"]),
                "L / R": f"{_fmt(row.get('flair_lesion_volume_left_ml'))} / "
                f"{_fmt(row.get('flair_lesion_volume_right_ml'))}",
                "DWI mL": _measure(row, "dwi_lesion_volume_ml", mark["dwi"]),
                "rADC": _measure(row, "radc", mark["dwi"]),
                "new / enlarging": f"{int(counts.get('new', 0))} / {int(counts.get('enlarging', 0))}",
                **{
                    f"{source} change mL": change_text(
                        row, *SESSION_CHANGES[column], interval=False
                    )
                    for source, column in SOURCE_VOLUMES.items()
                    if set(SESSION_CHANGES[column]) & set(outputs.sessions.columns)
                },
            }
        )
    table = pd.DataFrame(rows)
    if redaction is not None and not table.empty:
        table["session"] = table["session"].map(redaction.session)
        table = table.drop(columns=["date"])
    return table


def lesion_summary(outputs: CaseOutputs, offset: int, limit: int = 14) -> pd.DataFrame:
    """The largest tracked lesions (by peak volume) with where they are and their course."""
    courses = lesion_courses(outputs.lesions, outputs.session_ids, offset)
    if courses.empty:
        return courses
    courses = courses.sort_values("peak_ml", ascending=False).head(limit)
    bounded = ci_columns(LESION_INTERVAL)[0] in outputs.lesions
    if bounded:
        courses = courses.merge(lesion_intervals(outputs.lesions), on=["source", "lesion"])
    summary = pd.DataFrame(
        {
            "lesion": courses["lesion"],
            "source": courses["source"].str.upper(),
            "side": courses["hemisphere"],
            "region": courses["region"],
            "seen (days)": [
                f"{a} to {b}"
                for a, b in zip(courses["first_day"], courses["last_day"], strict=True)
            ],
            "peak mL": [
                f"{peak:.2f}" + (f" ({span})" if span else "")
                for peak, span in zip(
                    courses["peak_ml"],
                    courses["peak_ci_ml"] if bounded else [""] * len(courses),
                    strict=True,
                )
            ],
            "course": courses["changes"],
        }
    )
    if bounded:
        summary["last change vs previous"] = courses["last_change_vs_previous"]
    return summary.reset_index(drop=True)


def most_affected_slice(outputs: CaseOutputs) -> int | None:
    """The axial slice (baseline grid, RAS index) with the most FLAIR plus DWI lesion voxels summed
    over all sessions; None when the case has no lesion labels."""
    totals: np.ndarray | None = None
    kinds: tuple[ImageKind, ...] = ("flair_lesions", "dwi_lesions")
    for session in outputs.session_ids:
        for kind in kinds:
            path = outputs.image_path(session, kind)
            if path is None:
                continue
            counts = (np.asarray(load_volume(path, labels=True).data) > 0).sum(axis=(0, 1))
            totals = counts if totals is None else totals + counts
    if totals is None or totals.max() == 0:
        return None
    return int(np.argmax(totals))


def _grid(
    fig: Figure,
    box: list[float],
    outputs: CaseOutputs,
    index: int,
    offset: int,
    redaction: Redaction | None = None,
    sessions: list[str] | None = None,
    rows_per_page: int = 5,
) -> None:
    """Sessions (rows; ``sessions``, default all) by DWI, ADC, FLAIR at axial slice ``index``,
    lesions drawn, new or enlarging lesions outlined in red; rows are sized for
    ``rows_per_page`` sessions (a short last page keeps the size)."""
    baseline = outputs.session_ids[0]
    sessions = sessions if sessions is not None else outputs.session_ids
    windows: dict[str, Window] = {}
    for sequence in SEQUENCES:
        path = outputs.image_path(baseline, sequence)  # type: ignore[arg-type]
        windows[sequence] = next(
            iter(presets(sequence, load_volume(path) if path else None).values())
        )
    marked = marked_labels(outputs.lesions)
    height = (box[3] - box[1]) / max(rows_per_page, len(sessions))
    for row, session in enumerate(sessions):
        labels = {
            source: outputs.image_path(session, f"{source}_lesions")  # type: ignore[arg-type]
            for source in ("flair", "dwi")
        }
        cells = []
        reference: Volume | None = None
        for sequence in SEQUENCES:
            path = outputs.image_path(session, sequence)  # type: ignore[arg-type]
            image = load_volume(path) if path else None
            reference = reference or image
            source = "flair" if sequence == "FLAIR" else "dwi"
            overlays = []
            if labels[source] is not None:
                highlight = marked.get((session, source), frozenset())
                overlays.append(
                    Overlay(
                        load_volume(labels[source], labels=True),  # type: ignore[arg-type]
                        FLAIR_RGB if source == "flair" else DWI_RGB,
                        highlight,
                    )
                )
            if image is None and reference is None:
                continue
            cell = compose(
                image,
                "axial",
                index,
                windows[sequence],
                overlays,
                opacity=0.45,
                reference=reference,
            )
            cells.append(annotate(cell, sequence if image is not None else f"{sequence}: none"))
        if not cells:
            continue
        top = box[3] - row * height
        axis = fig.add_axes(
            (box[0] + 0.16, top - height + 0.004, box[2] - box[0] - 0.16, height - 0.008)
        )
        axis.imshow(side_by_side(cells), interpolation="nearest")
        axis.axis("off")
        assert reference is not None  # a cell was drawn
        _orientation(axis, cells, min(reference.pixel_mm("axial")))
        match = outputs.sessions[outputs.sessions["session_id"] == session].iloc[0]
        day = finite(match["day"])
        mark = _marks(match)
        fig.text(
            box[0],
            top - height / 2,
            f"{redaction.session(session) if redaction else session}\n"
            f"day {int(day) + offset if day is not None else '–'}\n"
            f"FLAIR {_measure(match, 'flair_lesion_volume_ml', mark['flair'])} mL\n"
            f"DWI {_measure(match, 'dwi_lesion_volume_ml', mark['dwi'])} mL",
            fontsize=8,
            va="center",
        )


def _orientation(axis: Any, cells: list[np.ndarray], pixel_mm: float, gap_px: int = 4) -> None:
    """Orientation letters (radiological: the patient's right on the left) and a 20 mm scale bar
    on every cell of a row drawn by :func:`imaging.display.side_by_side`."""
    rows, width = cells[0].shape[:2]
    style = {"color": "#ffe896", "fontsize": 6.5, "ha": "center", "va": "center", "weight": "bold"}
    for n in range(len(cells)):
        left = n * (width + gap_px)
        axis.text(left + 7, rows / 2, "R", **style)
        axis.text(left + width - 7, rows / 2, "L", **style)
        axis.text(left + width / 2, 7, "A", **style)
        axis.text(left + width / 2, rows - 7, "P", **style)
        bar = 20.0 / pixel_mm  # pixels of 20 mm
        x0, y = left + width - 6 - bar, rows - 5
        axis.plot(
            [x0, x0 + bar],
            [y, y],
            color="#ffe896",
            linewidth=1.2,
            solid_capstyle="butt",
            scalex=False,
            scaley=False,
        )
        axis.text(x0 + bar / 2, y - 6, "20 mm", **{**style, "fontsize": 5.5, "weight": "normal"})


def _engines_text(provenance: dict[str, Any]) -> str:
    """The segmentation engines in words: method, name and version (from provenance.json)."""
    engines = provenance.get("engines") or {}
    parts = []
    for source in ("flair", "dwi"):
        info = engines.get(source)
        if isinstance(info, dict) and info.get("name"):
            method = str(info.get("method") or f"{source.upper()} lesions")
            parts.append(f"{method} (engine {info['name']} {info.get('version', '')})".strip())
    return "; ".join(parts) or "by the engines recorded in provenance.json"


def _methods(
    outputs: CaseOutputs, index_key: str, index_on: date | None, redaction: Redaction | None
) -> str:
    provenance = outputs.provenance
    baseline = str(provenance.get("baseline_session", "–"))
    baseline = redaction.session(baseline) if redaction else baseline
    shown_on = index_on.isoformat() if index_on and redaction is None else "–"
    finished = provenance.get("finished_utc", "–") if redaction is None else "–"
    software = provenance.get("software", {})
    parameters = provenance.get("parameters", {})
    intervals = method_sentence(outputs.sessions, provenance)  # "" for older outputs
    measured = any(level != "off" for level in uncertainty_levels(outputs.sessions))
    noise = " and beyond the measurement noise" if measured else ""
    intervals += " " if intervals else ""
    return textwrap.dedent(
        f"""\
        Methods. Sessions were loaded from {provenance.get("layout", "the case folder")} input, bias-corrected
        (N4), registered rigidly to the baseline session ({baseline}) and
        segmented: {_engines_text(provenance)}. Lesions were tracked in baseline space between
        consecutive sessions
        (new, enlarging or shrinking by at least 30 %{noise}, stable, resolved, merged, split). rADC is
        the mean ADC in the lesions divided by that of normal-appearing white matter. {intervals}Day 0
        is the
        {INDEX_CHOICES.get(index_key, index_key)} ({shown_on}). Drug
        exposure curves are indicative population curves of published models for a typical patient, not
        patient estimates. Images are shown resampled onto the baseline grid; read the original series.
        Software: {software.get("name", "leukotrack")} {software.get("version", "")}, Python
        {provenance.get("python", "")}; analysis finished {finished};
        {len(parameters.get("pipeline", {}))} pipeline parameters and every registration are in
        provenance.json of the output folder."""
    ).replace("\n", " ")


def _csf(outputs: CaseOutputs, offset: int, redaction: Redaction | None) -> list[str]:
    csf = outputs.csf
    if csf.empty:
        return []

    def when(row: pd.Series) -> str:
        if redaction is None:
            return str(row["sample_date"])
        day = finite(row.get("day"))
        return f"day {int(day) + offset}" if day is not None else "day –"

    return [
        f"{when(row)}: {row['reading']}"
        for _, row in csf.iterrows()
        if isinstance(row["reading"], str)
    ]


def report_bytes(
    case_folder: Path, index_key: str | None = None, *, pseudonym: str | None = None
) -> bytes:
    """The PDF report of ``OUT/sub-<case>`` as bytes (``index_key``: day 0, a key of INDEX_CHOICES;
    default the analysis' own index date).

    With ``pseudonym`` the report is de-identified: the case is named by the pseudonym, sessions by
    ``ses-01``, ``ses-02``... in time order, and no calendar date or time stamp is shown (days from the
    index date only).
    """
    outputs = load_case_outputs(Path(case_folder))
    dates = index_dates(outputs)
    if index_key is None or index_key not in dates:
        index_on = outputs.analysis_index
        index_key = next(
            (k for k, d in dates.items() if d == index_on), next(iter(dates), "first_mri")
        )
    index_on = dates.get(index_key, outputs.analysis_index)
    offset = outputs.day_offset(index_on)
    redaction = (
        Redaction(pseudonym, session_aliases(outputs.session_ids))
        if pseudonym is not None
        else None
    )
    name = redaction.name if redaction else outputs.case_id
    label = INDEX_CHOICES.get(index_key, index_key) + (
        f" ({index_on.isoformat() if index_on else '–'})" if redaction is None else ""
    )
    slice_index = most_affected_slice(outputs) if outputs.session_ids else None
    per_page = 5
    chunks = (
        [
            outputs.session_ids[i : i + per_page]
            for i in range(0, len(outputs.session_ids), per_page)
        ]
        if slice_index is not None
        else []
    )
    pages = 2 + len(chunks)
    audit = [row for row in read_corrections(outputs.folder) if row.get("status") == "active"]
    buffer = io.BytesIO()
    with PdfPages(
        buffer,
        metadata={
            "Title": f"leukotrack report {name}",
            "Creator": "leukotrack",
            **({"CreationDate": None} if redaction else {}),
        },
    ) as pdf:
        page = 1
        fig = plt.figure(figsize=A4)
        _frame(fig, page, pages, name)
        dated = [d for d in outputs.sessions.get("study_date", []) if isinstance(d, str)]
        if redaction is not None:
            dated = []
        fig.text(0.06, 0.945, f"Follow-up of case {name}", fontsize=15, weight="bold")
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = (
            f"{len(outputs.session_ids)} MRI sessions"
            + (f", {min(dated)} to {max(dated)}" if dated else "")
            + f"; day 0 = {label}."
            + (f" Generated {generated}." if redaction is None else " De-identified.")
        )
        fig.text(0.06, 0.925, header, fontsize=8.5)
        notes = []
        warning = template_fit_warning(outputs.provenance)
        if warning is not None:
            notes.append((warning, "#b00000"))
        if audit:
            notes.append((_corrections_note(audit, redaction), "#8a4b00"))
        top = 0.9
        for text, colour in notes:  # above the course figure, which moves down to make room
            lines = textwrap.wrap(text, 125)
            for n, line in enumerate(lines):
                fig.text(
                    0.06, top + 0.005 - 0.013 * n, line, fontsize=7.5, color=colour, weight="bold"
                )
            top -= 0.013 * len(lines) + 0.01
        _course(fig, [0.16, 0.40, 0.95, top], outputs, offset, label)
        if not outputs.sessions.empty:
            fig.text(0.06, 0.345, "Sessions", fontsize=10, weight="bold")
            _table(fig, [0.04, 0.04, 0.92, 0.295], session_table(outputs, offset, redaction))
            if audit:
                fig.text(
                    0.06,
                    0.045,
                    "* corrected by a reader (see the last page); the automatic values are kept.",
                    fontsize=7,
                )
        else:
            fig.text(0.06, 0.345, "No MRI sessions in this case (clinical files only).", fontsize=9)
        pdf.savefig(fig)
        plt.close(fig)
        for number, chunk in enumerate(chunks):
            assert slice_index is not None
            page += 1
            fig = plt.figure(figsize=A4)
            _frame(fig, page, pages, name)
            more = f" ({number + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            fig.text(
                0.06,
                0.95,
                f"Images at the most affected axial slice ({slice_index + 1} of the baseline "
                f"grid){more}",
                fontsize=11,
                weight="bold",
            )
            fig.text(
                0.06,
                0.905,
                "Orange: FLAIR lesions; cyan: DWI lesions; red outline: new or enlarging since the "
                "previous session. Radiological convention (patient's right on the left, R/L, A/P "
                "on every image); bar: 20 mm.",
                fontsize=7.5,
                wrap=True,
            )
            _grid(
                fig,
                [0.03, 0.03, 0.98, 0.885],
                outputs,
                slice_index,
                offset,
                redaction,
                sessions=chunk,
                rows_per_page=per_page,
            )
            pdf.savefig(fig)
            plt.close(fig)
        page += 1
        fig = plt.figure(figsize=A4)
        _frame(fig, page, pages, name)
        y = 0.94
        summary = lesion_summary(outputs, offset) if slice_index is not None else pd.DataFrame()
        if not summary.empty:
            fig.text(0.06, y, "Lesions (largest first)", fontsize=10, weight="bold")
            height = 0.017 * (len(summary) + 1) + 0.01
            _table(
                fig,
                [0.04, y - 0.01 - height, 0.92, height],
                summary,
                font=6.5,
                widths=(
                    [0.07, 0.07, 0.07, 0.1, 0.1, 0.07, 0.52]
                    if len(summary.columns) == 7
                    else [0.06, 0.05, 0.05, 0.08, 0.08, 0.12, 0.27, 0.29]  # with intervals
                ),
            )
            y -= height + 0.04
        if audit:
            fig.text(0.06, y, "Corrections by a reader", fontsize=10, weight="bold")
            y -= 0.022
            for row in audit[:12]:
                line = _correction_line(row, redaction)
                for part in textwrap.wrap(line, 120):
                    fig.text(0.06, y, part, fontsize=7.5)
                    y -= 0.015
            if len(audit) > 12:
                fig.text(0.06, y, f"... and {len(audit) - 12} more (corrections.tsv)", fontsize=7.5)
                y -= 0.015
            y -= 0.02
        readings = _csf(outputs, offset, redaction)
        if readings:
            fig.text(0.06, y, "CSF and serum", fontsize=10, weight="bold")
            y -= 0.025
            for reading in readings:
                for line in textwrap.wrap(reading, 120):
                    fig.text(0.06, y, line, fontsize=7.5)
                    y -= 0.016
            y -= 0.02
        fig.text(0.06, y, "Methods and provenance", fontsize=10, weight="bold")
        y -= 0.025
        methods = _methods(outputs, index_key, index_on, redaction).replace(" %", "\u00a0%")
        for line in textwrap.wrap(methods, 115, break_on_hyphens=False):  # "95 %" kept whole
            fig.text(0.06, y, line.replace("\u00a0", " "), fontsize=7.5)
            y -= 0.016
        y -= 0.02
        fig.text(0.06, y, RESEARCH_USE, fontsize=9, color="#b00000", weight="bold", wrap=True)
        pdf.savefig(fig)
        plt.close(fig)
    return buffer.getvalue()


def _corrections_note(audit: list[dict[str, str]], redaction: Redaction | None) -> str:
    """Page 1's line on a reader's corrections."""
    sessions = sorted({row["session_id"] for row in audit})
    shown = [redaction.session(s) if redaction else s for s in sessions]
    return (
        f"Corrected by a reader: {len(audit)} edit{'s' if len(audit) != 1 else ''} "
        f"({', '.join(shown)}). Values marked * differ from the automatic result, which is kept; "
        "the corrections are listed on the last page."
    )


def _correction_line(row: dict[str, str], redaction: Redaction | None) -> str:
    """One correction of the last page: what and where; by whom, when and why unless de-identified."""
    session = redaction.session(row["session_id"]) if redaction else row["session_id"]
    after = "rejected" if not row.get("volume_after_ml") else f"{row['volume_after_ml']} mL"
    lesion = f" {row['lesion_id']}" if row.get("lesion_id") else ""
    line = f"{session} {row['source'].upper()}: {row['action']}{lesion}, {row['volume_before_ml']} -> {after}"
    if redaction is not None:  # no names, dates or free text in a de-identified report
        return line
    return f"{line} by {row['author']} on {row['at_utc'][:10]}; reason: {row['reason']}"


def write_report(
    case_folder: Path,
    out_pdf: Path,
    index_key: str | None = None,
    *,
    pseudonym: str | None = None,
) -> Path:
    """Write the report of ``OUT/sub-<case>`` to ``out_pdf`` (atomically) and return its path
    (``pseudonym``: de-identified, see :func:`report_bytes`).

    Raises
    ------
    IncompleteAnalysisError
        When ``case_folder`` is not a finished analysis (no or a cut provenance.json, a missing file).
    OutputIsFolderError
        When ``out_pdf`` is a folder (checked first; nothing is drawn or written).
    OutputError
        Full or read-only disk; no partial file is left.
    """
    out_pdf = Path(out_pdf)
    if out_pdf.is_dir():
        raise OutputIsFolderError(
            f"{out_pdf} is a folder; give the PDF file to write, e.g. --out {out_pdf / 'report.pdf'}"
        )
    data = report_bytes(case_folder, index_key, pseudonym=pseudonym)
    return write_bytes(out_pdf, data)
