"""Hostile and odd inputs for the image loader and the case folder (issue 14), generated small.

Each function writes one input under the folder it is given and returns what the test needs. The
DICOM files are real (pydicom, through :mod:`tests.dicom_factory`); the bombs and huge headers are
built so that they stay a few MB on disk: multi-member gzip streams (each member 1 MB of zeros) and
headers that declare more than the file holds.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from imaging.image import MRImage
from imaging.nifti import save_nifti
from tests.dicom_factory import Phantom, base_dataset, phantom_volume

__all__ = [
    "FLAIR_HEADERS",
    "MIXED_PATIENT_IDS",
    "bids_case",
    "cut_edge_slice",
    "deflate_bomb",
    "deflated_series",
    "dicom_gz_bomb",
    "flair_phantom",
    "flair_with_missing_slice",
    "huge_declared_dicom",
    "huge_declared_nifti",
    "mixed_patients_dicom",
    "nifti_gz_bomb",
    "rescale_slope",
    "sparse_stray_file",
    "symlinked_study",
    "truncate",
]

#: Headers that classify a phantom as FLAIR (inversion recovery, TI 2500 ms, TE 90 ms).
FLAIR_HEADERS: dict[str, Any] = {
    "ScanningSequence": "SE\\IR",
    "InversionTime": "2500",
    "EchoTime": "90",
    "RepetitionTime": "9000",
    "SeriesDescription": "t2_flair",
}
#: The three PatientIDs of the mixed folder the issue found (one case of three sessions).
MIXED_PATIENT_IDS = ("dicom", "999", "12343@hucheng")

_ZEROS_MB = gzip.compress(bytes(1 << 20), compresslevel=9)  # one gzip member: 1 MB of zeros


def flair_phantom(
    *,
    shape: tuple[int, int, int] = (7, 8, 9),
    study_uid: str | None = None,
    headers: dict[str, Any] | None = None,
) -> Phantom:
    """A FLAIR series (anisotropic, non-cubic) with positive distinct voxel values."""
    phantom = Phantom(
        data=phantom_volume(shape) + 1,
        headers={**FLAIR_HEADERS, **(headers or {})},
    )
    if study_uid is not None:
        phantom.study_uid = study_uid
    return phantom


def mixed_patients_dicom(root: Path, ids: tuple[str, ...] = MIXED_PATIENT_IDS) -> Path:
    """One folder holding one FLAIR study per PatientID (different names and birth dates)."""
    for k, patient_id in enumerate(ids):
        flair_phantom(
            headers={
                "PatientID": patient_id,
                "PatientName": f"DOE^PAT{k}",
                "PatientBirthDate": f"19{60 + k}0203",
                "StudyDate": f"2023031{k + 4}",
            }
        ).write(root / f"study{k}")
    return root


def flair_with_missing_slice(
    folder: Path, *, slice_index: int = 4, phantom: Phantom | None = None
) -> Path:
    """A FLAIR series (``phantom``, default :func:`flair_phantom`) whose slice ``slice_index`` (not at
    an edge) was never exported."""
    phantom = phantom or flair_phantom()
    paths = phantom.write(folder)
    for path in paths:
        if int(pydicom.dcmread(path, stop_before_pixels=True).InstanceNumber) == slice_index + 1:
            path.unlink()
    return folder


def truncate(path: Path, size: int) -> Path:
    """Cut a file to its first ``size`` bytes (an interrupted copy)."""
    data = path.read_bytes()[:size]
    path.write_bytes(data)
    return path


def cut_edge_slice(folder: Path, size: int, *, names: str = "IM{index:05d}") -> Path:
    """A FLAIR series whose first slice (an edge: no gap shows) is cut to ``size`` bytes."""
    flair_phantom().write(folder, names=names)
    for path in sorted(folder.iterdir()):
        if int(pydicom.dcmread(path, stop_before_pixels=True).InstanceNumber) == 1:
            return truncate(path, size)
    raise AssertionError("no first slice written")


def rescale_slope(folder: Path, slope: str) -> Path:
    """A FLAIR series with ``RescaleSlope`` written as ``slope`` (e.g. ``"NaN"``) in every file."""
    flair_phantom().write(folder)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds["RescaleSlope"] = pydicom.DataElement(0x00281053, "DS", slope, validation_mode=0)
        ds.RescaleIntercept = "0"
        ds.save_as(path, enforce_file_format=True)
    return folder


def _image_header_bytes(rows: int, columns: int, frames: int, pixel_bytes: int) -> bytes:
    """A DICOM MR file up to (and including) the PixelData tag and its length."""
    ds = base_dataset(generate_uid(), generate_uid())
    ds.Rows, ds.Columns = rows, columns
    ds.NumberOfFrames = frames
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    # PixelData (7FE0,0010), OW, explicit VR little endian: tag, VR, 2 reserved, 4-byte length
    return buffer.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes)


def huge_declared_dicom(path: Path, *, rows: int = 30000, frames: int = 30000) -> Path:
    """A small DICOM file whose header declares rows x rows x frames 16-bit pixels (here 54 TB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _image_header_bytes(rows, rows, frames, 0xFFFFFFFE)
    path.write_bytes(header + bytes(4096))
    return path


def dicom_gz_bomb(path: Path, *, expand_mb: int, rows: int = 64) -> Path:
    """A ``.dcm.gz`` of a few KB per 1000 MB of expansion: an honest header for a rows x rows image,
    then ``expand_mb`` gzip members of 1 MB of zeros each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rows * rows * 2
    with path.open("wb") as handle:
        handle.write(gzip.compress(_image_header_bytes(rows, rows, 1, pixels)))
        for _ in range(expand_mb):
            handle.write(_ZEROS_MB)
    return path


def deflated_series(folder: Path) -> Phantom:
    """A FLAIR series in the Deflated Explicit VR Little Endian transfer syntax (pydicom deflates)."""
    phantom = flair_phantom()
    folder.mkdir(parents=True, exist_ok=True)
    for k, ds in enumerate(phantom.slice_datasets()):
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(folder / f"IM{k:05d}", enforce_file_format=True)
    return phantom


def deflate_bomb(path: Path, *, expand_mb: int = 200, rows: int = 64) -> Path:
    """A deflated DICOM file of a rows x rows image whose deflate stream goes on with ``expand_mb``
    MB of zeros after the pixel data (a few hundred KB on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = base_dataset(generate_uid(), generate_uid())
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)  # preamble, meta, deflated data set
    meta_end = 132 + 12 + struct.unpack("<I", buffer.getvalue()[140:144])[0]
    header = _image_header_bytes(rows, rows, 1, rows * rows * 2)
    dataset = _dataset_only(header)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with path.open("wb") as handle:
        handle.write(buffer.getvalue()[:meta_end])
        handle.write(deflate.compress(dataset))
        zeros = bytes(1 << 20)
        for _ in range(expand_mb):
            handle.write(deflate.compress(zeros))
        handle.write(deflate.flush())
    return path


def _dataset_only(file_bytes: bytes) -> bytes:
    """The data set of a DICOM file written in Explicit VR Little Endian (preamble and meta cut)."""
    group_length = struct.unpack("<I", file_bytes[140:144])[0]
    return file_bytes[132 + 12 + group_length :]


def huge_declared_nifti(path: Path, *, side: int = 30000) -> Path:
    """A NIfTI (``.nii``) whose header declares side^3 float32 voxels but holds 4 KB of data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = nib.Nifti1Header()
    header.set_data_shape((side, side, side))
    header.set_data_dtype(np.float32)
    header.set_xyzt_units("mm", "sec")
    with path.open("wb") as handle:
        header.write_to(handle)
        handle.write(bytes(352 - handle.tell()) + bytes(4096))
    return path


def nifti_gz_bomb(path: Path, *, side: int = 2048, expand_mb: int = 64) -> Path:
    """A ``.nii.gz`` declaring side^3 uint8 voxels (8 GB for 2048), made of 1 MB zero members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = nib.Nifti1Header()
    header.set_data_shape((side, side, side))
    header.set_data_dtype(np.uint8)
    buffer = io.BytesIO()
    header.write_to(buffer)
    with path.open("wb") as handle:
        handle.write(gzip.compress(buffer.getvalue() + bytes(352 - buffer.tell())))
        for _ in range(expand_mb):
            handle.write(_ZEROS_MB)
    return path


def sparse_stray_file(path: Path, *, size: int = 2 << 30) -> Path:
    """A stray non-DICOM file of ``size`` bytes (sparse: it takes no disk space)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(b"NOT A DICOM FILE\n")
        handle.truncate(size)
    return path


def bids_case(
    root: Path,
    *,
    flair: np.ndarray | None = None,
    sidecars: dict[str, dict[str, Any]] | None = None,
    sessions_tsv: bytes | None = None,
) -> Path:
    """A BIDS-like NIfTI case of two FLAIR-only sessions (``ses-a``, ``ses-b``).

    ``flair`` replaces the voxels of ``ses-a``'s FLAIR; ``sidecars`` adds fields to a session's
    JSON sidecar; ``sessions_tsv`` replaces the bytes of sessions.tsv.
    """
    affine = np.diag([0.9, 0.8, 3.0, 1.0])
    for label in ("a", "b"):
        data = flair if flair is not None and label == "a" else phantom_volume((7, 8, 9)) + 1
        target = root / f"ses-{label}" / "anat" / f"sub-x_ses-{label}_FLAIR.nii.gz"
        save_nifti(MRImage(np.asarray(data), affine, sequence="FLAIR"), target)
        extra = (sidecars or {}).get(f"ses-{label}")
        if extra is not None:
            sidecar = target.with_name(target.name.replace(".nii.gz", ".json"))
            content = json.loads(sidecar.read_text())
            content.update(extra)
            sidecar.write_text(json.dumps(content))
    tsv = sessions_tsv or b"session_id\tacq_time\nses-a\t2023-03-14\nses-b\t2023-03-17\n"
    (root / "sessions.tsv").write_bytes(tsv)
    return root


def symlinked_study(case: Path, outside: Path) -> Path:
    """A DICOM case whose second study lives outside the case folder, linked in by a symlink."""
    flair_phantom(headers={"StudyDate": "20230314"}).write(case / "study1")
    flair_phantom(headers={"StudyDate": "20230320"}).write(outside / "study2")
    (case / "study2").symlink_to(outside / "study2", target_is_directory=True)
    return case
