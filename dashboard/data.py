"""What the dashboard reads, cached: the cohort from the store, a case's output folder, its volumes.

Tables are cached with ``st.cache_data`` and keyed on the files' modification times, so a case that is
re-analysed shows its new results on the next rerun. Decoded volumes are cached once per process with
``st.cache_resource`` (shared, read-only arrays: a slice change never reads or copies a file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.figures import PREBUILT, overview_figure
from followup.intervals import (
    SESSION_CHANGES,
    interval_text,
    label_of,
    label_text,
    uncertainty_levels,
)
from followup.results import (
    INDEX_CHOICES,
    CaseOutputs,
    case_folders_in,
    finite,
    index_dates,
    load_case_outputs,
    read_provenance,
)
from followup.store.db import DATABASE_URL_ENV
from imaging.display import Volume, load_volume
from safeio import OutputError

__all__ = [
    "DATA_ENV",
    "IMPORT_ROOT_ENV",
    "case_outputs",
    "case_status",
    "cohort",
    "data_dir",
    "import_root",
    "overview",
    "volume",
]

#: Environment variable naming the output folder the dashboard shows (set by `leukotrack dashboard`).
DATA_ENV = "LEUKOTRACK_DATA"
#: Environment variable naming the folder the import page may read (`dashboard --import-root`).
IMPORT_ROOT_ENV = "LEUKOTRACK_IMPORT_ROOT"
COHORT_COLUMNS = [
    "case_id",
    "status",
    "sessions",
    "days_followed",
    "peak_flair_ml",
    "peak_flair_ci_ml",
    "peak_dwi_ml",
    "peak_dwi_ci_ml",
    "last_flair_change",
    "last_dwi_change",
    "latest_radc",
    "template_fit",
    "first_study",
    "last_study",
    "index_date",
    "uncertainty_level",
    "error",
]


def data_dir() -> Path:
    """The output folder shown: ``$LEUKOTRACK_DATA``, else ``./out``."""
    return Path(os.environ.get(DATA_ENV) or "out").resolve()


def import_root() -> Path:
    """The folder under which the import page may list and analyse case folders:
    ``$LEUKOTRACK_IMPORT_ROOT`` (``leukotrack dashboard --import-root``), else the folder that
    holds the data folder."""
    configured = os.environ.get(IMPORT_ROOT_ENV)
    return Path(configured).expanduser().resolve() if configured else data_dir().parent


def case_status(case_id: str) -> tuple[str, str]:
    """(status, error) of a case in the cohort: ``done``, or ``failed`` with its reason."""
    table = cohort()
    rows = table[table["case_id"] == case_id] if not table.empty else table
    if rows.empty:
        return "", ""
    row = rows.iloc[0]
    error = row.get("error")
    return str(row.get("status") or ""), "" if error is None or error != error else str(error)


def _stamp(paths: list[Path]) -> float:
    """A number that changes when any of ``paths`` changes (sum of modification times)."""
    return sum(p.stat().st_mtime for p in paths if p.exists())


def _store_rows(folder: Path) -> list[dict[str, object]]:
    """The store's cohort view, when this folder has a store (never creates one)."""
    if not os.environ.get(DATABASE_URL_ENV) and not (folder / "leukotrack.sqlite").is_file():
        return []
    from followup.store import Store

    return Store.read_cohort(folder)


def _summarise(
    case_id: str, sessions: pd.DataFrame, status: str, error: str, index: str
) -> dict[str, object]:
    row: dict[str, object] = {
        "case_id": case_id,
        "status": status,
        "error": error,
        "index_date": index,
    }
    dated = sessions.dropna(subset=["session_id"]) if "session_id" in sessions else sessions
    row["sessions"] = len(dated)
    if dated.empty:
        return row
    days = pd.to_numeric(dated["day"], errors="coerce").dropna()
    row["days_followed"] = int(days.max() - days.min()) if len(days) else None
    ordered = dated.assign(_day=pd.to_numeric(dated["day"], errors="coerce")).sort_values("_day")
    for source in ("flair", "dwi"):
        row.update(_peak_and_change(ordered, source))
    levels = uncertainty_levels(dated)
    row["uncertainty_level"] = ", ".join(levels) if levels else None
    radc = [finite(v) for v in ordered.get("radc", [])]
    radc = [v for v in radc if v is not None]
    row["latest_radc"] = radc[-1] if radc else None
    fits = [finite(v) for v in dated.get("template_fit_ok", [])]
    known = [v for v in fits if v is not None]
    row["template_fit"] = ("ok" if min(known) > 0 else "CHECK") if known else None
    dates = sorted(str(d) for d in dated["study_date"] if isinstance(d, str) and d)
    row["first_study"], row["last_study"] = (dates[0], dates[-1]) if dates else (None, None)
    return row


