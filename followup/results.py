"""Reading a case's output folder back (``OUT/sub-<case>``) for display and reporting.

The dashboard and the report read the same files the analysis wrote (DESIGN.md §3.3), never the
pipeline's in-memory objects, so what they show is what a script reading the outputs would see.
Day numbers in the files count from the index date chosen at analysis time; :func:`index_dates`
lists the other candidates and :meth:`CaseOutputs.day_offset` moves every ``day`` onto one of them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from followup.errors import IncompleteAnalysisError
from safeio import read_manifest

__all__ = [
    "IMAGE_KINDS",
    "INDEX_CHOICES",
    "MARKED_CHANGES",
    "CaseOutputs",
    "ImageKind",
    "case_folders_in",
    "drug_states",
    "finite",
    "index_dates",
    "is_daily",
    "lesion_courses",
    "lesions_of",
    "load_case_outputs",
    "marked_labels",
    "read_provenance",
    "session_aliases",
    "template_fit_warning",
]

ImageKind = Literal[
    "FLAIR",
    "DWI",
    "ADC",
    "flair_lesions",
    "dwi_lesions",
    "lesions",
    "flair_orig_mask",
    "dwi_orig_mask",
    "flair_change",
    "dwi_change",
]
#: Where the images of a session are, below its folder: in baseline space, and the lesion masks
#: on the grid of the series they were found on (``*_orig_mask``).
IMAGE_KINDS: dict[str, str] = {
    "FLAIR": "anat/{stem}_space-baseline_FLAIR.nii.gz",
    "DWI": "dwi/{stem}_space-baseline_desc-b1000_dwi.nii.gz",
    "ADC": "dwi/{stem}_space-baseline_ADC.nii.gz",
    "flair_lesions": "{stem}_space-baseline_desc-flairlesions_dseg.nii.gz",
    "dwi_lesions": "{stem}_space-baseline_desc-dwilesions_dseg.nii.gz",
    "lesions": "{stem}_space-baseline_desc-lesions_dseg.nii.gz",
    "flair_orig_mask": "anat/{stem}_space-orig_desc-flairlesion_mask.nii.gz",
    "dwi_orig_mask": "dwi/{stem}_space-orig_desc-dwilesion_mask.nii.gz",
    "flair_change": "{stem}_space-baseline_desc-flairchange_mask.nii.gz",
    "dwi_change": "{stem}_space-baseline_desc-dwichange_mask.nii.gz",
}
#: Index dates a reader can align the time axis on, with the timeline rows that define them.
INDEX_CHOICES: dict[str, str] = {
    "first_mri": "first MRI",
    "first_dose": "first dose",
    "symptom_onset": "symptom onset",
    "admission": "admission",
    "drug_stop": "drug stop",
}


def _tsv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path, sep="\t", dtype={"session_id": str, "lesion_id": str})
    except (OSError, UnicodeDecodeError, ValueError) as error:  # pandas' parser errors included
        raise IncompleteAnalysisError(
            f"{path} is cut or unreadable ({type(error).__name__}: {error}); run `leukotrack "
            "analyze` (or `batch`) on the case again"
        ) from error


@dataclass(frozen=True)
class CaseOutputs:
    """One case's output tables, its provenance and where its images are.

    Attributes
    ----------
    folder : Path
        ``OUT/sub-<case>``.
    sessions, lesions, timeline, pk, csf : pandas.DataFrame
        The TSV files of the same names (empty frames when absent).
    provenance : dict
        provenance.json.
    """

    folder: Path
    case_id: str
    sessions: pd.DataFrame
    lesions: pd.DataFrame
    timeline: pd.DataFrame
    pk: pd.DataFrame
    csf: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def analysis_index(self) -> date | None:
        """The index date the files' ``day`` columns count from."""
        value = self.provenance.get("index_date")
        return date.fromisoformat(value) if value else None

    @property
    def session_ids(self) -> list[str]:
        """Sessions in time order."""
        if self.sessions.empty:
            return []
        return [str(s) for s in self.sessions.sort_values("day")["session_id"]]

    def image_path(self, session_id: str, kind: ImageKind) -> Path | None:
        """One image of a session (see :data:`IMAGE_KINDS`), or None when the analysis did not
        write it."""
        label = session_id.removeprefix("ses-")
        stem = f"sub-{self.case_id}_ses-{label}"
        path = self.folder / f"ses-{label}" / IMAGE_KINDS[kind].format(stem=stem)
        return path if path.is_file() else None

    def day_offset(self, index_on: date | None) -> int:
        """Days to add to the files' ``day`` so that it counts from ``index_on`` instead."""
        if index_on is None or self.analysis_index is None:
            return 0
        return (self.analysis_index - index_on).days


