"""Atomic writes: one helper for every file and folder leukotrack writes.

Everything is first written under a hidden temporary name beside its target (same file system, so the
final rename is atomic) and renamed into place only when complete: a failure, a full disk or a killed
process never leaves a partial output, and an earlier result stays as it was.

Temporaries are marked as leukotrack's by their name (``.<name>.leukotrack-tmp-<token>``) and locked
(``flock``) by the process writing them while it runs. The lock dies with the process, so the next
write beside the same target removes the temporaries of killed runs and nothing of a running one
(:func:`clean_stale`).

A folder written by :func:`atomic_folder` records what leukotrack wrote in it (``MANIFEST_NAME``).
Replacing it replaces only those files: any other file in it (the user's own notes, a spreadsheet)
is kept in the new folder, and a file of the user's that a new output would replace is refused with
:class:`~safeio.errors.ForeignFilesError` before anything changes.

Plain ``open``/``os.rename`` would do for one file; the hand-written parts are the markers, the
manifest and the clean-up of killed runs, which no maintained library covers (``atomicwrites`` is
archived and handles single files only).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from safeio.errors import ForeignFilesError, OutputIsFolderError, output_error

__all__ = [
    "MANIFEST_NAME",
    "atomic_file",
    "atomic_files",
    "atomic_folder",
    "clean_stale",
    "read_manifest",
    "writable_folder",
    "write_bytes",
    "write_text",
]

#: The list of files leukotrack wrote into a folder (JSON), kept in that folder.
MANIFEST_NAME = ".leukotrack-manifest.json"
_TMP, _OLD = ".leukotrack-tmp-", ".leukotrack-old-"
#: The lock file inside a temporary folder (held by the writing process).
_LOCK_NAME = ".leukotrack-lock"
_OURS = {MANIFEST_NAME, _LOCK_NAME}


def _token() -> str:
    return secrets.token_hex(6)


def _ending(name: str) -> str:
    """The file ending a writer may look at (``.nii.gz``, ``.pdf``), kept on the temporary."""
    for ending in (".nii.gz", ".tar.gz"):
        if name.endswith(ending):
            return ending
    return Path(name).suffix


@contextlib.contextmanager
def _translated(place: Path) -> Iterator[None]:
    """Turn a full disk, a read-only disk or a denied write under ``place`` into a named error."""
    try:
        yield
    except OSError as error:
        named = output_error(error, place)
        if named is None:
            raise
        raise named from error


def _is_locked(path: Path) -> bool:
    """Whether a running process holds the lock of the temporary ``path``."""
    lock = path / _LOCK_NAME if path.is_dir() else path
    try:
        handle = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return path.is_dir()  # a folder that has no lock file yet is being created right now
    except OSError:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(handle)  # closing releases a lock this probe took
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(parent: Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries that killed leukotrack runs left in ``parent`` (for the target
    ``name``, or for every target); return what was removed or restored.

    A temporary whose writer still runs (its lock is held) is left alone. A replaced folder that a
    run killed between its two renames left hidden is renamed back when its target is missing.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    pattern = f".{glob.escape(name) if name else '*'}."
    touched = []
    for path in sorted(parent.glob(f"{pattern}{_TMP[1:]}*")):
        if not _is_locked(path):
            _remove(path)
            touched.append(path)
    for path in sorted(parent.glob(f"{pattern}{_OLD[1:]}*")):
        stem, token = path.name[1:].rsplit(_OLD, 1)
        if (parent / f".{stem}{_TMP}{token}").exists():
            continue  # its writer is between the two renames (a dead one was removed above)
        target = parent / stem
        if target.exists() or target.is_symlink():
            _remove(path)
        else:
            path.rename(target)
        touched.append(path)
    return touched


def _new_file(parent: Path, name: str) -> tuple[Path, int]:
    """A new, locked temporary file for the target ``parent/name`` (mode as for a normal file)."""
    while True:
        path = parent / f".{name}{_TMP}{_token()}{_ending(name)}"
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        fcntl.flock(handle, fcntl.LOCK_EX)
        return path, handle


def _exists(target: Path) -> ForeignFilesError:
    return ForeignFilesError(f"{target} exists and is not replaced; choose a new name")


def _check_file_target(target: Path) -> None:
    if target.is_dir():
        raise OutputIsFolderError(
            f"{target} is a folder; give the path of a file to write (e.g. {target / 'report.pdf'})"
        )


@contextlib.contextmanager
def atomic_files(*targets: Path, overwrite: bool = True) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; rename them into place only if the block succeeds.

    The temporaries keep the targets' endings (``.nii.gz``), so writers that look at the name work
    on them. On any error they are removed and no target is touched. Full or read-only disks raise
    :class:`~safeio.errors.OutputError` subclasses. ``overwrite=False`` never replaces an existing
    file (:class:`~safeio.errors.ForeignFilesError`, checked before writing and, by linking instead
    of renaming, again at the end: a file that appeared meanwhile is kept too).
    """
    targets = tuple(Path(t) for t in targets)
    temporaries: list[Path] = []
    handles: list[int] = []
    try:
        with _translated(targets[0].parent if targets else Path.cwd()):
            for target in targets:
                _check_file_target(target)
                if not overwrite and (target.exists() or target.is_symlink()):
                    raise _exists(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                clean_stale(target.parent, target.name)
                path, handle = _new_file(target.parent, target.name)
                temporaries.append(path)
                handles.append(handle)
            yield temporaries
            placed: list[Path] = []
            for temporary, target in zip(temporaries, targets, strict=True):
                if overwrite:
                    temporary.replace(target)
                    continue
                try:
                    os.link(temporary, target)  # fails, atomically, if the target exists
                except FileExistsError:
                    for path in placed:  # all or nothing
                        path.unlink(missing_ok=True)
                    raise _exists(target) from None
                placed.append(target)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        for handle in handles:
            os.close(handle)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path for ``target``, renamed into place if the block succeeds."""
    with atomic_files(target) as (temporary,):
        yield temporary


def write_bytes(target: Path, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``target`` atomically (``overwrite=False``: never replacing a file, see
    :func:`atomic_files`); return ``target``."""
    with atomic_files(target, overwrite=overwrite) as (temporary,), temporary.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    return Path(target)


def write_text(target: Path, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; return ``target``."""
    return write_bytes(target, text.encode("utf-8"), overwrite=overwrite)


def writable_folder(folder: Path) -> Path:
    """Create ``folder`` if needed and check that files can be written in it (by writing and
    removing a marked temporary); return it.

    Raises
    ------
    OutputNotWritableError, DiskFullError
        When the folder cannot be made or written (read-only, forbidden, full).
    """
    folder = Path(folder)
    with _translated(folder.parent):
        folder.mkdir(parents=True, exist_ok=True)
        path, handle = _new_file(folder, ".probe")
        try:
            os.write(handle, b"leukotrack")
            os.fsync(handle)
        finally:
            os.close(handle)
            path.unlink(missing_ok=True)
    return folder


def _files(folder: Path) -> set[str]:
    """Relative POSIX paths of the files (and symbolic links) below ``folder``."""
    found = set()
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        links = [d for d in dirs if (here / d).is_symlink()]
        for name in [*names, *links]:
            found.add((here / name).relative_to(folder).as_posix())
    return found


def read_manifest(folder: Path) -> set[str] | None:
    """The files leukotrack wrote into ``folder`` (relative POSIX paths); None when it has no
    readable manifest."""
    try:
        content = json.loads((Path(folder) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    files = content.get("files") if isinstance(content, dict) else None
    if not isinstance(files, list):
        return None
    return {str(f) for f in files}


def _write_manifest(folder: Path, files: set[str]) -> None:
    content = {"written_by": "leukotrack", "files": sorted(files)}
    (folder / MANIFEST_NAME).write_text(json.dumps(content, indent=1) + "\n")


def _carry_foreign(target: Path, work: Path, written: set[str], adopt_marker: str | None) -> None:
    """Link the files of ``target`` that leukotrack did not write into ``work`` (the new folder).

    Raises ForeignFilesError, before anything changed, when ``target`` is not leukotrack's or when
    a new output would replace a file leukotrack did not write.
    """
    manifest = read_manifest(target)
    existing = _files(target) - _OURS
    if manifest is None:
        if adopt_marker is None or not (target / adopt_marker).is_file():
            raise ForeignFilesError(
                f"{target} exists and was not written by leukotrack; move it away or choose "
                "another output folder (nothing was changed)"
            )
        ours = existing & written  # written by a leukotrack without manifest: what it writes now
    else:
        ours = manifest
    foreign = existing - ours
    prefixes = {p.as_posix() for w in written for p in Path(w).parents}
    clashes = sorted(f for f in foreign if f in written or f in prefixes)
    if clashes:
        shown = ", ".join(clashes[:5]) + (
            f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        )
        raise ForeignFilesError(
            f"{target}: the new results would replace files leukotrack did not write ({shown}); "
            "move them out of the folder and run again (nothing was changed)"
        )
    for relative in sorted(foreign):
        source, copy = target / relative, work / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, copy, follow_symlinks=False)  # same file, no copy of its bytes
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            shutil.copy2(source, copy, follow_symlinks=False)


def _new_folder(parent: Path, name: str) -> tuple[Path, int]:
    while True:
        token = _token()
        path = parent / f".{name}{_TMP}{token}"
        try:
            path.mkdir(0o777)
        except FileExistsError:
            continue
        handle = os.open(path / _LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        return path, handle


@contextlib.contextmanager
def atomic_folder(
    target: Path, *, replace: bool = True, manifest: bool = True, adopt_marker: str | None = None
) -> Iterator[Path]:
    """Yield a new temporary folder; it becomes ``target`` when the block succeeds.

    Parameters
    ----------
    target : Path
        The folder to write.
    replace : bool
        Replace an existing ``target`` (only the files leukotrack wrote in it; the others are kept).
        False refuses an existing ``target`` with :class:`~safeio.errors.ForeignFilesError`.
    manifest : bool
        Record the files written in ``target/MANIFEST_NAME``.
    adopt_marker : str, optional
        A file whose presence shows that an older leukotrack (one without manifests) wrote an
        existing ``target`` (e.g. ``provenance.json``); its files that the new folder writes again
        are then replaced, the rest kept.

    Raises
    ------
    ForeignFilesError
        ``target`` exists and is not leukotrack's, or the new folder would replace files that
        leukotrack did not write. Nothing is changed then.
    DiskFullError, OutputNotWritableError
        On a full or read-only disk; no partial folder is left.
    """
    target = Path(target)
    parent = target.parent
    with _translated(parent):
        parent.mkdir(parents=True, exist_ok=True)
        clean_stale(parent, target.name)
        if (target.exists() or target.is_symlink()) and (not replace or not target.is_dir()):
            raise ForeignFilesError(
                f"{target} exists; choose a new {'folder' if target.is_dir() else 'name'} "
                "(leukotrack does not overwrite it)"
            )
        work, handle = _new_folder(parent, target.name)
    try:
        with _translated(parent):
            yield work
            written = _files(work) - _OURS
            if manifest:
                _write_manifest(work, written)
            if target.exists():
                _carry_foreign(target, work, written, adopt_marker)
                old = parent / f".{target.name}{_OLD}{work.name.rsplit(_TMP, 1)[1]}"
                target.rename(old)
                work.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                work.rename(target)
            (target / _LOCK_NAME).unlink(missing_ok=True)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
        os.close(handle)
