"""A patient's case folder as sessions of series, whatever the input layout (DICOM or BIDS-like NIfTI).

:func:`scan_case` reads headers only; each :class:`SeriesEntry` loads its pixels on demand.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

from imaging.errors import ImagingError, MixedPatientsError, NoImagesFoundError
from imaging.image import MRImage
from imaging.sequence import SequenceClass

__all__ = [
    "CaseIndex",
    "Patient",
    "SeriesEntry",
    "Session",
    "case_id_from_folder",
    "distinct_patients",
    "scan_case",
]

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9]")


def case_id_from_folder(folder: Path) -> str:
    """A BIDS-safe case label from a folder name (letters and digits only).

    >>> case_id_from_folder(Path("/data/patient_07-b"))
    'patient07b'
    """
    label = _LABEL_CHARS.sub("", folder.resolve().name)
    return label or "case"


@dataclass(frozen=True)
class Patient:
    """Who a study belongs to, as its headers (or a NIfTI sidecar) say.

    The name is kept only as a short hash (first 8 hex digits of the sha256 of the upper-cased name),
    enough to tell two patients apart in messages and provenance without printing the name.
    """

    patient_id: str
    name_hash: str = ""
    birth_date: str = ""

    @classmethod
    def from_fields(cls, patient_id: object, name: object, birth_date: object) -> Patient | None:
        """A patient from header fields (``None`` when all three are empty)."""
        identifier = str(patient_id or "").strip()
        normalised = " ".join(str(name or "").upper().replace("^", " ").split())
        born = str(birth_date or "").strip()
        if not (identifier or normalised or born):
            return None
        digest = hashlib.sha256(normalised.encode()).hexdigest()[:8] if normalised else ""
        return cls(identifier, digest, born)

    def same_as(self, other: Patient) -> bool:
        """Same ID, and no conflicting name or birth date (an empty field conflicts with nothing)."""

        def agree(a: str, b: str) -> bool:
            return a == b or not a or not b

        return (
            self.patient_id == other.patient_id
            and agree(self.name_hash, other.name_hash)
            and agree(self.birth_date, other.birth_date)
        )

    def describe(self) -> str:
        """``ID 'x' (name #1a2b3c4d, born 19610203)``."""
        details = [f"name #{self.name_hash}" if self.name_hash else "no name"]
        details.append(f"born {self.birth_date}" if self.birth_date else "no birth date")
        return f"ID {self.patient_id!r} ({', '.join(details)})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready (ID, name hash, birth date)."""
        return {
            "patient_id": self.patient_id,
            "name_sha256_8": self.name_hash,
            "birth_date": self.birth_date,
        }


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
    #: The named error behind ``problem`` (raised again when the series is needed).
    error: ImagingError | None = field(default=None, repr=False)
    #: The patient of the series, from its header or sidecar (``None`` when unknown).
    patient: Patient | None = None

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
    def patients(self) -> list[Patient]:
        """The distinct patients of the session's series (normally one; none when unknown)."""
        return distinct_patients(s.patient for s in self.series if s.patient is not None)

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
    #: True when the user allowed studies of several patients in this case (recorded in provenance).
    mixed_patients_allowed: bool = False

    def patients(self) -> list[tuple[Patient, list[Session]]]:
        """Each distinct patient with the sessions holding their studies (first seen first)."""
        groups: list[tuple[Patient, list[Session]]] = []
        for session in self.sessions:
            for patient in session.patients:
                group = next((g for g in groups if g[0].same_as(patient)), None)
                if group is None:
                    groups.append((patient, [session]))
                elif session not in group[1]:
                    group[1].append(session)
        return groups

    def patients_record(self) -> list[dict[str, Any]]:
        """The patients for provenance: ID, name hash, birth date and session labels."""
        return [
            {**patient.to_dict(), "sessions": [s.label for s in sessions]}
            for patient, sessions in self.patients()
        ]


def distinct_patients(patients: Iterable[Patient]) -> list[Patient]:
    """One entry per patient (see :meth:`Patient.same_as`), the most complete one kept."""
    found: list[Patient] = []
    for patient in patients:
        for k, known in enumerate(found):
            if known.same_as(patient):
                found[k] = Patient(
                    known.patient_id,
                    known.name_hash or patient.name_hash,
                    known.birth_date or patient.birth_date,
                )
                break
        else:
            found.append(patient)
    return found


def _check_one_patient(case: CaseIndex) -> None:
    groups = case.patients()
    if len(groups) <= 1:
        return
    listed = "; ".join(
        f"{patient.describe()}: "
        + ", ".join(
            f"{s.label} (study {s.study_uid or '?'}"
            + (f", {s.description}" if s.description else "")
            + ")"
            for s in sessions
        )
        for patient, sessions in groups
    )
    raise MixedPatientsError(
        f"{case.root}: holds studies of {len(groups)} patients: {listed}. A case must be one "
        "patient: move each patient's studies into a folder of their own (`leukotrack inspect` "
        "shows the patient of every study), or, if these are one patient under several IDs, pass "
        "--allow-mixed-patients"
    )


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
                    error=series.error,
                    patient=Patient.from_fields(
                        series.header.get("PatientID"),
                        series.header.get("PatientName"),
                        series.header.get("PatientBirthDate"),
                    ),
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


def scan_case(root: Path, *, allow_mixed_patients: bool = False) -> CaseIndex:
    """Index a case folder (DICOM anywhere below it, or the BIDS-like NIfTI layout of DESIGN.md §3.2).

    Parameters
    ----------
    root : Path
        The case folder (one patient).
    allow_mixed_patients : bool
        Accept studies of several patients (PatientID, name, birth date; for NIfTI from the JSON
        sidecars) in one case; recorded in :attr:`CaseIndex.mixed_patients_allowed`.

    Raises
    ------
    NoImagesFoundError
        When the folder does not exist or holds no images.
    MixedPatientsError
        When the studies belong to more than one patient and ``allow_mixed_patients`` is false.
    NiftiLayoutError
        When a NIfTI case breaks the layout (missing sessions.tsv, DWI without .bval, ...).
    TruncatedFileError, DicomReadError
        When a DICOM file cannot be read.
    ImageTooLargeError, DecompressionLimitError
        When a file declares or expands to more than the limits of :mod:`imaging.limits`.
    """
    root = Path(root)
    if not root.is_dir():
        raise NoImagesFoundError(f"{root}: no such folder")
    if is_bids_case(root):
        from imaging.bids import scan_bids_case

        case = CaseIndex(case_id_from_folder(root), root, "nifti", scan_bids_case(root))
    else:
        case = CaseIndex(case_id_from_folder(root), root, "dicom", _scan_dicom_case(root))
    if allow_mixed_patients:
        case.mixed_patients_allowed = True
    else:
        _check_one_patient(case)
    return case
