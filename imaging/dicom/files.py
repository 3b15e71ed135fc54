"""Finding DICOM files on disk and reading them, whatever their names, nesting or compression.

A PACS export is a folder of files with or without ``.dcm``, some gzip-compressed (``.dcm.gz``), with a
DICOMDIR, presentation states, structured reports and stray non-DICOM files between the images. Only
image objects with a patient geometry are kept; everything else is skipped with a debug note.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError

from imaging.dicom.uih import is_uih_grid
from imaging.errors import DicomReadError, TruncatedFileError

__all__ = ["NON_DICOM_SUFFIXES", "iter_files", "read_dataset", "why_not_an_image"]

log = logging.getLogger(__name__)

#: Files with these endings are never DICOM; they are skipped without being opened.
NON_DICOM_SUFFIXES = (
    ".nii",
    ".nii.gz",
    ".json",
    ".tsv",
    ".csv",
    ".txt",
    ".md",
    ".bval",
    ".bvec",
    ".png",
    ".jpg",
    ".jpeg",
    ".pdf",
    ".html",
    ".xml",
    ".zip",
    ".exe",
    ".ini",
    ".inf",
)

_GZIP_MAGIC = b"\x1f\x8b"
#: Storage SOP classes live below this root; the non-image ones are listed below.
_IMAGE_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."
#: Media Storage Directory (DICOMDIR) and non-image SOP classes, by UID prefix, with a name for the log.
_NON_IMAGE_SOP_PREFIXES = {
    "1.2.840.10008.1.3.10": "DICOMDIR (media storage directory)",
    "1.2.840.10008.5.1.4.1.1.11.": "presentation state",
    "1.2.840.10008.5.1.4.1.1.88.": "structured report",
    "1.2.840.10008.5.1.4.1.1.66": "raw data or registration object",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR spectroscopy",
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated document",
    "1.2.840.10008.5.1.4.1.1.481.": "radiotherapy object",
    "1.2.840.10008.5.1.4.1.1.7": "secondary capture (screenshot, no patient geometry)",
}


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below ``root`` (or ``root`` itself), in sorted order, hidden ones excluded.

    Files whose name ends in one of :data:`NON_DICOM_SUFFIXES` are skipped with a debug note.
    """
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        name = path.name.lower()
        if name.endswith(NON_DICOM_SUFFIXES) and not name.endswith(".dcm.gz"):
            log.debug("skipped %s: not DICOM (by its file name)", path)
            continue
        yield path


def _open_bytes(path: Path) -> bytes | None:
    """The file's bytes, gunzipped when it is gzip-compressed; ``None`` when it cannot be DICOM."""
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise TruncatedFileError(
                f"{path}: gzip-compressed file is damaged ({error}); export it again"
            ) from error
    if len(raw) >= 132 and raw[128:132] == b"DICM":
        return raw
    # Old exports lack the 128-byte preamble: accept a raw data set that starts with a group 0002 or
    # 0008 tag (little endian), as dcm2niix does.
    if len(raw) >= 8 and raw[1:2] == b"\x00" and raw[0:1] in (b"\x02", b"\x08") and raw[2] == 0:
        return raw
    return None


def read_dataset(path: Path, *, headers_only: bool) -> Dataset | None:
    """Read one DICOM file.

    Parameters
    ----------
    path : Path
        File to read (plain or gzip-compressed).
    headers_only : bool
        Stop before the pixel data (fast scan) when true.

    Returns
    -------
    Dataset or None
        ``None`` when the file is not DICOM at all (a debug note is logged).

    Raises
    ------
    TruncatedFileError
        When the file starts as DICOM but ends early.
    DicomReadError
        When the file starts as DICOM but cannot be parsed.
    """
    raw = _open_bytes(path)
    if raw is None:
        log.debug("skipped %s: not a DICOM file", path)
        return None
    buffer = io.BytesIO(raw)
    try:
        dataset: FileDataset = pydicom.dcmread(buffer, stop_before_pixels=headers_only, force=True)
    except (EOFError, OSError, ValueError, KeyError, InvalidDicomError, OverflowError) as error:
        if _looks_truncated(error):
            raise TruncatedFileError(
                f"{path}: the file ends early ({error}); the export or copy was interrupted: "
                "copy the series again from PACS"
            ) from error
        raise DicomReadError(f"{path}: not readable as DICOM ({error})") from error
    # pydicom stops quietly at the end of a cut file; an image object must reach its pixel data.
    if _is_image_storage(dataset):
        ended_early = buffer.tell() >= len(raw) if headers_only else "PixelData" not in dataset
        if ended_early:
            raise TruncatedFileError(
                f"{path}: the file ends after {len(raw)} bytes, before its pixel data: it is "
                "truncated (an interrupted export or copy); copy the series again from PACS"
            )
        if not headers_only:
            _check_pixel_length(dataset, path)
    dataset.filename = str(path)
    return dataset


def _is_image_storage(dataset: Dataset) -> bool:
    """Whether the SOP class (from the data set or, if cut off, the file meta) is an image class."""
    meta = getattr(dataset, "file_meta", None)
    sop_class = str(
        dataset.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else "")
    )
    if not sop_class.startswith(_IMAGE_STORAGE_ROOT):
        return False
    return not any(sop_class.startswith(prefix) for prefix in _NON_IMAGE_SOP_PREFIXES)


def _looks_truncated(error: Exception) -> bool:
    text = str(error).lower()
    return isinstance(error, EOFError) or any(
        word in text
        for word in ("truncat", "end of file", "doesn't match the expected", "too short")
    )


def _check_pixel_length(dataset: Dataset, path: Path) -> None:
    """Raise :class:`TruncatedFileError` when native pixel data are shorter than the header says."""
    if dataset.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian).is_compressed:
        return
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    expected = int(dataset.Rows) * int(dataset.Columns) * frames * samples
    expected = expected * int(dataset.BitsAllocated) // 8
    actual = len(dataset.PixelData)
    if actual < expected:
        raise TruncatedFileError(
            f"{path}: pixel data hold {actual} bytes but the header describes {expected} "
            f"({dataset.Rows}x{dataset.Columns}x{frames} at {dataset.BitsAllocated} bits): the file is "
            "truncated; copy the series again from PACS"
        )


def why_not_an_image(dataset: Dataset) -> str | None:
    """Why a data set is not an MR image with patient geometry, or ``None`` when it is one."""
    sop_class = str(
        dataset.get("SOPClassUID", dataset.file_meta.get("MediaStorageSOPClassUID", ""))
    )
    for prefix, name in _NON_IMAGE_SOP_PREFIXES.items():
        if sop_class.startswith(prefix):
            return name
    if "DirectoryRecordSequence" in dataset:
        return "DICOMDIR (media storage directory)"
    if "Rows" not in dataset or "Columns" not in dataset:
        return f"no image ({sop_class or 'unknown SOP class'})"
    has_geometry = (
        "ImagePositionPatient" in dataset
        or "PerFrameFunctionalGroupsSequence" in dataset
        or is_uih_grid(dataset)  # per-slice positions in a private sequence
    )
    if not has_geometry:
        return "image without patient geometry (ImagePositionPatient absent)"
    modality = str(dataset.get("Modality", "MR"))
    if modality != "MR":
        return f"modality {modality}, not MR"
    return None
