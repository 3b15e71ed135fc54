"""How a measure's 95 % interval and its change from the previous session read, wherever leukotrack
shows them: the dashboard's course figure and tables, the PDF report and the cohort view.

The analysis writes, beside a measure ``M`` of sessions.tsv (:data:`SESSION_MEASURES`), its interval
``M_ci_low`` and ``M_ci_high``, and the change from the previous session that measured it
(:data:`SESSION_CHANGES`: value, interval, and a label "increase", "decrease" or "within noise");
lesions.tsv has the same for each lesion's volume (:data:`LESION_INTERVAL`). Cells are empty where
they do not apply (a first session, a level ``off``). Outputs of older versions have none of these
columns: every helper here then gives the value alone, with no interval and no label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from followup.results import finite

__all__ = [
    "INCREASE_DECREASE",
    "LESION_CHANGE",
    "LESION_INTERVAL",
    "LEVEL_COLUMN",
    "SESSION_CHANGES",
    "SESSION_MEASURES",
    "SOURCE_VOLUMES",
    "WITHIN_NOISE",
    "WITHIN_NOISE_TEXT",
    "Row",
    "bounds",
    "change_text",
    "ci_columns",
    "error_halves",
    "interval_text",
    "label_of",
    "label_text",
    "lesion_intervals",
    "method_sentence",
    "uncertainty_levels",
    "value_text",
]

#: A table row: a sessions.tsv or lesions.tsv row (pandas) or a store row (dict).
Row: TypeAlias = "Mapping[str, Any] | pd.Series[Any]"
#: The measures of sessions.tsv that carry a 95 % interval.
SESSION_MEASURES = ("flair_lesion_volume_ml", "dwi_lesion_volume_ml", "radc", "flair_lesion_radc")
#: Per measure: the column of its change from the previous session, and that change's label.
SESSION_CHANGES: dict[str, tuple[str, str]] = {
    "flair_lesion_volume_ml": (
        "flair_lesion_volume_change_ml",
        "flair_lesion_volume_change_beyond_noise",
    ),
    "dwi_lesion_volume_ml": (
        "dwi_lesion_volume_change_ml",
        "dwi_lesion_volume_change_beyond_noise",
    ),
    "radc": ("radc_change", "radc_change_beyond_noise"),
    "flair_lesion_radc": ("flair_lesion_radc_change", "flair_lesion_radc_change_beyond_noise"),
}
#: The lesion volumes whose change the tables say in words, by source as a reader names it.
SOURCE_VOLUMES = {"FLAIR": "flair_lesion_volume_ml", "DWI": "dwi_lesion_volume_ml"}
#: lesions.tsv: the volume that carries an interval, and its change column and label.
LESION_INTERVAL = "volume_ml"
LESION_CHANGE = ("volume_change_ml", "change_beyond_noise")
#: sessions.tsv: how the intervals were obtained ("off", "fast", "standard", "full").
LEVEL_COLUMN = "uncertainty_level"
#: The label of a change inside the measurement's noise, and how it is written for a reader.
WITHIN_NOISE = "within noise"
WITHIN_NOISE_TEXT = "within measurement noise"
#: The labels of a change beyond the noise.
INCREASE_DECREASE = ("increase", "decrease")


def ci_columns(column: str) -> tuple[str, str]:
    """The columns of the 95 % interval of ``column``: ``(column_ci_low, column_ci_high)``."""
    return f"{column}_ci_low", f"{column}_ci_high"


def bounds(row: Row, column: str) -> tuple[float, float] | None:
    """The 95 % interval of ``column`` in ``row`` (a sessions.tsv or lesions.tsv row, a store
    row), or None when the row has none (empty cells, or an output without the columns)."""
    low, high = (finite(row.get(name)) for name in ci_columns(column))
    return None if low is None or high is None else (low, high)


def _span(low: float, high: float, digits: int, *, signed: bool = False) -> str:
    """ "4.10-4.66"; signed or with a negative end "-1.20 to +3.00" (a dash would be ambiguous)."""
    if signed or low < 0:
        sign = "+" if signed else ""
        return f"{low:{sign}.{digits}f} to {high:{sign}.{digits}f}"
    return f"{low:.{digits}f}-{high:.{digits}f}"


def interval_text(row: Row, column: str, *, digits: int = 2) -> str:
    """The 95 % interval of ``column`` alone, "4.10-4.66" ("" when the row has none).

    >>> interval_text({"v_ml_ci_low": 4.1, "v_ml_ci_high": 4.66}, "v_ml"), interval_text({}, "v_ml")
    ('4.10-4.66', '')
    """
    interval = bounds(row, column)
    return "" if interval is None else _span(*interval, digits)


def value_text(
    row: Row, column: str, *, digits: int = 2, unit: str = "", hover: bool = False
) -> str:
    """A measure with its interval: "4.38 (4.10-4.66)" for a table cell, or with ``hover`` and
    ``unit="mL"`` "4.38 mL (95 % CI 4.10-4.66)"; the value alone without an interval, "–" without
    a value.

    >>> value_text({"v_ml": 4.38, "v_ml_ci_low": 4.1, "v_ml_ci_high": 4.66}, "v_ml")
    '4.38 (4.10-4.66)'
    >>> value_text({"v_ml": 4.38}, "v_ml", unit="mL", hover=True)
    '4.38 mL'
    """
    value = finite(row.get(column))
    if value is None:
        return "–"
    text = f"{value:.{digits}f}" + (f" {unit}" if unit else "")
    interval = interval_text(row, column, digits=digits)
    if not interval:
        return text
    return f"{text} ({'95 % CI ' if hover else ''}{interval})"


def label_of(row: Row, label_column: str) -> str:
    """A change's label ("increase", "decrease", "within noise"), "" when empty or absent."""
    value = row.get(label_column)
    return value.strip() if isinstance(value, str) else ""


