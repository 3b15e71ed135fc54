"""Unexpected errors: one line for the user, the full traceback in a debug log file.

The command line and the dashboard never show a Python traceback. A named error of the layers (any
class of ``imaging.errors``, ``clinical.errors``, ``followup.errors`` or ``safeio.errors`` and its
subclasses, wherever they are defined) already says what is wrong and what to do; anything else is a fault
of leukotrack, shown as one line naming the error and the log file that holds the details.

The log folder is ``$LEUKOTRACK_LOG_DIR``, else ``$XDG_CACHE_HOME/leukotrack/logs``, else
``~/.cache/leukotrack/logs``; when none of them can be written, the system's temporary folder.
"""

from __future__ import annotations

import errno
import os
import platform
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from safeio import DiskFullError, OutputError, OutputNotWritableError, output_error

__all__ = [
    "LOG_DIR_ENV",
    "NAMED_ERROR_MODULES",
    "describe",
    "is_named",
    "log_dir",
    "write_debug_log",
]

_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
#: Environment variable naming the folder of the debug logs.
LOG_DIR_ENV = "LEUKOTRACK_LOG_DIR"


def log_dir() -> Path:
    """Where debug logs go (see the module's documentation)."""
    configured = os.environ.get(LOG_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "leukotrack" / "logs"


def write_debug_log(error: BaseException, context: str = "") -> Path | None:
    """Write ``error`` with its full traceback to a new log file; return its path (None when no
    folder could be written)."""
    from followup.analyze import software_version

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = "".join(
        [
            f"leukotrack {software_version()} on Python {platform.python_version()} "
            f"({platform.platform()})\n",
            f"time: {stamp}\ncommand: {' '.join(sys.argv)}\n",
            f"context: {context}\n\n" if context else "\n",
            *traceback.format_exception(error),
        ]
    )
    for folder in (log_dir(), Path(tempfile.gettempdir()) / "leukotrack-logs"):
        path = folder / f"leukotrack-{stamp}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            continue
        return path
    return None


#: The modules of leukotrack's named errors: an error whose class (or a base) is defined in one of
#: them already says what is wrong and what to do.
NAMED_ERROR_MODULES = ("imaging.errors", "clinical.errors", "followup.errors", "safeio.errors")


def is_named(error: BaseException) -> bool:
    """Whether ``error`` is one of leukotrack's named errors (see ``NAMED_ERROR_MODULES``)."""
    return any(cls.__module__ in NAMED_ERROR_MODULES for cls in type(error).__mro__)


def _database_problem(error: BaseException) -> OutputError | None:
    """A full or read-only disk met by the store's database (SQLite says so in words)."""
    text = str(getattr(error, "orig", None) or error)
    if "database or disk is full" in text:
        return DiskFullError(
            f"the results store: {text}; free some space or use another output folder, then run "
            "again (the store keeps the state before this run)"
        )
    if "disk I/O error" in text:
        return OutputNotWritableError(
            f"the results store: {text}; the disk is full, read-only or failing. Free some space "
            "or use another output folder, then run again (the store keeps the state before this run)"
        )
    if "readonly database" in text or "unable to open database file" in text:
        return OutputNotWritableError(
            f"the results store: {text}; choose an output folder you may write to (--out), or a "
            "database with --database"
        )
    return None


def describe(error: BaseException, context: str = "") -> tuple[str, Path | None]:
    """One line for the user about ``error``, and the debug log written for it (None for named
    errors, which need no log).

    Named errors keep their message. A full or read-only disk and a denied write become the named
    :mod:`safeio` errors. Anything else is written to a debug log, and the line names the error, what
    to do, and the log.
    """
    if is_named(error):
        return f"{type(error).__name__}: {error}", None
    if isinstance(error, OSError):
        named = output_error(error) if error.errno in _DISK else None
        if named is not None:
            return f"{type(named).__name__}: {named}", None
        if isinstance(error, FileNotFoundError | FileExistsError | NotADirectoryError):
            return f"{type(error).__name__}: {error}", None
        if error.errno in (errno.EACCES, errno.EPERM):
            return (
                f"PermissionError: {error.filename or error}: permission denied; fix the "
                "permissions of this path or choose another one",
                None,
            )
    database = _database_problem(error)
    if database is not None:
        return f"{type(database).__name__}: {database}", None
    if isinstance(error, EOFError):
        advice = "an input file ends early (cut while copying?); copy it again and re-run"
    elif isinstance(error, MemoryError):
        advice = "out of memory; close other programs, or analyse on a computer with more memory"
    else:
        advice = "this is a fault in leukotrack, not a problem it recognised in your data"
    log = write_debug_log(error, context)
    where = f"details in {log}" if log else "no debug log could be written (no writable folder)"
    message = str(error).splitlines()[0] if str(error) else ""
    return f"unexpected {type(error).__name__}: {message} - {advice}; {where}", log
