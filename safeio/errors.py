"""Named errors of writing outputs. Each message says which path and what to do."""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = [
    "DiskFullError",
    "ForeignFilesError",
    "OutputError",
    "OutputIsFolderError",
    "OutputNotWritableError",
    "output_error",
]


class OutputError(Exception):
    """Base class of every error raised while writing leukotrack's outputs."""


class OutputNotWritableError(OutputError):
    """The output place is read-only or not writable by this user."""


class DiskFullError(OutputError):
    """The disk (or the user's quota) is full."""


class OutputIsFolderError(OutputError):
    """A file was asked for where a folder is (e.g. ``report --out`` naming a folder)."""


class ForeignFilesError(OutputError):
    """An output would replace a file or folder that leukotrack did not write."""


_FULL = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY = {errno.EROFS}
_DENIED = {errno.EACCES, errno.EPERM}


def _under(path: str | None, place: Path) -> bool:
    if not path:
        return False
    candidate = Path(path).absolute()
    place = place.absolute()
    return candidate == place or place in candidate.parents


def output_error(error: OSError, place: Path | None = None) -> OutputError | None:
    """The named error for an ``OSError`` met while writing, or None when it is not about writing.

    Parameters
    ----------
    error : OSError
        The error raised by the operating system.
    place : Path, optional
        The folder being written to. A permission error counts as "not writable" only when it
        names a path under ``place`` (or names no path); a full or read-only disk always counts.
    """
    where: object = error.filename or place or "the output folder"
    if ".leukotrack-tmp-" in str(where):  # name the place, not leukotrack's temporary in it
        where = place or Path(str(where)).parent
    if error.errno in _FULL:
        return DiskFullError(
            f"{where}: no space left on the disk (or over quota); nothing partial was kept. Free "
            "some space or write to another disk, then run the command again"
        )
    if error.errno in _READ_ONLY:
        return OutputNotWritableError(
            f"{where}: the disk is read-only; nothing was written. Write to a folder on a "
            "writable disk instead"
        )
    if error.errno in _DENIED and (
        place is None or not error.filename or _under(error.filename, place)
    ):
        return OutputNotWritableError(
            f"{where}: permission denied; nothing was written. Choose a folder you may write to, "
            "or ask for write permission on this one"
        )
    return None
