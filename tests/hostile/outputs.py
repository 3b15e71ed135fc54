"""Damaged output folders and hostile disks for the command-line classes of issue 14.

Each function damages a real output folder written by ``leukotrack analyze`` the way a user, a
crash or a full disk would; :func:`tiny_disk` mounts a real, tiny (or read-only) file system.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "cut_file",
    "hidden_entries",
    "kill_during_write",
    "tiny_disk",
]

REPO = Path(__file__).resolve().parents[2]


def cut_file(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to the first ``keep`` of its bytes (a copy or a write that stopped halfway)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def hidden_entries(folder: Path) -> list[str]:
    """Names of the hidden files and folders directly in ``folder`` (temporaries would be)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def kill_during_write(target: Path) -> None:
    """Run a process that starts writing the folder ``target`` with leukotrack's atomic-folder
    helper and is killed with SIGKILL halfway (after a first file), as a killed ``analyze`` is."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from safeio import atomic_folder\n"
        "with atomic_folder(Path(sys.argv[1])) as work:\n"
        "    (work / 'sessions.tsv').write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == -signal.SIGKILL


@contextlib.contextmanager
def tiny_disk(folder: Path, size_kb: int = 64, *, read_only: bool = False) -> Iterator[Path]:
    """A real file system of ``size_kb`` kB (tmpfs) mounted at ``folder``, read-only if asked.

    Needs root (as in CI's container). Without it, a read-only disk falls back to a folder without
    write permission, and a full disk skips the test.
    """
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kb}k,mode=0755" + (",ro" if read_only else "")
    mounted = False
    if os.geteuid() == 0:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
    if not mounted:
        if not read_only or os.geteuid() == 0:
            pytest.skip("mounting a tiny file system needs root (CAP_SYS_ADMIN)")
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        else:
            folder.chmod(0o755)
