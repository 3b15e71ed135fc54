"""Scan a folder of DICOM files (a PACS export) into studies (= sessions) and series, headers only."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path

from pydicom.dataset import Dataset

from imaging.dicom.classify import classify
from imaging.dicom.files import iter_files
from imaging.dicom.frames import Frame, frames_from_dataset
from imaging.dicom.header import parse_da, parse_tm
from imaging.dicom.series import load_dicom_series, nothing_found, read_images
from imaging.dicom.stack import Layout, plan_layout
from imaging.errors import GeometryError, ImagingError, NoImagesFoundError
from imaging.image import MRImage
from imaging.limits import check_image_bytes
from imaging.sequence import SequenceClass

__all__ = ["DicomSeries", "DicomStudy", "scan_dicom"]

log = logging.getLogger(__name__)


@dataclass
class DicomSeries:
    """One series found by :func:`scan_dicom`: its files, header summary and class (pixels unread)."""

    uid: str
    paths: list[Path]
    header: Dataset
    frames: list[Frame]
    #: Why the files' frames could not all be read from the headers (e.g. a UIH grid whose private
    #: header cannot place its slices); reported as the series' :attr:`problem`.
    frame_error: ImagingError | None = None

    @property
    def number(self) -> int | None:
        """SeriesNumber, when present."""
        value = self.header.get("SeriesNumber")
        return int(value) if value not in (None, "") else None

    @property
    def description(self) -> str:
        """SeriesDescription (may be empty)."""
        return str(self.header.get("SeriesDescription", "")).strip()

    @cached_property
    def b_values(self) -> list[float]:
        """Distinct b-values (s/mm2) over all frames, ascending."""
        return sorted({round(f.b_value, 3) for f in self.frames if f.b_value is not None})

    @cached_property
    def classification(self) -> tuple[SequenceClass, tuple[str, ...]]:
        """The class and why."""
        return classify(self.header, [f.b_value for f in self.frames])

    @property
    def sequence(self) -> SequenceClass:
        """DWI, ADC, FLAIR or OTHER."""
        return self.classification[0]

    @cached_property
    def _layout(self) -> Layout | ImagingError:
        if self.frame_error is not None:
            return self.frame_error
        try:
            return plan_layout(self.frames, where=self.label)
        except ImagingError as error:
            return error

    @property
    def layout(self) -> Layout | None:
        """The grid the series forms, or ``None`` when it forms none (see :attr:`problem`)."""
        return self._layout if isinstance(self._layout, Layout) else None

    @property
    def error(self) -> ImagingError | None:
        """The named error of :attr:`problem` (``None`` when the series forms a grid)."""
        return self._layout if isinstance(self._layout, ImagingError) else None

    @property
    def problem(self) -> str | None:
        """Why the series cannot be stacked, or ``None``."""
        if not isinstance(self._layout, ImagingError):
            return None
        return f"{type(self._layout).__name__}: {str(self._layout).removeprefix(self.label + ': ')}"

    @property
    def label(self) -> str:
        """A human-readable name: folder, number and description."""
        folder = self.paths[0].parent if self.paths else Path("?")
        return f"{folder} (series {self.number}, {self.description or 'no description'})"

    def load(self) -> MRImage:
        """Read the pixel data and build the image (see :func:`load_dicom_series`).

        The series' size in memory (float32 when rescaled), known from its headers, is checked
        against the image limit first (:func:`imaging.limits.check_image_bytes`), before any pixel
        data are read.
        """
        layout = self.layout
        if layout is not None:
            rescaled = any(f.slope != 1.0 or f.intercept != 0.0 for f in self.frames)
            bits = 32 if rescaled else int(self.header.get("BitsAllocated", 16) or 16)
            check_image_bytes(
                math.prod(layout.shape) * ((bits + 7) // 8),
                where=self.label,
                what=f"{'x'.join(str(n) for n in layout.shape)} voxels of {bits} bits"
                + (" (rescaled to float32)" if rescaled else ""),
            )
        return load_dicom_series(self.paths, where=str(self.paths[0].parent))


@dataclass
class DicomStudy:
    """One study (one MRI session): its UID, date and time, and its series."""

    uid: str
    study_date: date | None
    study_time: time | None
    description: str
    series: list[DicomSeries] = field(default_factory=list)

    @property
    def study_datetime(self) -> datetime | None:
        """Date and time combined (``None`` without a date)."""
        if self.study_date is None:
            return None
        return datetime.combine(self.study_date, self.study_time or time(0, 0))


def _series_sort_key(series: DicomSeries) -> tuple[int, str]:
    return (series.number if series.number is not None else 1_000_000, series.uid)


def scan_dicom(root: Path) -> list[DicomStudy]:
    """Find every MR image below ``root`` and group them into studies and series (headers only).

    Parameters
    ----------
    root : Path
        A folder (any nesting, files with or without extension, ``.dcm.gz`` read) or a single file.

    Returns
    -------
    list of DicomStudy
        Ordered by study date and time (undated studies last); series by series number.

    Raises
    ------
    NoImagesFoundError
        When ``root`` holds no DICOM MR image.
    TruncatedFileError, DicomReadError
        When a file starts as DICOM but cannot be read.
    """
    root = Path(root)
    if not root.exists():
        raise NoImagesFoundError(f"{root}: no such file or folder")
    by_series: dict[str, list[Dataset]] = defaultdict(list)
    skipped: list[str] = []
    for dataset in read_images(iter_files(root), headers_only=True, skipped=skipped):
        by_series[str(dataset.get("SeriesInstanceUID", ""))].append(dataset)
    if not by_series:
        raise nothing_found(str(root), skipped)
    studies: dict[str, DicomStudy] = {}
    for uid, datasets in by_series.items():
        datasets.sort(key=lambda ds: (int(ds.get("InstanceNumber", 0) or 0), str(ds.filename)))
        header = datasets[0]
        frames: list[Frame] = []
        frame_error: GeometryError | None = None
        try:
            for dataset in datasets:
                frames.extend(frames_from_dataset(dataset, with_pixels=False))
        except GeometryError as error:  # one unplaceable series does not stop the scan
            frame_error = error
        series = DicomSeries(
            uid=uid,
            paths=[Path(str(ds.filename)) for ds in datasets],
            header=header,
            frames=frames,
            frame_error=frame_error,
        )
        study_uid = str(header.get("StudyInstanceUID", ""))
        if study_uid not in studies:
            studies[study_uid] = DicomStudy(
                uid=study_uid,
                study_date=parse_da(header.get("StudyDate") or header.get("SeriesDate")),
                study_time=parse_tm(header.get("StudyTime") or header.get("SeriesTime")),
                description=str(header.get("StudyDescription", "")).strip(),
            )
        studies[study_uid].series.append(series)
    for study in studies.values():
        study.series.sort(key=_series_sort_key)
    return sorted(
        studies.values(),
        key=lambda s: (s.study_datetime is None, s.study_datetime or datetime.min, s.uid),
    )
