"""The BIDS-like NIfTI case layout (DESIGN.md §3.2).

::

    CASE/
      sessions.tsv                       session_id (ses-<label>), acq_time (ISO date or date-time)
      ses-<label>/anat/*_FLAIR.nii[.gz]
      ses-<label>/anat/*_T1w.nii[.gz]    optional (handed to lesion engines that use a T1)
      ses-<label>/dwi/*_dwi.nii[.gz]     with *_dwi.bval beside it
      ses-<label>/dwi/*_ADC.nii[.gz]     optional (computed from the DWI when absent)

A session may hold FLAIR only, or DWI/ADC only.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
from datetime import date, datetime, time
from pathlib import Path

from imaging.case import Patient, SeriesEntry, Session
from imaging.errors import NiftiLayoutError, NoImagesFoundError
from imaging.limits import read_small_file
from imaging.nifti import load_nifti, nifti_stem, open_nifti, read_bval, read_sidecar
from imaging.sequence import SequenceClass
from safeio.text import FALLBACK_ENCODING, TextDecodeError, decode_text

__all__ = ["read_sessions_tsv", "scan_bids_case"]

log = logging.getLogger(__name__)

_PATTERNS = (
    ("anat", "*_FLAIR.nii*", SequenceClass.FLAIR),
    ("anat", "*_T1w.nii*", SequenceClass.T1),
    ("dwi", "*_dwi.nii*", SequenceClass.DWI),
    ("dwi", "*_ADC.nii*", SequenceClass.ADC),
)


def _parse_when(text: str, where: str) -> datetime:
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0, 0))
        return datetime.fromisoformat(value)
    except ValueError as error:
        raise NiftiLayoutError(
            f"{where}: acq_time {text!r} is not an ISO date (YYYY-MM-DD) or date-time"
        ) from error


def _decode_text(path: Path) -> str:
    """A small text file as str, by the one rule of :func:`safeio.text.decode_text` (a warning when it
    is read as Windows-1252).

    Raises
    ------
    NiftiLayoutError
        When the bytes are no text in any accepted encoding.
    """
    raw = read_small_file(path, what="sessions.tsv")
    try:
        text, encoding = decode_text(raw)
    except TextDecodeError as error:
        raise NiftiLayoutError(
            f"{path}: {error} (line {error.line}); save it again as UTF-8 tab-separated text"
        ) from None
    if encoding == FALLBACK_ENCODING:
        log.warning("%s: not UTF-8, read as Windows-1252 (latin-1)", path)
    return text


def read_sessions_tsv(path: Path) -> dict[str, datetime]:
    """``session_id -> acquisition date-time`` from a BIDS ``sessions.tsv``.

    UTF-8 (a byte order mark is ignored), UTF-16 with a byte order mark and Windows-1252 are read.

    Raises
    ------
    NiftiLayoutError
        When the file is not text, lacks the ``session_id`` or ``acq_time`` column, lists a session
        twice, or a row is malformed.
    """
    text = _decode_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    fields = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = fields
    missing = {"session_id", "acq_time"} - set(fields)
    if missing:
        found = ", ".join(repr(f) for f in fields) or "none"
        raise NiftiLayoutError(
            f"{path}: missing column(s) {', '.join(sorted(missing))} (found {found}); "
            "sessions.tsv needs session_id (ses-<label>) and acq_time (ISO date), tab-separated"
        )
    sessions: dict[str, datetime] = {}
    lines: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # a blank line
        session_id = (row.get("session_id") or "").strip()
        if not session_id.startswith("ses-"):
            raise NiftiLayoutError(f"{path}, line {line}: session_id must look like ses-<label>")
        if session_id in sessions:
            raise NiftiLayoutError(
                f"{path}, line {line}: {session_id} is listed again (first on line "
                f"{lines[session_id]}); each session needs exactly one row with its acq_time: "
                "remove the duplicate"
            )
        sessions[session_id] = _parse_when(row.get("acq_time") or "", f"{path}, line {line}")
        lines[session_id] = line
    return sessions


def _entry(path: Path, sequence: SequenceClass) -> SeriesEntry:
    header = open_nifti(path).header
    sidecar = read_sidecar(nifti_stem(path).with_suffix(".json"))
    shape = tuple(int(n) for n in header.get_data_shape())
    zooms = header.get_zooms()
    b_values = []
    if sequence is SequenceClass.DWI:
        bval = nifti_stem(path).with_suffix(".bval")
        b_values = sorted(set(read_bval(bval))) if bval.is_file() else []
    return SeriesEntry(
        sequence=sequence,
        reasons=(f"BIDS suffix in {path.name}",),
        description=nifti_stem(path).name,
        number=None,
        b_values=b_values,
        shape=shape,
        spacing_mm=(float(zooms[0]), float(zooms[1]), float(zooms[2])),
        source=str(path),
        problem=None,
        loader=functools.partial(load_nifti, path, sequence=sequence),
        patient=Patient.from_fields(
            sidecar.get("PatientID"), sidecar.get("PatientName"), sidecar.get("PatientBirthDate")
        ),
    )


def scan_bids_case(root: Path) -> list[Session]:
    """The sessions of a BIDS-like case in time order (headers only).

    Raises
    ------
    NiftiLayoutError
        When sessions.tsv is missing, or a session folder is not listed in it.
    NoImagesFoundError
        When no session holds a FLAIR, DWI or ADC image.
    """
    tsv = root / "sessions.tsv"
    if not tsv.is_file():
        raise NiftiLayoutError(
            f"{root}: a NIfTI case needs sessions.tsv at its root (columns session_id, acq_time) "
            "to date its sessions"
        )
    dates = read_sessions_tsv(tsv)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("ses-"))
    unlisted = [p.name for p in folders if p.name not in dates]
    if unlisted:
        raise NiftiLayoutError(
            f"{tsv}: session folder(s) {', '.join(unlisted)} are not listed; add a row with their "
            "acq_time"
        )
    sessions = []
    for folder in folders:
        entries = []
        for subfolder, pattern, sequence in _PATTERNS:
            for path in sorted((folder / subfolder).glob(pattern)):
                if path.name.endswith((".nii", ".nii.gz")):
                    entries.append(_entry(path, sequence))
        if not entries:
            continue
        when = dates[folder.name]
        sessions.append(
            Session(
                label=folder.name, study_date=when.date(), study_time=when.time(), series=entries
            )
        )
    if not sessions:
        raise NoImagesFoundError(
            f"{root}: no ses-*/anat/*_FLAIR.nii[.gz] or ses-*/dwi/*_dwi.nii[.gz] images found"
        )
    return sorted(sessions, key=lambda s: (s.study_datetime or datetime.min, s.label))
