"""``leukotrack export``: an output folder's tables for statisticians and other systems, optionally
de-identified.

The export holds the cohort table and every case's tables (sessions, lesions, timeline, pk, csf, ex)
as TSV and as Parquet, a BIDS-derivatives ``dataset_description.json``, and each case's FHIR bundle of
administrations. With ``deidentify=True`` it carries no names, birth dates, identifiers or dates:

* case ids become pseudonyms (``P001``, ... in case order); the key goes only to a file named by the
  caller, outside the export;
* session labels (derived from study dates) become ``ses-01``, ``ses-02``, ... in time order;
* every date and date-time column is dropped: ``day`` columns (days from the index date) remain;
* free-text columns (``detail``, ``source``, ``reading``, ``error``, ``note``) are dropped, since a
  clinician's note may name a person or a place;
* the FHIR bundles and provenance.json (dates, folder paths) are left out;
* the DICOM SEG objects follow the DICOM PS3.15 Basic Application Level Confidentiality Profile
  (:mod:`imaging.dicom.deidentify`): patient, dates, institution and device gone, new UIDs that
  still link the objects of the export to each other (a lesion's Tracking UID across sessions),
  and the case pseudonym as Patient's Name and ID.

The DICOM SEG objects of every session are exported in ``sub-<case>/ses-<label>/`` (verbatim when
not de-identifying), and each case's PDF report as ``sub-<case>/sub-<case>_report.pdf`` (when
de-identifying: named by the pseudonym, sessions by order, days from the index date, no calendar
date).

The export is written into a hidden folder beside the target and renamed into place when complete.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pydicom

from followup.report import write_report
from followup.results import case_folders_in, session_aliases
from imaging.dicom.deidentify import UidMap, deidentify
from safeio import atomic_folder, write_text

__all__ = [
    "DATE_COLUMNS",
    "FREE_TEXT_COLUMNS",
    "TABLES",
    "ExportSummary",
    "export_outputs",
]

#: The per-case tables exported, by file stem.
TABLES = ("sessions", "lesions", "timeline", "pk", "csf", "ex")
#: Columns holding calendar dates or date-times (dropped when de-identifying).
DATE_COLUMNS = frozenset(
    {
        "study_date",
        "date",
        "end_date",
        "datetime",
        "sample_date",
        "index_date",
        "first_study",
        "last_study",
        "EXSTDTC",
        "EXENDTC",
    }
)
#: Free-text columns (dropped when de-identifying).
FREE_TEXT_COLUMNS = frozenset({"detail", "source", "reading", "error", "note", "EXCOMMENT"})
_SESSION = re.compile(r"ses-[A-Za-z0-9]+")


@dataclass
class ExportSummary:
    """What an export wrote: cases, tables and, when de-identified, the pseudonym of each case."""

    folder: Path
    cases: list[str] = field(default_factory=list)
    tables: int = 0
    dicom: int = 0
    pseudonyms: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _typed(column: pd.Series) -> pd.Series:
    """A column as numbers when every non-empty cell is one (empty cells become missing)."""
    cells = column.replace("", None)
    try:
        return pd.to_numeric(cells)
    except (ValueError, TypeError):
        return column


def _write(frame: pd.DataFrame, stem: Path) -> None:
    """``stem``.tsv (the text as written by the analysis) and ``stem``.parquet (typed columns)."""
    frame.to_csv(stem.with_suffix(".tsv"), sep="\t", index=False)
    frame.apply(_typed).to_parquet(stem.with_suffix(".parquet"), index=False)


def _deidentify(
    frame: pd.DataFrame, case_ids: dict[str, str], sessions: dict[str, str]
) -> pd.DataFrame:
    """Drop date and free-text columns; replace case ids (also inside, e.g. USUBJID) and session
    labels in every remaining cell."""
    frame = frame.drop(columns=[c for c in frame.columns if c in DATE_COLUMNS | FREE_TEXT_COLUMNS])
    by_length = sorted(case_ids, key=len, reverse=True)

    def clean(value: object) -> object:
        if not isinstance(value, str) or not value:
            return value
        value = _SESSION.sub(lambda m: sessions.get(m.group(0), "ses-xx"), value)
        for original in by_length:
            value = value.replace(original, case_ids[original])
        return value

    return frame.apply(lambda column: column.map(clean))


def _session_pseudonyms(folder: Path) -> dict[str, str]:
    path = folder / "sessions.tsv"
    if not path.is_file():
        return {}
    sessions = _read(path)
    if sessions.empty:
        return {}
    ordered = sessions.assign(_day=pd.to_numeric(sessions["day"], errors="coerce")).sort_values(
        "_day"
    )
    return session_aliases([str(label) for label in ordered["session_id"]])


def _export_dicom(
    folder: Path,
    destination: Path,
    name: str,
    sessions: dict[str, str] | None,
    uids: UidMap,
) -> int:
    """Copy (``sessions`` None) or de-identify the case's DICOM SEG objects; return their number."""
    count = 0
    case_id = folder.name.removeprefix("sub-")
    for path in sorted(folder.glob("ses-*/*_seg.dcm")):
        session = path.parent.name
        if sessions is None:
            target = destination / session / path.name
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(path, target)
        else:
            alias = sessions.get(session, "ses-xx")
            stem = path.name.removeprefix(f"sub-{case_id}_{session}_")
            target = destination / alias / f"sub-{name}_{alias}_{stem}"
            target.parent.mkdir(exist_ok=True)
            dataset = deidentify(pydicom.dcmread(path), pseudonym=name, uids=uids)
            dataset.save_as(target, enforce_file_format=True)
        count += 1
    return count


