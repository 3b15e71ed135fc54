"""Read a generated case back with pydicom and check it against its truth files.

This is an independent, minimal reader (not the product's loader): it walks every file below
``DICOM/`` (gunzipping ``*.gz``), skips DICOMDIR, presentation states and non-DICOM files,
groups images by SeriesInstanceUID, explodes enhanced multi-frame files, splits DWI series by
b-value, sorts slices along the normal, builds the RAS affine from the headers and compares
shape, values and affine with ``truth/ses-*/{flair,dwi,adc}_reference.nii.gz``.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from synthetic.geometry import LPS_FROM_RAS


@dataclass
class Frame:
    """One 2D image with its geometry (LPS) and rescaled pixel values (rows x columns)."""

    ipp: np.ndarray
    iop: np.ndarray
    spacing: tuple[float, ...]
    pixels: np.ndarray
    b_value: float | None
    instance: int


@dataclass
class SeriesRead:
    """All frames of one series."""

    uid: str
    description: str
    frames: list[Frame] = field(default_factory=list)


def _read_any(path: Path) -> pydicom.Dataset | None:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        return None


def _b_value(ds: pydicom.Dataset) -> float | None:
    if "DiffusionBValue" in ds:
        return float(ds.DiffusionBValue)
    for group, creator, elem in (
        (0x0019, "SIEMENS MR HEADER", 0x0C),
        (0x0043, "GEMS_PARM_01", 0x39),
    ):
        try:
            block = ds.private_block(group, creator)
            value = block[elem].value
        except KeyError:
            continue
        return float(value[0] if isinstance(value, list | pydicom.multival.MultiValue) else value)
    return None


def _frames(ds: pydicom.Dataset) -> list[Frame]:
    arr = ds.pixel_array
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        out = []
        for n, item in enumerate(ds.PerFrameFunctionalGroupsSequence):

            def get(seq: str, key: str, item=item):
                src = item if seq in item else shared
                return getattr(getattr(src, seq)[0], key)

            slope = float(get("PixelValueTransformationSequence", "RescaleSlope"))
            inter = float(get("PixelValueTransformationSequence", "RescaleIntercept"))
            b = None
            if "MRDiffusionSequence" in item and "DiffusionBValue" in item.MRDiffusionSequence[0]:
                b = float(item.MRDiffusionSequence[0].DiffusionBValue)
            out.append(
                Frame(
                    np.array(get("PlanePositionSequence", "ImagePositionPatient"), float),
                    np.array(get("PlaneOrientationSequence", "ImageOrientationPatient"), float),
                    tuple(float(v) for v in get("PixelMeasuresSequence", "PixelSpacing")),
                    arr[n] * slope + inter,
                    b,
                    n,
                )
            )
        return out
    slope = float(ds.get("RescaleSlope", 1.0))
    inter = float(ds.get("RescaleIntercept", 0.0))
    return [
        Frame(
            np.array(ds.ImagePositionPatient, float),
            np.array(ds.ImageOrientationPatient, float),
            tuple(float(v) for v in ds.PixelSpacing),
            arr * slope + inter,
            _b_value(ds),
            int(ds.InstanceNumber),
        )
    ]


def read_export(dicom_dir: Path) -> tuple[dict[str, SeriesRead], dict[str, int]]:
    """Read every image series below a folder.

    Returns
    -------
    series : dict
        SeriesInstanceUID -> SeriesRead.
    skipped : dict
        Counts of skipped objects by reason (``dicomdir``, ``no_pixels``, ``not_dicom``).
    """
    series: dict[str, SeriesRead] = {}
    skipped = {"dicomdir": 0, "no_pixels": 0, "not_dicom": 0}
    for path in sorted(p for p in dicom_dir.rglob("*") if p.is_file()):
        ds = _read_any(path)
        if ds is None:
            skipped["not_dicom"] += 1
            continue
        if ds.file_meta.get("MediaStorageSOPClassUID", "") == "1.2.840.10008.1.3.10":
            skipped["dicomdir"] += 1
            continue
        if "PixelData" not in ds:
            skipped["no_pixels"] += 1
            continue
        s = series.setdefault(
            ds.SeriesInstanceUID, SeriesRead(ds.SeriesInstanceUID, ds.SeriesDescription)
        )
        s.frames.extend(_frames(ds))
    return series, skipped


def stack(series: SeriesRead) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Stack a single-orientation series into ``(I, J, K[, V])`` with its RAS affine.

    Returns
    -------
    data : numpy.ndarray
        Rescaled values, axes (column, row, slice[, volume]).
    affine : numpy.ndarray
        4x4 voxel -> RAS mm.
    b_values : list of float
        One per volume (empty when the series has no b-values).
    """
    iop = series.frames[0].iop
    normal = np.cross(iop[:3], iop[3:])
    bvals = sorted({f.b_value for f in series.frames if f.b_value is not None})
    has_b = any(f.b_value is not None for f in series.frames)
    if has_b:
        # files without a b-value (GE b=0) are b=0
        for f in series.frames:
            if f.b_value is None:
                f.b_value = 0.0
        bvals = sorted({float(f.b_value) for f in series.frames})  # type: ignore[arg-type]
    vols = []
    for b in bvals if has_b else [None]:
        frames = [f for f in series.frames if (f.b_value == b or not has_b)]
        frames.sort(key=lambda f: float(f.ipp @ normal))
        vols.append((frames, np.stack([f.pixels.T for f in frames], axis=-1)))
    frames0 = vols[0][0]
    aff = np.eye(4)
    ps = frames0[0].spacing
    aff[:3, 0] = iop[:3] * ps[1]
    aff[:3, 1] = iop[3:] * ps[0]
    aff[:3, 2] = (frames0[-1].ipp - frames0[0].ipp) / max(len(frames0) - 1, 1)
    aff[:3, 3] = frames0[0].ipp
    data = vols[0][1] if len(vols) == 1 else np.stack([v[1] for v in vols], axis=-1)
    return data, LPS_FROM_RAS @ aff, [float(b) for b in bvals] if has_b else []


def verify_case(case_dir: Path) -> dict[str, Any]:
    """Compare every FLAIR/DWI/ADC series of a case with its reference NIfTI.

    Returns
    -------
    dict
        Per session and kind: shape match, max absolute value difference, max affine
        difference (mm), b-values; plus skipped-object counts. ``ok`` is True when all match.
    """
    truth = json.loads((case_dir / "truth" / "truth.json").read_text())
    series, skipped = read_export(case_dir / "DICOM")
    report: dict[str, Any] = {"skipped": skipped, "sessions": {}, "ok": True}
    for ses in truth["sessions"]:
        rs = {}
        for kind in ("flair", "dwi", "adc"):
            uid = ses["series"][kind]["series_instance_uid"]
            data, aff, bvals = stack(series[uid])
            ref = cast(
                nib.Nifti1Image, nib.load(case_dir / ses["truth_files"][f"{kind}_reference"])
            )
            ref_data = ref.get_fdata()
            same_shape = data.shape == ref_data.shape
            diff = float(np.abs(data - ref_data).max()) if same_shape else float("nan")
            aff_diff = float(np.abs(aff - ref.affine).max())
            ok = same_shape and diff == 0.0 and aff_diff < 1e-4
            report["ok"] &= ok
            rs[kind] = {
                "shape": list(data.shape),
                "same_shape": same_shape,
                "max_value_diff": diff,
                "max_affine_diff_mm": aff_diff,
                "b_values": bvals,
                "value_range": [float(data.min()), float(data.max())],
                "ok": ok,
            }
        report["sessions"][ses["session_id"]] = rs
    return report
