"""Finding DICOM files on disk and reading them, whatever their names, nesting or compression.

A PACS export is a folder of files with or without ``.dcm``, some gzip-compressed (``.dcm.gz``), with a
DICOMDIR, presentation states, structured reports and stray non-DICOM files between the images. Only
image objects with a patient geometry are kept; everything else is skipped with a debug note.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from imaging.dicom.uih import is_uih_grid
from imaging.errors import DecompressionLimitError, DicomReadError, TruncatedFileError
from imaging.limits import check_image_bytes, gunzip_chunks
from imaging.walk import walk_files

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
#: Bytes read to tell DICOM from other files (preamble, ``DICM``, first tag).
_HEAD_BYTES = 140
#: A gzip-compressed file is decompressed in prefixes of at least this size until its header is whole.
_GZ_PREFIX_BYTES = 1 << 16
#: Bytes a compressed image may hold beyond its header and declared pixel data (trailing elements).
_GZ_SLACK_BYTES = 1 << 20
#: Deflated Explicit VR Little Endian, as it appears in a file meta (looked for in its first bytes).
_DEFLATED_UID = pydicom.uid.DeflatedExplicitVRLittleEndian.encode()
_META_PEEK_BYTES = 4096
#: A file with one of these endings that is too short for a DICOM preamble is a cut DICOM file.
_DICOM_SUFFIXES = (".dcm", ".dcm.gz", ".ima", ".dicom")
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

    Symlinked folders and files are followed, each real folder once (see
    :func:`imaging.walk.walk_files`). Files whose name ends in one of :data:`NON_DICOM_SUFFIXES`
    are skipped with a debug note.
    """
    for path in walk_files(root):
        name = path.name.lower()
        if path != root and name.endswith(NON_DICOM_SUFFIXES) and not name.endswith(".dcm.gz"):
            log.debug("skipped %s: not DICOM (by its file name)", path)
            continue
        yield path


