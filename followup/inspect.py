"""What ``leukotrack inspect`` reports: the sessions and series of a case, as rows or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imaging.case import CaseIndex, Session, is_bids_case, scan_case

__all__ = ["case_folders", "case_summary", "find_cases", "series_rows"]


def case_folders(root: Path) -> list[Path]:
    """The case folders directly under ``root`` (one patient each), hidden folders excluded."""
    return [p for p in sorted(Path(root).iterdir()) if p.is_dir() and not p.name.startswith(".")]


def find_cases(path: Path) -> list[CaseIndex]:
    """The cases under ``path``: ``path`` itself, or each BIDS-like case folder directly below it.

    A DICOM tree is indexed as one case whatever its nesting; a folder whose sub-folders are BIDS-like
    cases gives one case each. Studies of several patients are indexed (not refused) so that
    ``inspect`` can show whose each study is; :func:`case_summary` flags them.
    """
    path = Path(path)
    if path.is_dir() and not is_bids_case(path):
        children = [c for c in sorted(path.iterdir()) if c.is_dir() and is_bids_case(c)]
        if children:
            return [scan_case(child, allow_mixed_patients=True) for child in children]
    return [scan_case(path, allow_mixed_patients=True)]


def _day(session: Session, first: Session) -> int | None:
    if session.study_date is None or first.study_date is None:
        return None
    return (session.study_date - first.study_date).days


def series_rows(case: CaseIndex) -> list[dict[str, Any]]:
    """One flat row per series: session, date, day from the first session, class, geometry, why."""
    rows = []
    first = case.sessions[0] if case.sessions else None
    for session in case.sessions:
        for series in session.series:
            rows.append(
                {
                    "case_id": case.case_id,
                    "session_id": session.label,
                    "study_date": session.study_date.isoformat() if session.study_date else None,
                    "day": _day(session, first) if first else None,
                    "series_number": series.number,
                    "sequence": series.sequence.value,
                    "description": series.description,
                    "b_values": series.b_values,
                    "shape": list(series.shape) if series.shape else None,
                    "voxel_size_mm": [round(v, 4) for v in series.spacing_mm]
                    if series.spacing_mm
                    else None,
                    "reasons": list(series.reasons),
                    "problem": series.problem,
                    "source": series.source,
                    "series_uid": series.uid,
                    "study_uid": session.study_uid,
                }
            )
    return rows


def case_summary(case: CaseIndex) -> dict[str, Any]:
    """The case as a JSON-ready dictionary (``leukotrack inspect --json``)."""
    rows = series_rows(case)
    sessions = []
    for session in case.sessions:
        picked = {seq: session.pick(seq) for seq in ("DWI", "ADC", "FLAIR")}
        sessions.append(
            {
                "session_id": session.label,
                "study_date": session.study_date.isoformat() if session.study_date else None,
                "study_time": session.study_time.isoformat() if session.study_time else None,
                "study_uid": session.study_uid,
                "has": sorted(k for k, v in picked.items() if v is not None),
                "patients": [p.to_dict() for p in session.patients],
                "series": [r for r in rows if r["session_id"] == session.label],
            }
        )
    patients = case.patients_record()
    return {
        "case_id": case.case_id,
        "root": str(case.root),
        "layout": case.layout,
        "patients": patients,
        "mixed_patients": len(patients) > 1,
        "sessions": sessions,
    }
