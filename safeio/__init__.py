"""Safe output writing for every layer: atomic files and folders, nothing overwritten or deleted that
leukotrack did not write, stale temporaries of killed runs cleaned, and disk errors as named errors.

A neutral low-level package: it imports nothing of leukotrack, and imaging, clinical and followup may
all use it (tests/test_layering.py).
"""

from safeio.atomic import (
    MANIFEST_NAME,
    atomic_file,
    atomic_files,
    atomic_folder,
    clean_stale,
    read_manifest,
    writable_folder,
    write_bytes,
    write_text,
)
from safeio.errors import (
    DiskFullError,
    ForeignFilesError,
    OutputError,
    OutputIsFolderError,
    OutputNotWritableError,
    output_error,
)

__all__ = [
    "MANIFEST_NAME",
    "DiskFullError",
    "ForeignFilesError",
    "OutputError",
    "OutputIsFolderError",
    "OutputNotWritableError",
    "atomic_file",
    "atomic_files",
    "atomic_folder",
    "clean_stale",
    "output_error",
    "read_manifest",
    "writable_folder",
    "write_bytes",
    "write_text",
]
