"""Acquisition metadata from a DICOM header."""

from __future__ import annotations

from datetime import date, time

from pydicom.dataset import Dataset

from imaging.dicom.classify import echo_time_ms, image_type, inversion_time_ms, sequence_name
from imaging.image import Acquisition
from imaging.sequence import SequenceClass

__all__ = ["acquisition_from_header", "parse_da", "parse_tm"]


def parse_da(value: object) -> date | None:
    """A DICOM DA value (``YYYYMMDD``) as a date, ``None`` when empty or malformed."""
    text = str(value or "").strip().replace("-", "").replace(".", "")
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def parse_tm(value: object) -> time | None:
    """A DICOM TM value (``HHMMSS.ffffff``, parts optional) as a time, ``None`` when empty."""
    text = str(value or "").strip().replace(":", "")
    if not text or not text[:2].isdigit():
        return None
    whole, _, fraction = text.partition(".")
    whole = whole.ljust(6, "0")
    try:
        micro = int(fraction.ljust(6, "0")[:6]) if fraction.isdigit() else 0
        return time(int(whole[0:2]), int(whole[2:4]), min(int(whole[4:6]), 59), micro)
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        return None if value in (None, "") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def acquisition_from_header(
    dataset: Dataset,
    *,
    sequence: SequenceClass,
    reasons: tuple[str, ...],
    source: str,
    unit: str = "",
    notes: tuple[str, ...] = (),
) -> Acquisition:
    """The :class:`~imaging.image.Acquisition` of a series, from one of its headers."""
    number = dataset.get("SeriesNumber")
    extra = {
        key: str(dataset.get(key))
        for key in ("ProtocolName", "BodyPartExamined", "MRAcquisitionType", "SoftwareVersions")
        if dataset.get(key) not in (None, "")
    }
    extra["Modality"] = str(dataset.get("Modality", "MR"))
    extra["SOPClassUID"] = str(dataset.get("SOPClassUID", ""))
    return Acquisition(
        study_uid=str(dataset.get("StudyInstanceUID", "")) or None,
        series_uid=str(dataset.get("SeriesInstanceUID", "")) or None,
        study_date=parse_da(dataset.get("StudyDate") or dataset.get("AcquisitionDate")),
        study_time=parse_tm(dataset.get("StudyTime") or dataset.get("AcquisitionTime")),
        series_number=int(number) if number not in (None, "") else None,
        series_description=str(dataset.get("SeriesDescription", "")).strip(),
        study_description=str(dataset.get("StudyDescription", "")).strip(),
        vendor=str(dataset.get("Manufacturer", "")).strip(),
        model=str(dataset.get("ManufacturerModelName", "")).strip(),
        field_strength_t=_float(dataset.get("MagneticFieldStrength")),
        echo_time_ms=echo_time_ms(dataset),
        repetition_time_ms=_float(dataset.get("RepetitionTime")),
        inversion_time_ms=inversion_time_ms(dataset),
        sequence_name=sequence_name(dataset),
        image_type=tuple(image_type(dataset)),
        unit=unit,
        source=source,
        classification_reasons=reasons,
        notes=notes,
        extra=extra,
    )
