"""A small hand-made case output with the measurement-uncertainty columns of issue 16 (intervals,
changes from the previous session and their noise labels), and the same without them (an output of
an older version), for the dashboard, report and store tests: they need no analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["LESIONS", "SESSIONS", "UNCERTAINTY_LESION_COLUMNS", "old_output", "write_case"]

#: sessions.tsv: a baseline, then an increase of FLAIR beyond noise and a DWI change within noise.
SESSIONS = pd.DataFrame(
    [
        {
            "case_id": "ci",
            "session_id": "ses-1",
            "study_date": "2023-03-14",
            "day": 0,
            "has_flair": 1,
            "has_dwi": 1,
            "flair_lesion_volume_ml": 4.38,
            "flair_lesion_volume_ml_ci_low": 4.10,
            "flair_lesion_volume_ml_ci_high": 4.66,
            "dwi_lesion_volume_ml": 1.20,
            "dwi_lesion_volume_ml_ci_low": 1.05,
            "dwi_lesion_volume_ml_ci_high": 1.35,
            "flair_lesion_count": 3,
            "dwi_lesion_count": 1,
            "radc": 0.62,
            "radc_ci_low": 0.58,
            "radc_ci_high": 0.66,
            "uncertainty_level": "standard",
            "flair_lesion_volume_change_ml": "",
            "flair_lesion_volume_change_ml_ci_low": "",
            "flair_lesion_volume_change_ml_ci_high": "",
            "flair_lesion_volume_change_beyond_noise": "",
            "dwi_lesion_volume_change_ml": "",
            "dwi_lesion_volume_change_ml_ci_low": "",
            "dwi_lesion_volume_change_ml_ci_high": "",
            "dwi_lesion_volume_change_beyond_noise": "",
        },
        {
            "case_id": "ci",
            "session_id": "ses-2",
            "study_date": "2023-03-21",
            "day": 7,
            "has_flair": 1,
            "has_dwi": 1,
            "flair_lesion_volume_ml": 6.48,
            "flair_lesion_volume_ml_ci_low": 6.10,
            "flair_lesion_volume_ml_ci_high": 6.90,
            "dwi_lesion_volume_ml": 1.25,
            "dwi_lesion_volume_ml_ci_low": 1.10,
            "dwi_lesion_volume_ml_ci_high": 1.40,
            "flair_lesion_count": 4,
            "dwi_lesion_count": 1,
            "radc": 0.70,
            "radc_ci_low": 0.65,
            "radc_ci_high": 0.76,
            "uncertainty_level": "standard",
            "flair_lesion_volume_change_ml": 2.10,
            "flair_lesion_volume_change_ml_ci_low": 1.20,
            "flair_lesion_volume_change_ml_ci_high": 3.00,
            "flair_lesion_volume_change_beyond_noise": "increase",
            "dwi_lesion_volume_change_ml": 0.05,
            "dwi_lesion_volume_change_ml_ci_low": -0.15,
            "dwi_lesion_volume_change_ml_ci_high": 0.25,
            "dwi_lesion_volume_change_beyond_noise": "within noise",
        },
    ]
)
#: lesions.tsv's uncertainty columns (older outputs have none of them).
UNCERTAINTY_LESION_COLUMNS = [
    "volume_ml_ci_low",
    "volume_ml_ci_high",
    "volume_change_ml",
    "volume_change_ml_ci_low",
    "volume_change_ml_ci_high",
    "change_beyond_noise",
]
_LESION = {
    "case_id": "ci",
    "source": "flair",
    "lesion_id": "F001",
    "centroid_x_mm": 10.0,
    "centroid_y_mm": 5.0,
    "centroid_z_mm": 20.0,
    "hemisphere": "left",
    "region": "frontal",
}
#: lesions.tsv: F001 grows within noise ("stable"), F002 grows beyond noise ("enlarging").
LESIONS = pd.DataFrame(
    [
        {**_LESION, "session_id": "ses-1", "day": 0, "volume_ml": 0.50, "change": "baseline",
         "volume_ml_ci_low": 0.45, "volume_ml_ci_high": 0.56, "volume_change_ml": "",
         "volume_change_ml_ci_low": "", "volume_change_ml_ci_high": "", "change_beyond_noise": ""},
        {**_LESION, "session_id": "ses-2", "day": 7, "volume_ml": 0.52, "change": "stable",
         "volume_ml_ci_low": 0.46, "volume_ml_ci_high": 0.58, "volume_change_ml": 0.02,
         "volume_change_ml_ci_low": -0.05, "volume_change_ml_ci_high": 0.09,
         "change_beyond_noise": "within noise"},
        {**_LESION, "lesion_id": "F002", "session_id": "ses-1", "day": 0, "volume_ml": 1.00,
         "change": "baseline", "volume_ml_ci_low": 0.90, "volume_ml_ci_high": 1.10,
         "volume_change_ml": "", "volume_change_ml_ci_low": "", "volume_change_ml_ci_high": "",
         "change_beyond_noise": ""},
        {**_LESION, "lesion_id": "F002", "session_id": "ses-2", "day": 7, "volume_ml": 2.00,
         "change": "enlarging", "volume_ml_ci_low": 1.80, "volume_ml_ci_high": 2.20,
         "volume_change_ml": 1.00, "volume_change_ml_ci_low": 0.70,
         "volume_change_ml_ci_high": 1.30, "change_beyond_noise": "increase"},
    ]
)  # fmt: skip
_PROVENANCE = {
    "index_date": "2023-03-14",
    "layout": "hand-made",
    "software": {"name": "leukotrack", "version": "0.1.0"},
    "parameters": {"pipeline": {"uncertainty": {"name": "standard", "draws": 8}}},
}


def old_output(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as an older version wrote it: none of the uncertainty columns."""
    extra = [
        c
        for c in frame.columns
        if "_ci_" in c or ("change" in c and c != "change") or c == "uncertainty_level"
    ]
    return frame.drop(columns=extra)


def write_case(
    folder: Path,
    sessions: pd.DataFrame = SESSIONS,
    lesions: pd.DataFrame = LESIONS,
    provenance: dict[str, object] | None = None,
) -> Path:
    """Write a finished case output ``folder`` (``OUT/sub-ci``): provenance.json, sessions.tsv,
    lesions.tsv; no images and no clinical files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "provenance.json").write_text(json.dumps(provenance or _PROVENANCE))
    sessions.to_csv(folder / "sessions.tsv", sep="\t", index=False)
    lesions.to_csv(folder / "lesions.tsv", sep="\t", index=False)
    return folder
