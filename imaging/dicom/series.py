"""Load one DICOM series as an :class:`~imaging.image.MRImage`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from imaging.dicom.classify import classify
from imaging.dicom.files import iter_files, read_dataset, why_not_an_image
from imaging.dicom.frames import Frame, frames_from_dataset
from imaging.dicom.header import acquisition_from_header
from imaging.dicom.stack import stack_frames
from imaging.errors import MixedSeriesError, NoImagesFoundError
from imaging.image import MRImage
from imaging.sequence import SequenceClass
from imaging.units import ADC_UNIT, adc_to_um2s

__all__ = [
    "image_from_datasets",
    "load_dicom_series",
    "load_series_folder",
    "nothing_found",
    "read_images",
]

log = logging.getLogger(__name__)


def read_images(
    paths: Iterable[Path], *, headers_only: bool, skipped: list[str] | None = None
) -> list[Dataset]:
    """Read the MR image objects among ``paths``; others are skipped with a debug note.

    When ``skipped`` is given, a line ``"<file>: <why>"`` is appended to it for every DICOM object
    that is not a usable MR image.
    """
    datasets = []
    for path in paths:
        dataset = read_dataset(path, headers_only=headers_only)
        if dataset is None:
            continue
        reason = why_not_an_image(dataset)
        if reason is not None:
            log.debug("skipped %s: %s", path, reason)
            if skipped is not None:
                skipped.append(f"{path.name}: {reason}")
            continue
        datasets.append(dataset)
    return datasets


def nothing_found(where: str, skipped: list[str]) -> NoImagesFoundError:
    detail = ""
    if skipped:
        shown = "; ".join(skipped[:3]) + (
            f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        )
        detail = f" (skipped DICOM objects: {shown})"
    return NoImagesFoundError(
        f"{where}: no DICOM MR image with patient geometry found{detail}. Point at the folder that "
        "holds the exported images"
    )


def _deduplicate(datasets: list[Dataset]) -> list[Dataset]:
    """Drop second copies of the same SOP instance (same SOPInstanceUID), with a warning."""
    seen: dict[str, str] = {}
    kept = []
    for dataset in datasets:
        uid = str(dataset.get("SOPInstanceUID", ""))
        if uid and uid in seen:
            log.warning(
                "%s is a second copy of %s (same SOPInstanceUID); ignored",
                dataset.filename,
                seen[uid],
            )
            continue
        seen[uid] = str(dataset.filename)
        kept.append(dataset)
    return kept


def _series_name(dataset: Dataset, where: str) -> str:
    number = dataset.get("SeriesNumber", "?")
    description = str(dataset.get("SeriesDescription", "")).strip() or "no description"
    return f"{where} (series {number}, {description})"


def image_from_datasets(datasets: Sequence[Dataset], *, where: str) -> MRImage:
    """Stack the images of one series (read with pixel data) into an :class:`MRImage`.

    The series is classified from its headers; DWI keeps one b-value per volume; ADC maps are converted
    to um2/s, with the stored unit recorded in ``acquisition.notes``.

    Raises
    ------
    MixedSeriesError
        When the data sets belong to more than one series.
    GeometryError, TruncatedFileError, DicomReadError, AdcUnitError
        As raised while stacking, decoding or converting.
    """
    if not datasets:
        raise NoImagesFoundError(f"{where}: no DICOM MR images found")
    uids = sorted({str(ds.get("SeriesInstanceUID", "")) for ds in datasets})
    if len(uids) > 1:
        names = "; ".join(_series_name(ds, "").strip() for ds in _one_per_series(datasets))
        raise MixedSeriesError(
            f"{where}: holds {len(uids)} series {names}; point at a folder with one series, or "
            "load the case folder to have them grouped"
        )
    datasets = _deduplicate(list(datasets))
    header = datasets[0]
    label = _series_name(header, where)
    frames: list[Frame] = []
    for dataset in datasets:
        frames.extend(frames_from_dataset(dataset, with_pixels=True))
    stacked = stack_frames(frames, where=label)
    sequence, reasons = classify(header, stacked.layout.b_values)
    notes: list[str] = []
    data = stacked.data
    unit = ""
    bvals: list[float] | None = None
    if sequence is SequenceClass.DWI:
        bvals = []
        for v, b in enumerate(stacked.layout.b_values):
            if b is None:
                notes.append(f"volume {v}: no b-value in any header tag; taken as 0 s/mm2")
                log.warning("%s: volume %d has no b-value in any tag; taken as 0", label, v)
                b = 0.0
            bvals.append(float(b))
    elif sequence is SequenceClass.ADC:
        data, stored_unit = adc_to_um2s(data)
        unit = ADC_UNIT
        notes.append(f"ADC stored in {stored_unit}; converted to {ADC_UNIT}")
    sources = sorted({f.b_source for f in frames if f.b_source})
    if sources:
        notes.append("b-values from " + ", ".join(sources))
    acquisition = acquisition_from_header(
        header,
        sequence=sequence,
        reasons=reasons,
        source=str(Path(str(header.filename)).parent),
        unit=unit,
        notes=tuple(notes),
    )
    return MRImage(
        np.ascontiguousarray(data),
        stacked.layout.affine_ras,
        sequence=sequence,
        bvals_s_mm2=bvals,
        acquisition=acquisition,
    )


def _one_per_series(datasets: Sequence[Dataset]) -> list[Dataset]:
    first: dict[str, Dataset] = {}
    for dataset in datasets:
        first.setdefault(str(dataset.get("SeriesInstanceUID", "")), dataset)
    return list(first.values())


def load_dicom_series(paths: Sequence[Path], *, where: str | None = None) -> MRImage:
    """Load the DICOM files ``paths`` (one series) as an image. See :func:`image_from_datasets`."""
    label = where or (str(Path(paths[0]).parent) if paths else "?")
    skipped: list[str] = []
    datasets = read_images(paths, headers_only=False, skipped=skipped)
    if not datasets:
        raise nothing_found(label, skipped)
    return image_from_datasets(datasets, where=label)


def load_series_folder(folder: Path) -> MRImage:
    """Load the one series found below ``folder`` (any nesting, any file names).

    Raises
    ------
    NoImagesFoundError
        When no DICOM MR image is found.
    MixedSeriesError
        When the folder holds more than one series.
    """
    folder = Path(folder)
    if not folder.exists():
        raise NoImagesFoundError(f"{folder}: no such file or folder")
    skipped: list[str] = []
    datasets = read_images(iter_files(folder), headers_only=False, skipped=skipped)
    if not datasets:
        raise nothing_found(str(folder), skipped)
    return image_from_datasets(datasets, where=str(folder))
