"""Resource limits of the loaders: the largest image and the largest decompressed file.

Both are checked *before* memory is allocated: an image's declared size (DICOM Rows x Columns x frames
x bits, NIfTI dims x datatype) against :func:`max_image_bytes`, and a gzip stream is decompressed in
chunks and stopped at :func:`max_decompressed_bytes`. So a 4 MB decompression bomb or a header that
declares 30000^3 voxels ends in a named error instead of gigabytes of memory.

Environment variables (megabytes, 1 MB = 2^20 bytes):

``LEUKOTRACK_MAX_IMAGE_MB``
    Largest voxel data of one image (one DICOM file, one DICOM series or one NIfTI file), as stored.
    Default :data:`DEFAULT_MAX_IMAGE_MB`.
``LEUKOTRACK_MAX_DECOMPRESSED_MB``
    Largest size a gzip-compressed file (``.dcm.gz``) may expand to. Default
    :data:`DEFAULT_MAX_DECOMPRESSED_MB`.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from imaging.errors import (
    DecompressionLimitError,
    ImageTooLargeError,
    ImagingError,
    NiftiLayoutError,
    TruncatedFileError,
)

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_MB",
    "DEFAULT_MAX_IMAGE_MB",
    "MAX_DECOMPRESSED_ENV",
    "MAX_IMAGE_ENV",
    "MAX_TEXT_BYTES",
    "check_image_bytes",
    "gunzip_capped",
    "gunzip_chunks",
    "max_decompressed_bytes",
    "max_image_bytes",
    "read_small_file",
]

#: Default largest image (MB of stored voxel data): a 512 x 512 x 400 x 10 int16 series fits.
DEFAULT_MAX_IMAGE_MB = 2048
#: Default largest expansion of one gzip-compressed file (MB).
DEFAULT_MAX_DECOMPRESSED_MB = 2048
MAX_IMAGE_ENV = "LEUKOTRACK_MAX_IMAGE_MB"
MAX_DECOMPRESSED_ENV = "LEUKOTRACK_MAX_DECOMPRESSED_MB"

#: Largest sidecar, .bval or sessions.tsv read (bytes): real ones are a few KB.
MAX_TEXT_BYTES = 16 << 20

_MB = 1 << 20
_CHUNK = 1 << 20


def read_small_file(path: Path, *, what: str) -> bytes:
    """The bytes of a small text file (a JSON sidecar, a ``.bval``, a ``sessions.tsv``), refusing one
    larger than :data:`MAX_TEXT_BYTES` without reading it.

    Raises
    ------
    NiftiLayoutError
        When the file is larger than the limit (a wrong or damaged file).
    """
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise NiftiLayoutError(
            f"{path}: {size / _MB:,.0f} MB is far too large for a {what} (at most "
            f"{MAX_TEXT_BYTES / _MB:.0f} MB); it is a wrong or damaged file: replace it"
        )
    return path.read_bytes()


def _limit_mb(name: str, default: int) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return float(default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ImagingError(
            f"{name}={text!r} is not a positive number of megabytes; set it to e.g. {default} "
            "or unset it"
        )
    return value


def max_image_bytes() -> int:
    """The largest voxel data of one image, in bytes (``$LEUKOTRACK_MAX_IMAGE_MB``)."""
    return int(_limit_mb(MAX_IMAGE_ENV, DEFAULT_MAX_IMAGE_MB) * _MB)


def max_decompressed_bytes() -> int:
    """The largest expansion of one gzip-compressed file, in bytes
    (``$LEUKOTRACK_MAX_DECOMPRESSED_MB``)."""
    return int(_limit_mb(MAX_DECOMPRESSED_ENV, DEFAULT_MAX_DECOMPRESSED_MB) * _MB)


def check_image_bytes(n_bytes: int, *, where: str, what: str) -> None:
    """Raise :class:`ImageTooLargeError` when ``n_bytes`` of voxel data exceed the image limit.

    Parameters
    ----------
    n_bytes : int
        The declared size of the voxel data (bytes).
    where : str
        The file or series, for the message.
    what : str
        How the size was declared, e.g. ``"512x512x30000 voxels of 16 bits"``.
    """
    limit = max_image_bytes()
    if n_bytes > limit:
        raise ImageTooLargeError(
            f"{where}: the header declares {what} = {n_bytes / _MB:,.0f} MB of voxel data, more "
            f"than the limit of {limit / _MB:,.0f} MB. If this is a real image, raise the limit "
            f"with the environment variable {MAX_IMAGE_ENV} (megabytes); otherwise the header is "
            "damaged: export the series again"
        )


def gunzip_chunks(handle: BinaryIO, *, where: str, raw_deflate: bool = False) -> Iterator[bytes]:
    """Decompress a gzip stream chunk by chunk (about 1 MB each), stopping at
    :func:`max_decompressed_bytes`; a caller that stops iterating reads no further.

    ``raw_deflate``: the stream is one raw deflate stream (no gzip container, as in DICOM's Deflated
    Explicit VR Little Endian), and anything after its end is ignored.

    Raises
    ------
    DecompressionLimitError
        When the output would exceed the cap (nothing beyond the cap is ever produced).
    TruncatedFileError
        When the stream is damaged or ends early.
    """
    cap = max_decompressed_bytes()
    total = 0
    wbits = -zlib.MAX_WBITS if raw_deflate else 31  # 31: the gzip container
    decompressor = zlib.decompressobj(wbits=wbits)
    pending = False  # the current gzip member has started but not ended
    while chunk := handle.read(_CHUNK):
        while chunk:
            pending = True
            try:
                out = decompressor.decompress(chunk, min(_CHUNK, cap + 1 - total))
            except zlib.error as error:
                raise TruncatedFileError(
                    f"{where}: gzip-compressed file is damaged ({error}); export it again"
                ) from error
            total += len(out)
            if total > cap:
                raise DecompressionLimitError(
                    f"{where}: expands to more than {cap / _MB:,.0f} MB when decompressed (a "
                    "damaged file or a decompression bomb). If it is a real image, raise the cap "
                    f"with the environment variable {MAX_DECOMPRESSED_ENV} (megabytes)"
                )
            if out:
                yield out
            chunk = decompressor.unconsumed_tail
            if decompressor.eof and raw_deflate:
                return
            if decompressor.eof:  # a further gzip member may follow
                chunk, pending = decompressor.unused_data, False
                decompressor = zlib.decompressobj(wbits=wbits)
    if pending:
        raise TruncatedFileError(
            f"{where}: gzip-compressed file ends early (after {total} decompressed bytes); the "
            "export or copy was interrupted: export it again"
        )


def gunzip_capped(handle: BinaryIO, *, where: str) -> bytes:
    """The whole decompressed content of a gzip stream, capped (see :func:`gunzip_chunks`)."""
    return b"".join(gunzip_chunks(handle, where=where))