def _looks_like_dicom(head: bytes) -> bool:
    """Whether the first bytes of a file start a DICOM file (preamble + ``DICM``) or a raw data set."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # Old exports lack the 128-byte preamble: accept a raw data set that starts with a group 0002 or
    # 0008 tag (little endian), as dcm2niix does.
    return (
        len(head) >= 8 and head[1:2] == b"\x00" and head[0:1] in (b"\x02", b"\x08") and head[2] == 0
    )


def _cut_preamble(head: bytes, path: Path) -> bool:
    """Whether a file too short to hold a DICOM preamble is a cut DICOM file: named like one, or
    holding only NUL bytes (the usual preamble), possibly followed by the start of ``DICM``."""
    if len(head) >= 132 or _looks_like_dicom(head):
        return False
    named = path.name.lower().endswith(_DICOM_SUFFIXES)
    preamble_only = not head[:128].strip(b"\x00") and b"DICM".startswith(head[128:])
    return named or (len(head) > 0 and preamble_only)


def _truncated(path: Path, size: int) -> TruncatedFileError:
    return TruncatedFileError(
        f"{path}: the file ends after {size} bytes, before the end of its DICOM preamble: it is "
        "truncated (an interrupted export or copy); copy the series again from PACS"
    )


def _header_complete(prefix: bytes) -> bool:
    """Whether ``prefix`` (the start of a decompressed file) holds the whole header: the data set
    up to its pixel data, or all of it. ``True`` for a prefix that is not DICOM (nothing to read)."""
    if not _looks_like_dicom(prefix[:_HEAD_BYTES]):
        return True
    stream = io.BytesIO(prefix)
    try:
        pydicom.dcmread(stream, stop_before_pixels=True, force=True)
    except Exception:  # a prefix cut inside an element: read more
        return False
    return stream.tell() + 16 < len(prefix)


def _gunzip_dicom(
    handle: BinaryIO,
    path: Path,
    *,
    headers_only: bool,
    lead: bytes = b"",
    raw_deflate: bool = False,
) -> tuple[bytes, int]:
    """A gzip-compressed file (or, with ``raw_deflate``, the deflated data set of a DICOM file that
    follows the bytes ``lead``), decompressed without trusting it.

    The header is decompressed first (growing prefixes) and the image size it declares checked
    against the limit; the rest is decompressed only up to what the header declares (plus 1 MB for
    trailing elements), so a bomb never gets further than a real file of the declared size would.
    Headers only: the rest is counted, never kept.

    Returns
    -------
    bytes, int
        The decompressed bytes kept (all, or the header only) and the full decompressed size.
    """
    where = str(path)
    chunks = gunzip_chunks(handle, where=where, raw_deflate=raw_deflate)
    prefix = bytearray(lead)
    want = _GZ_PREFIX_BYTES
    for chunk in chunks:
        prefix += chunk
        if len(prefix) >= want:
            if _header_complete(bytes(prefix)):
                break
            want = 2 * len(prefix)
    if not _looks_like_dicom(bytes(prefix[:_HEAD_BYTES])):
        return bytes(prefix), len(prefix)  # not DICOM: the rest is never decompressed
    header = io.BytesIO(bytes(prefix))
    dataset = _parse(header, path, stop_before_pixels=True)
    if not _is_image_storage(dataset):  # skipped by the caller: no need to read on
        return bytes(prefix), len(prefix)
    n_bytes, what = _declared_pixel_bytes(dataset)
    check_image_bytes(n_bytes, where=where, what=what)
    allowed = header.tell() + n_bytes + _GZ_SLACK_BYTES
    kept = len(prefix)
    size = len(prefix)
    for chunk in chunks:
        size += len(chunk)
        if size > allowed:
            raise DecompressionLimitError(
                f"{path}: expands beyond the {allowed} bytes its DICOM header accounts for (a "
                "damaged file or a decompression bomb); export the series again"
            )
        if not headers_only:
            prefix += chunk
    return bytes(prefix[:kept] if headers_only else prefix), size


def _deflated_lead(path: Path) -> tuple[bytes, int] | None:
    """For a file in the Deflated Explicit VR Little Endian transfer syntax: ``(lead, offset)``, where
    ``lead`` is a preamble and a file meta that says Explicit VR Little Endian, and ``offset`` where
    the deflated data set starts in the file; ``None`` for any other file.

    pydicom inflates such a data set whole and unbounded; leukotrack inflates it in capped chunks
    (:func:`_gunzip_dicom`) behind the rewritten meta, which describes the inflated bytes exactly.
    """
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:  # no readable file meta: pydicom's own reading reports what is wrong
        return None
    syntax = meta.get("TransferSyntaxUID")
    group_length = meta.get("FileMetaInformationGroupLength")
    if syntax is None or not syntax.is_deflated or group_length is None:
        return None
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    buffer = DicomBytesIO()
    buffer.write(bytes(128) + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue(), 132 + 12 + int(group_length)


@contextlib.contextmanager
def _open_dicom(path: Path, *, headers_only: bool) -> Iterator[tuple[BinaryIO, int] | None]:
    """The file as a readable stream with its size (gzip: see :func:`_gunzip_dicom`), or ``None``
    when it is not DICOM. Only the first bytes of a non-DICOM file are ever read."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
        if head[:2] == _GZIP_MAGIC:
            handle.seek(0)
            kept, size = _gunzip_dicom(handle, path, headers_only=headers_only)
            if _cut_preamble(kept[:_HEAD_BYTES], path):
                raise _truncated(path, size)
            yield (io.BytesIO(kept), size) if _looks_like_dicom(kept[:_HEAD_BYTES]) else None
            return
        if _cut_preamble(head, path):
            raise _truncated(path, len(head))
        if (
            head[128:132] == b"DICM"
            and _DEFLATED_UID in head + handle.read(_META_PEEK_BYTES)
            and (deflated := _deflated_lead(path)) is not None
        ):
            lead, offset = deflated
            handle.seek(offset)
            kept, size = _gunzip_dicom(
                handle, path, headers_only=headers_only, lead=lead, raw_deflate=True
            )
            yield io.BytesIO(kept), size
            return
        if not head:
            log.warning("%s: empty file skipped (if it was a DICOM image, copy it again)", path)
        if not _looks_like_dicom(head):
            yield None
            return
        handle.seek(0)
        yield handle, os.fstat(handle.fileno()).st_size


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
    with _open_dicom(path, headers_only=headers_only) as source:
        if source is None:
            log.debug("skipped %s: not a DICOM file", path)
            return None
        stream, size = source
        dataset = _parse(stream, path, stop_before_pixels=True)
        # pydicom stops quietly at the end of a cut file; an image object must reach its pixel data.
        image = _is_image_storage(dataset)
        if stream.tell() >= size and (image or not _has_content(dataset)):
            raise TruncatedFileError(
                f"{path}: the file ends after {size} bytes, before its pixel data: it is "
                "truncated (an interrupted export or copy); copy the series again from PACS"
            )
        if image:
            _check_declared_size(dataset, path, size - stream.tell())
        if image and not headers_only:
            stream.seek(0)
            dataset = _parse(stream, path, stop_before_pixels=False)
            if "PixelData" not in dataset:
                raise TruncatedFileError(
                    f"{path}: the file ends after {size} bytes, before its pixel data: it is "
                    "truncated (an interrupted export or copy); copy the series again from PACS"
                )
            _check_pixel_length(dataset, path)
    dataset.filename = str(path)
    return dataset