def export_outputs(
    out_dir: Path, target: Path, *, deidentify: bool = False, key_file: Path | None = None
) -> ExportSummary:
    """Export ``out_dir`` (an output folder of analyze or batch) to the new folder ``target``.

    Raises
    ------
    FileExistsError
        When ``target`` exists (an export never overwrites).
    FileNotFoundError
        When ``out_dir`` holds no analysed case.
    """
    out_dir, target = Path(out_dir), Path(target)
    if target.exists():
        raise FileExistsError(f"{target} exists; choose a new folder for the export")
    cases = case_folders_in(out_dir)
    if not cases:
        raise FileNotFoundError(f"{out_dir}: no analysed case (sub-*/provenance.json) to export")
    pseudonyms = {
        folder.name.removeprefix("sub-"): f"P{n:03d}" for n, folder in enumerate(cases, start=1)
    }
    summary = ExportSummary(target, pseudonyms=pseudonyms if deidentify else {})
    uids = UidMap()
    with atomic_folder(target, replace=False, manifest=False) as work:
        cohort = out_dir / "cohort.tsv"
        if cohort.is_file():
            frame = _read(cohort)
            if deidentify:
                frame = _deidentify(frame, pseudonyms, {})
            _write(frame, work / "cohort")
            summary.tables += 1
        for folder in cases:
            case_id = folder.name.removeprefix("sub-")
            name = pseudonyms[case_id] if deidentify else case_id
            destination = work / f"sub-{name}"
            destination.mkdir()
            sessions = _session_pseudonyms(folder)
            for table in TABLES:
                path = folder / f"{table}.tsv"
                if not path.is_file():
                    continue
                frame = _read(path)
                if deidentify:
                    frame = _deidentify(frame, pseudonyms, sessions)
                _write(frame, destination / table)
                summary.tables += 1
            summary.dicom += _export_dicom(
                folder, destination, name, sessions if deidentify else None, uids
            )
            write_report(
                folder,
                destination / f"sub-{name}_report.pdf",
                pseudonym=name if deidentify else None,
            )
            bundle = folder / "medication_administrations.fhir.json"
            if bundle.is_file() and not deidentify:
                shutil.copy2(bundle, destination / bundle.name)
            summary.cases.append(name)
        description = (
            json.loads((out_dir / "dataset_description.json").read_text())
            if (out_dir / "dataset_description.json").is_file()
            else {"Name": "leukotrack lesion follow-up", "BIDSVersion": "1.9.0"}
        )
        description["DatasetType"] = "derivative"
        description.setdefault("GeneratedBy", [{"Name": "leukotrack"}])
        if deidentify:
            description["Name"] = "leukotrack lesion follow-up (de-identified export)"
        (work / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    if deidentify and key_file is not None:
        write_text(
            Path(key_file),
            "case_id\tpseudonym\n" + "".join(f"{k}\t{v}\n" for k, v in pseudonyms.items()),
        )
    return summary
