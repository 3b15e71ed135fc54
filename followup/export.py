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

De-identification replaces identifiers only where they are: in the identifier columns
(:data:`IDENTIFIER_COLUMNS`, e.g. ``case_id``, ``USUBJID``), in text cells that are exactly a case id,
and, for case ids holding a letter, where the id stands as a word in a text cell; numeric columns
are never touched and keep their type (a numeric case id ``1`` leaves ``1.125`` as it is).

The pseudonym key (``key_file``) is checked before anything is written and is never overwritten:
an existing file, a path inside the export folder, or a place that cannot be written is refused with
:class:`PseudonymKeyError`. leukotrack refuses rather than merging into an existing key because a
key is the only way back from the export to the patients: rewriting it risks that mapping, and
re-using its pseudonyms would link exports that were meant to be separate. The key is put in place
(exclusively, never replacing a file) just before the export folder is renamed into place, and
removed again if that rename fails: there is never a finished export without its key.

Every cell passes :func:`followup.tsv.safe_cell` (formula injection), in TSV and in Parquet text
columns alike.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pydicom

from followup.errors import ExportError, PseudonymKeyError
from followup.report import write_report
from followup.results import case_folders_in, session_aliases
from followup.tsv import safe_frame
from imaging.dicom.deidentify import UidMap, deidentify
from safeio import ForeignFilesError, OutputError, atomic_folder, writable_folder, write_text