def read_provenance(folder: Path) -> dict[str, Any]:
    """provenance.json of ``OUT/sub-<case>``, checked: a JSON object, and every file the analysis
    recorded in the folder's manifest still there.

    Raises
    ------
    IncompleteAnalysisError
        With what is wrong and what to do: no provenance.json (not a finished analysis), a cut or
        unreadable one, or files of the analysis missing.
    """
    folder = Path(folder)
    path = folder / "provenance.json"
    again = "run `leukotrack analyze` (or `batch`) on the case again"
    if not path.is_file():
        raise IncompleteAnalysisError(
            f"{folder}: no provenance.json; this is not a finished leukotrack analysis ({again})"
        )
    try:
        provenance = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise IncompleteAnalysisError(
            f"{path} is cut or unreadable ({type(error).__name__}: {error}); the results in this "
            f"folder cannot be trusted: {again}"
        ) from error
    if not isinstance(provenance, dict):
        raise IncompleteAnalysisError(f"{path} is not a provenance record (a JSON object); {again}")
    written = read_manifest(folder)
    missing = sorted(f for f in written or () if not (folder / f).exists())
    if written is None and not (folder / "sessions.tsv").is_file():
        missing = ["sessions.tsv"]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise IncompleteAnalysisError(
            f"{folder}: files the analysis wrote are missing ({shown}); {again}"
        )
    return provenance


def load_case_outputs(folder: Path) -> CaseOutputs:
    """Read ``OUT/sub-<case>``.

    Raises
    ------
    IncompleteAnalysisError
        When the folder is not a finished, complete analysis (see :func:`read_provenance`); it is
        a ``FileNotFoundError`` too.
    """
    folder = Path(folder)
    provenance = read_provenance(folder)
    return CaseOutputs(
        folder=folder,
        case_id=folder.name.removeprefix("sub-"),
        sessions=_tsv(folder / "sessions.tsv"),
        lesions=_tsv(folder / "lesions.tsv"),
        timeline=_tsv(folder / "timeline.tsv"),
        pk=_tsv(folder / "pk.tsv"),
        csf=_tsv(folder / "csf.tsv"),
        provenance=provenance,
    )


def template_fit_warning(provenance: dict[str, Any]) -> str | None:
    """The warning to show with a case whose template fit failed its quality check, else None.

    Reads ``template_fit`` of provenance.json (absent in outputs of older versions: no warning).
    """
    fit = provenance.get("template_fit") or {}
    if fit.get("ok", True):
        return None
    problems = "; ".join(fit.get("problems") or []) or "the fit failed its quality check"
    return (
        f"Template fit below quality ({problems}). The brain mask, white-matter prior and regions "
        "may be misplaced, so the lesion figures of this case are uncertain: check the images."
    )


