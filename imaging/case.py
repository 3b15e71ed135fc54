"""A patient's case folder as sessions of series, whatever the input layout (DICOM or BIDS-like NIfTI).

:func:`scan_case` reads headers only; each :class:`SeriesEntry` loads its pixels on demand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Literal

from imaging.errors import NoImagesFoundError
from imaging.image import MRImage
from imaging.sequence import SequenceClass

__all__ = ["CaseIndex", "SeriesEntry", "Session", "case_id_from_folder", "scan_case"]

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9]")


def case_id_from_folder(folder: Path) -> str:
    """A BIDS-safe case label from a folder name (letters and digits only).

    >>> case_id_from_folder(Path("/data/patient_07-b"))
    'patient07b'
    """
    label = _LABEL_CHARS.sub("", folder.resolve().name)
    return label or "case"


@dataclass
class SeriesEntry:
    """One loadable series of a session, with what is known before its pixels are read."""

    sequence: SequenceClass
    reasons: tuple[str, ...]
    description: str
    number: int | None
    b_values: list[float]
    shape: tuple[int, ...] | None
    spacing_mm: tuple[float, float, float] | None
    source: str
    problem: str | None
    loader: Callable[[], MRImage] = field(repr=False)
    uid: str | None = None
    #: The DICOM files of the series (empty for NIfTI input).
    paths: tuple[Path, ...] = ()

    def load(self) -> MRImage:
        """Read the pixels and return the image."""
        return self.loader()


@dataclass
class Session:
    """One MRI session (a DICOM study, or a BIDS ``ses-<label>`` folder)."""

    label: str
    study_date: date | None
    study_time: time | None
    series: list[SeriesEntry]
    study_uid: str | None = None
    description: str = ""

    @property
    def study_datetime(self) -> datetime | None:
        """Date and time combined (``None`` without a date)."""
        if self.study_date is None:
            return None
        return datetime.combine(self.study_date, self.study_time or time(0, 0))

    def candidates(self, sequence: SequenceClass | str) -> list[SeriesEntry]:
        """The loadable series of one class, preferred first.

        Preference: series that form a regular grid; for DWI those with a b>0 volume; then the last
        acquired (highest series number), since a repeat usually replaces a motion-degraded scan.
        """
        wanted = SequenceClass(sequence)
        found = [s for s in self.series if s.sequence is wanted and s.problem is None]

        def score(entry: SeriesEntry) -> tuple[int, int]:
            diffusion = (
                1 if wanted is not SequenceClass.DWI or any(b > 0 for b in entry.b_values) else 0
            )
            return (diffusion, entry.number if entry.number is not None else -1)

        return sorted(found, key=score, reverse=True)

    def pick(self, sequence: SequenceClass | str) -> SeriesEntry | None:
        """The preferred series of one class (see :meth:`candidates`), or ``None``."""
        candidates = self.candidates(sequence)
        return candidates[0] if candidates else None


@dataclass
class CaseIndex:
    """A case folder: its id, its layout and its sessions in time order."""

    case_id: str
    root: Path
    layout: Literal["dicom", "nifti"]
    sessions: list[Session]


def _session_labels(sessions: list[Session]) -> None:
    """Label DICOM sessions ``ses-YYYYMMDD`` (``b``, ``c``... for a second study on one day)."""
    used: dict[str, int] = {}
    for index, session in enumerate(sessions, start=1):
        base = f"ses-{session.study_date:%Y%m%d}" if session.study_date else f"ses-{index:02d}"
        count = used.get(base, 0)
        used[base] = count + 1
        session.label = base if count == 0 else f"{base}{chr(ord('a') + count)}"


def _scan_dicom_case(root: Path) -> list[Session]:
    from imaging.dicom.discover import scan_dicom

    sessions = []
    for study in scan_dicom(root):
        entries = []
        for series in study.series:
            layout = series.layout
            shape = layout.shape if layout is not None else None
            spacing = None
            if layout is not None:
                columns = layout.affine_ras[:3, :3]
                sizes = (columns**2).sum(axis=0) ** 0.5
                spacing = (float(sizes[0]), float(sizes[1]), float(sizes[2]))
            sequence, reasons = series.classification
            entries.append(
                SeriesEntry(
                    sequence=sequence,
                    reasons=reasons,
                    description=series.description,
                    number=series.number,
                    b_values=series.b_values,
                    shape=shape,
                    spacing_mm=spacing,
                    source=str(series.paths[0].parent),
                    problem=series.problem,
                    loader=series.load,
                    uid=series.uid,
                    paths=tuple(series.paths),
                )
            )
        sessions.append(
            Session(
                label="",
                study_date=study.study_date,
                study_time=study.study_time,
                series=entries,
                study_uid=study.uid,
                description=study.description,
            )
        )
    _session_labels(sessions)
    return sessions


def is_bids_case(root: Path) -> bool:
    """Whether ``root`` looks like a BIDS-like NIfTI case: a ``sessions.tsv``, or ``ses-*/anat`` or
    ``ses-*/dwi`` folders (other ``ses-*`` folders, e.g. of ground truth, do not count)."""
    if (root / "sessions.tsv").is_file():
        return True
    return any(
        (p / sub).is_dir()
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("ses-")
        for sub in ("anat", "dwi")
    )


def scan_case(root: Path) -> CaseIndex:
    """Index a case folder (DICOM anywhere below it, or the BIDS-like NIfTI layout of DESIGN.md §3.2).

    Raises
    ------
    NoImagesFoundError
        When the folder does not exist or holds no images.
    NiftiLayoutError
        When a NIfTI case breaks the layout (missing sessions.tsv, DWI without .bval, ...).
    TruncatedFileError, DicomReadError
        When a DICOM file cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise NoImagesFoundError(f"{root}: no such folder")
    if is_bids_case(root):
        from imaging.bids import scan_bids_case

        return CaseIndex(case_id_from_folder(root), root, "nifti", scan_bids_case(root))
    return CaseIndex(case_id_from_folder(root), root, "dicom", _scan_dicom_case(root))
