"""PACS/CD-style export tree: DICOMDIR plus ``PTxxxxxx/STxxxxxx/SExxxxxx/IMxxxxxx`` files.

Most objects are written through :class:`pydicom.fileset.FileSet`, which also writes the
DICOMDIR. Series marked for gzip are written afterwards as ``*.dcm.gz`` files in a further
series folder of their study, so (like files added to an export by hand) the DICOMDIR does not
list them. A plain-text export note is added at the top of the tree.
"""

from __future__ import annotations

import gzip
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.fileset import FileSet
from pydicom.uid import UID

from synthetic.dicom_writer import make_uid


@dataclass
class ExportSeries:
    """Datasets of one series and how to store them."""

    study_uid: str
    series_uid: str
    datasets: list[Dataset]
    gzip: bool = False


@dataclass
class ExportedSeries:
    """Where a series ended up (paths relative to the case folder)."""

    series_uid: str
    files: list[str]


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_export(
    dicom_dir: Path, series: list[ExportSeries], seed: int, case_id: str, note: str
) -> dict[str, ExportedSeries]:
    """Write all series below ``dicom_dir`` with a DICOMDIR.

    Parameters
    ----------
    dicom_dir : pathlib.Path
        Target folder (``<case>/DICOM``); replaced if it exists.
    series : list of ExportSeries
        Everything to write, in study then series order.
    seed, case_id : int, str
        For the deterministic File-set UID.
    note : str
        Content of the plain-text file ``DICOM/EXPORT.TXT``.

    Returns
    -------
    dict of str to ExportedSeries
        Keyed by SeriesInstanceUID, with file paths relative to ``dicom_dir.parent``.
    """
    if dicom_dir.exists():
        shutil.rmtree(dicom_dir)
    fs = FileSet()
    fs.ID = case_id.upper()[:16]
    fs.UID = UID(make_uid(seed, case_id, "fileset"))
    for s in series:
        if not s.gzip:
            for ds in s.datasets:
                fs.add(ds)
    dicom_dir.parent.mkdir(parents=True, exist_ok=True)
    fs.write(dicom_dir)
    paths = {inst.SOPInstanceUID: Path(inst.path) for inst in fs}
    out: dict[str, ExportedSeries] = {}
    study_dirs: dict[str, Path] = {}
    for s in series:
        if s.gzip:
            continue
        files = []
        for ds in s.datasets:
            path = paths[ds.SOPInstanceUID]
            files.append(str(path.relative_to(dicom_dir.parent)))
            study_dirs.setdefault(s.study_uid, path.parent.parent)
        out[s.series_uid] = ExportedSeries(s.series_uid, files)
    for s in series:
        if not s.gzip:
            continue
        study_dir = study_dirs[s.study_uid]
        existing = sorted(p.name for p in study_dir.iterdir() if p.is_dir())
        index = len(existing)
        series_dir = study_dir / f"SE{index:06d}"
        series_dir.mkdir(parents=True)
        files = []
        for n, ds in enumerate(s.datasets):
            path = series_dir / f"IM{n:06d}.dcm.gz"
            path.write_bytes(gzip.compress(_bytes(ds), compresslevel=9, mtime=0))
            files.append(str(path.relative_to(dicom_dir.parent)))
        out[s.series_uid] = ExportedSeries(s.series_uid, files)
    (dicom_dir / "EXPORT.TXT").write_text(note)
    return out
