"""Walking a case folder: one rule for the loaders and the input fingerprint.

Symlinked folders and files are followed (a study or a session folder linked in from elsewhere is
part of the case); each real folder is entered once, so a symlink loop ends instead of recursing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["walk_files"]

log = logging.getLogger(__name__)


def walk_files(root: Path, *, skip_hidden: bool = True) -> list[Path]:
    """Every regular file below ``root`` (or ``root`` itself when it is a file), sorted.

    Parameters
    ----------
    root : Path
        A folder or a file.
    skip_hidden : bool
        Leave out files and folders whose name starts with a dot (below ``root``).

    Returns
    -------
    list of Path
        Paths as reached from ``root`` (through the symlinks, not resolved), in sorted order.
        A folder reached twice (a loop, or two links to one folder) is read once, at the first path.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        stat = Path(folder).stat()
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            log.debug("skipped %s: a folder already read (symlink loop or second link)", folder)
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not (skip_hidden and d.startswith(".")))
        for name in filenames:
            if skip_hidden and name.startswith("."):
                continue
            path = Path(folder) / name
            if path.is_file():  # follows a symlinked file; a broken link is not a file
                found.append(path)
            else:
                log.debug("skipped %s: not a regular file (a broken link?)", path)
    return sorted(found)