__all__ = [
    "DATE_COLUMNS",
    "FREE_TEXT_COLUMNS",
    "IDENTIFIER_COLUMNS",
    "TABLES",
    "ExportError",
    "ExportSummary",
    "PseudonymKeyError",
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
#: Columns that hold a case id (``USUBJID`` as ``<study>-<case id>``): replaced by the pseudonym.
IDENTIFIER_COLUMNS = frozenset({"case_id", "USUBJID", "subject_id", "participant_id"})
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


def _is_numeric(column: pd.Series) -> bool:
    """True when every non-empty cell of a text column is a number (the Parquet column is numeric)."""
    return _typed(column) is not column


def _write(frame: pd.DataFrame, stem: Path) -> None:
    """``stem``.tsv (the text as written by the analysis) and ``stem``.parquet (typed columns); text
    cells a spreadsheet would run as formulas are escaped in both."""
    safe_frame(frame).to_csv(stem.with_suffix(".tsv"), sep="\t", index=False)
    safe_frame(frame.apply(_typed)).to_parquet(stem.with_suffix(".parquet"), index=False)


def _deidentify(
    frame: pd.DataFrame, case_ids: dict[str, str], sessions: dict[str, str]
) -> pd.DataFrame:
    """Drop date and free-text columns; replace case ids and session labels where they are
    identifiers (see the module docstring), never in numeric columns."""
    frame = frame.drop(columns=[c for c in frame.columns if c in DATE_COLUMNS | FREE_TEXT_COLUMNS])
    longest_first = sorted(case_ids, key=len, reverse=True)
    worded = [original for original in longest_first if re.search(r"[A-Za-z]", original)]
    words = (
        re.compile(
            r"(?<![A-Za-z0-9])(" + "|".join(re.escape(o) for o in worded) + r")(?![A-Za-z0-9])"
        )
        if worded
        else None
    )

    def session(value: str) -> str:
        return _SESSION.sub(lambda m: sessions.get(m.group(0), "ses-xx"), value)

    def identifier(value: object) -> object:
        if not isinstance(value, str) or not value:
            return value
        if value in case_ids:
            return case_ids[value]
        for original in longest_first:  # USUBJID: <study>-<case id>; the longest id wins
            if value.endswith(f"-{original}") and len(value) > len(original) + 1:
                return value[: -len(original)] + case_ids[original]
        return text(value)

    def text(value: object) -> object:
        if not isinstance(value, str) or not value:
            return value
        if value in case_ids:
            return case_ids[value]
        value = session(value)
        if words is not None:
            value = words.sub(lambda m: case_ids[m.group(1)], value)
        return value

    out = frame.copy()
    for column in out.columns:
        if column in IDENTIFIER_COLUMNS:
            out[column] = out[column].map(identifier)
        elif not _is_numeric(out[column]):
            out[column] = out[column].map(text)
    return out


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


def _cohort_sessions(frame: pd.DataFrame, cases: list[Path]) -> dict[str, str]:
    """Session aliases for the cohort table, whose rows mix cases: each row's label is replaced
    in place by its own case's alias (``ses-01`` ...), and the returned map keeps the aliases."""
    if "session_id" not in frame.columns or "case_id" not in frame.columns:
        return {}
    aliases = {folder.name.removeprefix("sub-"): _session_pseudonyms(folder) for folder in cases}
    frame["session_id"] = [
        aliases.get(case, {}).get(label, "ses-xx") if label else label
        for case, label in zip(frame["case_id"], frame["session_id"], strict=True)
    ]
    return {alias: alias for alias in frame["session_id"] if alias}


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

    With ``deidentify``, ``key_file`` receives the pseudonym key (``case_id``, ``pseudonym``); it
    is checked before anything is written and never overwritten (module docstring).

    Raises
    ------
    FileExistsError
        When ``target`` exists (an export never overwrites).
    FileNotFoundError
        When ``out_dir`` holds no analysed case.
    PseudonymKeyError
        When ``key_file`` exists, lies inside ``target``, or cannot be written.
    ExportError
        When ``key_file`` is given without ``deidentify``.
    """
    out_dir, target = Path(out_dir), Path(target)
    if target.exists():
        raise FileExistsError(f"{target} exists; choose a new folder for the export")
    if key_file is not None and not deidentify:
        raise ExportError(
            "--key names the pseudonym key of a de-identified export: add --deidentify"
        )
    if key_file is not None:
        _check_key_place(Path(key_file), target)
    cases = case_folders_in(out_dir)
    if not cases:
        raise FileNotFoundError(f"{out_dir}: no analysed case (sub-*/provenance.json) to export")
    pseudonyms = {
        folder.name.removeprefix("sub-"): f"P{n:03d}" for n, folder in enumerate(cases, start=1)
    }
    key = _Key.prepare(Path(key_file), pseudonyms) if deidentify and key_file is not None else None
    summary = ExportSummary(target, pseudonyms=pseudonyms if deidentify else {})
    uids = UidMap()
    try:
        with atomic_folder(target, replace=False, manifest=False) as work:
            cohort = out_dir / "cohort.tsv"
            if cohort.is_file():
                frame = _read(cohort)
                if deidentify:
                    frame = _deidentify(frame, pseudonyms, _cohort_sessions(frame, cases))
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
            if key is not None:
                key.put_in_place()  # first the key, then the export: never an export without its key
    except BaseException:
        if key is not None:
            key.withdraw()
            key.discard()
        raise
    return summary


def _check_key_place(key_file: Path, target: Path) -> None:
    """Refuse a key path inside the export folder, or one that exists (before anything is written)."""
    where = key_file.resolve()
    export = target.resolve()
    if where == export or export in where.parents:
        raise PseudonymKeyError(
            f"{key_file}: keep the pseudonym key outside the export folder {target} (whoever receives "
            "the export must not receive the key)"
        )
    if key_file.exists() or key_file.is_symlink():
        raise PseudonymKeyError(
            f"{key_file} exists; a pseudonym key is never overwritten (it is the only way back to the "
            "patients of an earlier export): name a new file for this export's key"
        )


@dataclass
class _Key:
    """The pseudonym key: its place is checked (created and written to) before the export starts, so
    an unwritable place is refused before anything else is written; it is written, never replacing a
    file, just before the export is put in place (:func:`safeio.write_text`)."""

    final: Path
    text: str
    created: list[Path]
    placed: bool = False

    @classmethod
    def prepare(cls, final: Path, pseudonyms: dict[str, str]) -> _Key:
        created = [p for p in reversed(final.parents) if not p.exists()]
        text = "case_id\tpseudonym\n" + "".join(f"{k}\t{v}\n" for k, v in pseudonyms.items())
        key = cls(final, text, created)
        try:
            writable_folder(final.parent)
        except (OutputError, OSError) as error:
            key.discard()
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise PseudonymKeyError(
                f"{final}: cannot write the pseudonym key there ({reason}); choose a writable "
                "place outside the export folder"
            ) from None
        return key

    def put_in_place(self) -> None:
        """Write the key; refuses if a file appeared there meanwhile."""
        try:
            write_text(self.final, self.text, overwrite=False)
        except ForeignFilesError:
            raise PseudonymKeyError(
                f"{self.final} appeared while exporting; a pseudonym key is never overwritten: "
                "name a new file"
            ) from None
        self.placed = True

    def withdraw(self) -> None:
        """Remove the key put in place (the export could not be completed)."""
        if self.placed:
            self.final.unlink(missing_ok=True)
            self.placed = False

    def discard(self) -> None:
        """Remove the folders created for a key that was never placed."""
        if not self.placed:
            for folder in reversed(self.created):
                with contextlib.suppress(OSError):
                    folder.rmdir()