def label_text(label: str) -> str:
    """A change's label for a reader: "within noise" reads "within measurement noise", the others
    as they are ("increase", "decrease", "")."""
    return WITHIN_NOISE_TEXT if label == WITHIN_NOISE else label


def change_text(
    row: Row,
    change_column: str,
    label_column: str,
    *,
    digits: int = 2,
    unit: str = "",
    interval: bool = True,
) -> str:
    """The change from the previous session in words: "+2.10 mL (+1.20 to +3.00), beyond noise:
    increase", "+0.10 mL (-0.20 to +0.40), within measurement noise" (without ``interval``, no
    bracket); "" on a first session or in outputs without the columns.

    >>> change_text({"c_ml": 0.1, "c_ml_ci_low": -0.2, "c_ml_ci_high": 0.4, "lab": "within noise"},
    ...             "c_ml", "lab", unit="mL")
    '+0.10 mL (-0.20 to +0.40), within measurement noise'
    """
    label = label_of(row, label_column)
    value = finite(row.get(change_column))
    parts = []
    if value is not None:
        text = f"{value:+.{digits}f}" + (f" {unit}" if unit else "")
        span = bounds(row, change_column) if interval else None
        parts.append(text if span is None else f"{text} ({_span(*span, digits, signed=True)})")
    if label in INCREASE_DECREASE:
        parts.append(f"beyond noise: {label}")
    elif label:
        parts.append(label_text(label))
    return ", ".join(parts)


def error_halves(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Error-bar lengths of ``column`` from its interval, row by row: (value - ci_low, ci_high -
    value), NaN where a row has no interval, never negative; None when ``frame`` has no interval
    of ``column`` at all (older outputs, level ``off``)."""
    low_column, high_column = ci_columns(column)
    if column not in frame or low_column not in frame or high_column not in frame:
        return None
    value = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    low = pd.to_numeric(frame[low_column], errors="coerce").to_numpy(float)
    high = pd.to_numeric(frame[high_column], errors="coerce").to_numpy(float)
    below, above = value - low, high - value
    if not np.isfinite(below).any() and not np.isfinite(above).any():
        return None
    return np.clip(below, 0, None), np.clip(above, 0, None)


def lesion_intervals(lesions: pd.DataFrame) -> pd.DataFrame:
    """Per tracked lesion (source, lesion): the interval of its peak and of its last volume
    ("0.45-0.60", mL) and its last change from the previous session in words (see
    :func:`change_text`); empty texts where lesions.tsv has no interval (older outputs).

    Rows follow :func:`followup.results.lesion_courses` (``source``, ``lesion``; the last row of a
    lesion is its latest session, the peak its largest volume).
    """
    columns = ["source", "lesion", "peak_ci_ml", "last_ci_ml", "last_change_vs_previous"]
    if lesions.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (source, lesion_id), group in lesions.groupby(["source", "lesion_id"], sort=True):
        group = group.assign(_day=pd.to_numeric(group["day"], errors="coerce")).sort_values("_day")
        volumes = pd.to_numeric(group[LESION_INTERVAL], errors="coerce").to_numpy(float)
        peak = group.iloc[int(np.nanargmax(volumes))] if np.isfinite(volumes).any() else None
        last = group.iloc[-1]
        rows.append(
            {
                "source": source,
                "lesion": lesion_id,
                "peak_ci_ml": "" if peak is None else interval_text(peak, LESION_INTERVAL),
                "last_ci_ml": interval_text(last, LESION_INTERVAL),
                "last_change_vs_previous": change_text(last, *LESION_CHANGE, unit="mL"),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def uncertainty_levels(sessions: pd.DataFrame) -> list[str]:
    """The uncertainty levels the sessions were measured at (sessions.tsv ``uncertainty_level``),
    in order of appearance; empty for older outputs."""
    if LEVEL_COLUMN not in sessions:
        return []
    levels = [str(v).strip() for v in sessions[LEVEL_COLUMN] if isinstance(v, str) and v.strip()]
    return list(dict.fromkeys(levels))


def method_sentence(sessions: pd.DataFrame, provenance: Mapping[str, Any]) -> str:
    """How the intervals were obtained, in one sentence: "95 % intervals from 20 re-segmentations
    with registration jitter and resampled image noise, plus the partial-volume band (uncertainty
    level: standard)."; "" for outputs without the ``uncertainty_level`` column.

    The number of re-segmentations per session is the ``draws`` of the pipeline's uncertainty
    settings in provenance.json (``parameters.pipeline.uncertainty.draws``); the sentence leaves it
    out when the analysis did not record it.
    """
    levels = uncertainty_levels(sessions)
    if not levels:
        return ""
    measured = [level for level in levels if level != "off"]
    if not measured:
        return "No measurement intervals were computed (uncertainty level: off)."
    count = finite(_nested(provenance, "parameters", "pipeline", "uncertainty", "draws"))
    runs = f"{count:.0f} re-segmentations" if count else "re-segmentations"
    return (
        f"95 % intervals from {runs} with registration jitter and resampled image noise, plus the "
        f"partial-volume band (uncertainty level: {', '.join(levels)})."
    )


def _nested(record: Mapping[str, Any], *keys: str) -> Any:
    """``record[k1][k2]...``, or None where a level is missing or not a mapping."""
    found: Any = record
    for key in keys:
        if not isinstance(found, Mapping):
            return None
        found = found.get(key)
    return found