def _parse(stream: BinaryIO, path: Path, *, stop_before_pixels: bool) -> FileDataset:
    try:
        return pydicom.dcmread(stream, stop_before_pixels=stop_before_pixels, force=True)
    except (EOFError, OSError, ValueError, KeyError, InvalidDicomError, OverflowError) as error:
        if _looks_truncated(error):
            raise TruncatedFileError(
                f"{path}: the file ends early ({error}); the export or copy was interrupted: "
                "copy the series again from PACS"
            ) from error
        raise DicomReadError(f"{path}: not readable as DICOM ({error})") from error


def _has_content(dataset: Dataset) -> bool:
    """Whether a data set holds anything beyond its file meta (a cut file may hold nothing)."""
    return any(element.tag.group != 0x0002 for element in dataset)


def _header_int(dataset: Dataset, keyword: str, default: int) -> int:
    value = dataset.get(keyword, default)
    try:
        return default if value in (None, "") else int(value)
    except (TypeError, ValueError) as error:
        raise DicomReadError(
            f"{dataset.get('filename', '?')}: {keyword} {value!r} is not a whole number; the header "
            "is damaged: export the series again"
        ) from error


def _declared_pixel_bytes(dataset: Dataset) -> tuple[int, str]:
    """The voxel data an image header declares (bytes, and how: Rows x Columns x frames x
    samples x bits)."""
    rows = _header_int(dataset, "Rows", 0)
    columns = _header_int(dataset, "Columns", 0)
    frames = max(_header_int(dataset, "NumberOfFrames", 1), 1)
    samples = max(_header_int(dataset, "SamplesPerPixel", 1), 1)
    bits = max(_header_int(dataset, "BitsAllocated", 16), 1)
    n_bytes = (rows * columns * frames * samples * bits + 7) // 8
    what = f"{rows}x{columns}x{frames} pixels" + (f" x {samples} samples" if samples > 1 else "")
    return n_bytes, f"{what} of {bits} bits"


def _check_declared_size(dataset: Dataset, path: Path, remaining: int) -> None:
    """Refuse an image whose header declares more voxel data than the limit, or (uncompressed
    transfer syntax) more than the file still holds, before the pixel data are read."""
    n_bytes, what = _declared_pixel_bytes(dataset)
    check_image_bytes(n_bytes, where=str(path), what=what)
    syntax = dataset.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian)
    if syntax.is_compressed or syntax.is_deflated:
        return
    if remaining < n_bytes:
        raise TruncatedFileError(
            f"{path}: the header describes {n_bytes} bytes of pixel data ({what}) but only "
            f"{remaining} bytes follow: the file is truncated; copy the series again from PACS"
        )


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