def _peak_and_change(ordered: pd.DataFrame, source: str) -> dict[str, object]:
    """A case's peak lesion volume of ``source`` (``peak_<source>_ml``), the 95 % interval of that
    peak ("4.10-4.66", ``peak_<source>_ci_ml``; None without one) and the label of its latest change
    from the previous session ("increase", "decrease", "within measurement noise";
    ``last_<source>_change``), from sessions in time order (sessions.tsv or the store's cohort
    rows; older outputs have no interval and no label)."""
    column = f"{source}_lesion_volume_ml"
    found: dict[str, object] = {
        f"peak_{source}_ml": None,
        f"peak_{source}_ci_ml": None,
        f"last_{source}_change": None,
    }
    if column not in ordered:
        return found
    values = pd.to_numeric(ordered[column], errors="coerce").to_numpy(float)
    if np.isfinite(values).any():
        peak = ordered.iloc[int(np.nanargmax(values))]
        found[f"peak_{source}_ml"] = float(np.nanmax(values))
        found[f"peak_{source}_ci_ml"] = interval_text(peak, column) or None
    _, label_column = SESSION_CHANGES[column]
    labels = [label_of(row, label_column) for _, row in ordered.iterrows()]
    labels = [label for label in labels if label]
    if labels:
        found[f"last_{source}_change"] = label_text(labels[-1])
    return found


@st.cache_data(show_spinner=False, max_entries=8)
def _cohort(folder: str, stamp: float) -> pd.DataFrame:
    root = Path(folder)
    rows = pd.DataFrame(_store_rows(root))
    summaries: dict[str, dict[str, object]] = {}
    if not rows.empty:
        for case_id, group in rows.groupby("case_id", sort=True):
            first = group.iloc[0]
            summaries[str(case_id)] = _summarise(
                str(case_id),
                group,
                str(first.get("status") or ""),
                str(first.get("error") or ""),
                str(first.get("index_date") or ""),
            )
    for case_folder in case_folders_in(root):  # analysed without a store (leukotrack analyze)
        case_id = case_folder.name.removeprefix("sub-")
        if summaries.get(case_id, {}).get("status") == "done":
            try:  # the store says done: the folder must still be a complete analysis
                read_provenance(case_folder)
            except OutputError as error:
                summaries[case_id].update(status="failed", error=f"{type(error).__name__}: {error}")
        if case_id not in summaries:
            try:
                outputs = load_case_outputs(case_folder)
            except OutputError as error:  # one broken case shows its problem, not every page
                summaries[case_id] = _summarise(
                    case_id, pd.DataFrame(), "failed", f"{type(error).__name__}: {error}", ""
                )
                continue
            summaries[case_id] = _summarise(
                case_id, outputs.sessions, "done", "", str(outputs.provenance.get("index_date", ""))
            )
    table = pd.DataFrame(list(summaries.values()), columns=COHORT_COLUMNS)
    return table.sort_values("case_id").reset_index(drop=True)


def cohort(folder: Path | None = None) -> pd.DataFrame:
    """One row per case: status, sessions, days followed, peak lesion volumes, latest rADC."""
    root = folder or data_dir()
    watched = [root / "cohort.tsv", root / "leukotrack.sqlite-wal", root / "leukotrack.sqlite"]
    watched += [p / "provenance.json" for p in case_folders_in(root)]
    return _cohort(str(root), _stamp(watched))


def case_folder(case_id: str, folder: Path | None = None) -> Path:
    """``OUT/sub-<case>`` of the data folder."""
    return (folder or data_dir()) / f"sub-{case_id}"


@st.cache_data(show_spinner=False, max_entries=16)
def _case_outputs(folder: str, stamp: float) -> CaseOutputs:
    return load_case_outputs(Path(folder))


def case_outputs(case_id: str) -> CaseOutputs:
    """A case's output tables (re-read when provenance.json changes)."""
    folder = case_folder(case_id)
    return _case_outputs(str(folder), _stamp([folder / "provenance.json"]))


@st.cache_data(show_spinner=False, max_entries=32)
def _overview(folder: str, stamp: float, index_key: str) -> go.Figure:
    prebuilt = PREBUILT.get((folder, index_key, stamp))
    if prebuilt is not None:
        return prebuilt
    outputs = load_case_outputs(Path(folder))
    dates = index_dates(outputs)
    return overview_figure(outputs, dates.get(index_key), INDEX_CHOICES.get(index_key, index_key))


def overview(case_id: str, index_key: str) -> go.Figure:
    """The course figure of a case with day 0 at ``index_key`` (a key of INDEX_CHOICES)."""
    folder = case_folder(case_id)
    return _overview(str(folder), _stamp([folder / "provenance.json"]), index_key)


@st.cache_resource(show_spinner=False, max_entries=96)
def _volume(path: str, mtime: float, labels: bool) -> Volume:
    return load_volume(Path(path), labels=labels)


def volume(path: Path | None, *, labels: bool = False) -> Volume | None:
    """A decoded volume, loaded once per process and shared (read-only)."""
    if path is None:
        return None
    return _volume(str(path), path.stat().st_mtime, labels)