def case_folders_in(out_dir: Path) -> list[Path]:
    """The finished case folders (``sub-*`` with provenance.json) of an output folder, by name."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(
        p for p in out_dir.glob("sub-*") if p.is_dir() and (p / "provenance.json").is_file()
    )


def _first(timeline: pd.DataFrame, kind: str, item: str | None = None) -> date | None:
    if timeline.empty:
        return None
    rows = timeline[timeline["kind"] == kind]
    if item is not None:
        rows = rows[rows["item"] == item]
    dates = [d for d in rows["date"] if isinstance(d, str) and d]
    return date.fromisoformat(min(dates)[:10]) if dates else None


def session_aliases(session_ids: list[str]) -> dict[str, str]:
    """De-identified session labels: ``ses-01``, ``ses-02``, ... for sessions given in time order.

    >>> session_aliases(["ses-20230314", "ses-20230317"])
    {'ses-20230314': 'ses-01', 'ses-20230317': 'ses-02'}
    """
    return {label: f"ses-{n:02d}" for n, label in enumerate(session_ids, start=1)}


def index_dates(outputs: CaseOutputs) -> dict[str, date]:
    """The candidate index dates of a case that its files define, keyed as :data:`INDEX_CHOICES`.

    ``first_mri`` is the earliest session; ``first_dose`` the earliest administration given;
    ``symptom_onset``, ``admission`` and ``drug_stop`` the first event of that kind.
    """
    found: dict[str, date | None] = {
        "first_mri": _first(outputs.timeline, "session"),
        "first_dose": _first(outputs.timeline, "administration"),
        "symptom_onset": _first(outputs.timeline, "event", "symptom_onset"),
        "admission": _first(outputs.timeline, "event", "admission"),
        "drug_stop": _first(outputs.timeline, "event", "drug_stop"),
    }
    if found["first_mri"] is None and not outputs.sessions.empty:
        dates = [d for d in outputs.sessions["study_date"] if isinstance(d, str) and d]
        found["first_mri"] = date.fromisoformat(min(dates)) if dates else None
    return {key: value for key, value in found.items() if value is not None}


def lesion_courses(lesions: pd.DataFrame, sessions: list[str], offset: int) -> pd.DataFrame:
    """One row per tracked lesion (source + id): where it is, when it was seen, its course.

    Columns: lesion, source, hemisphere, region, first_day, last_day, peak_ml, last_ml, last_change,
    changes (session by session), trajectory_ml (volume per session, 0 where absent), centroid of
    its last appearance (RAS mm, baseline space) and the session of that appearance.
    """
    if lesions.empty:
        return pd.DataFrame()
    rows = []
    for (source, lesion_id), group in lesions.groupby(["source", "lesion_id"], sort=True):
        group = group.assign(_day=pd.to_numeric(group["day"], errors="coerce")).sort_values("_day")
        present = group[pd.to_numeric(group["volume_ml"], errors="coerce").fillna(0) > 0]
        last = (present if not present.empty else group).iloc[-1]
        by_session = dict(
            zip(
                group["session_id"],
                pd.to_numeric(group["volume_ml"], errors="coerce"),
                strict=False,
            )
        )
        days = present["_day"] if not present.empty else group["_day"]
        rows.append(
            {
                "lesion": lesion_id,
                "source": source,
                "hemisphere": last.get("hemisphere"),
                "region": last.get("region"),
                "first_day": int(days.min()) + offset if days.notna().any() else None,
                "last_day": int(days.max()) + offset if days.notna().any() else None,
                "peak_ml": float(np.nanmax(list(by_session.values()) or [np.nan])),
                "last_ml": finite(group.iloc[-1]["volume_ml"]),
                "last_change": str(group.iloc[-1]["change"]),
                "changes": " > ".join(str(c) for c in group["change"]),
                "trajectory_ml": [float(by_session.get(s, 0.0) or 0.0) for s in sessions],
                "x_mm": finite(last["centroid_x_mm"]),
                "y_mm": finite(last["centroid_y_mm"]),
                "z_mm": finite(last["centroid_z_mm"]),
                "session": last["session_id"],
            }
        )
    return pd.DataFrame(rows)


#: Change classes a reader's eye is drawn to (outlined in red in the viewer and the report).
MARKED_CHANGES = frozenset({"new", "enlarging"})


def marked_labels(lesions: pd.DataFrame) -> dict[tuple[str, str], frozenset[int]]:
    """Label values (in the per-source dseg maps) of the lesions that are new or enlarging, by
    (session, source); lesion ``F003`` is label 3 of the FLAIR map."""
    if lesions.empty:
        return {}
    rows = lesions[lesions["change"].isin(MARKED_CHANGES)]
    found: dict[tuple[str, str], set[int]] = {}
    for session, source, lesion_id in zip(
        rows["session_id"], rows["source"], rows["lesion_id"], strict=True
    ):
        digits = "".join(ch for ch in str(lesion_id) if ch.isdigit())
        if digits:
            found.setdefault((str(session), str(source)), set()).add(int(digits))
    return {key: frozenset(values) for key, values in found.items()}


def is_daily(days: Any) -> bool:
    """Whether administrations on ``days`` (day numbers) are a daily drug, drawn as bars over its
    on-periods rather than as one marker per dose (more than four doses, median gap <= 1 day)."""
    values = sorted(float(d) for d in days if finite(d) is not None)
    gaps = [b - a for a, b in pairwise(values)]
    return len(gaps) > 3 and float(sorted(gaps)[len(gaps) // 2]) <= 1.0


def drug_states(row: Any) -> list[str]:
    """Each drug's state at one session (a sessions.tsv row): "daratumumab on, last dose 2 d
    before" or "lenalidomide off, last dose 30 d before" (``<drug>_on`` and
    ``<drug>_days_since_last_dose`` columns; a drug not given yet reads "not yet given").

    >>> drug_states({"day": 3, "daratumumab_on": 1, "daratumumab_days_since_last_dose": 2.0,
    ...              "lenalidomide_on": 0, "lenalidomide_days_since_last_dose": ""})
    ['daratumumab on, last dose 2 d before', 'lenalidomide not yet given']
    """
    states = []
    for column in [c for c in dict(row) if str(c).endswith("_on")]:
        drug = str(column).removesuffix("_on")
        on = finite(row.get(column))
        if on is None:
            continue
        since = finite(row.get(f"{drug}_days_since_last_dose"))
        name = drug.replace("_", " ")
        if since is None:
            states.append(f"{name} not yet given")
        else:
            states.append(f"{name} {'on' if on else 'off'}, last dose {since:.0f} d before")
    return states


def lesions_of(lesions: pd.DataFrame, session: str, source: str) -> pd.DataFrame:
    """The lesions.tsv rows of one session and source (``flair``, ``dwi``); empty when none."""
    if lesions.empty:
        return lesions
    return lesions[(lesions["session_id"] == session) & (lesions["source"] == source)]


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is empty or not finite (TSV cells)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
