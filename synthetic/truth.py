"""Ground-truth files written beside the DICOM export (NIfTI masks, references, truth.json)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

TRUTH_DEFINITIONS = {
    "flair_lesion": (
        "FLAIR-hyperintense (T2-prolonged) lesion tissue. 1 mm model: per-voxel lesion tissue "
        "fraction ell_f in [0, 1]; model volume = sum(ell_f) mm3. On an acquisition grid: the "
        "mean of ell_f over each voxel footprint (in-plane pixel x slice thickness, under the "
        "session's true head pose) >= 0.5."
    ),
    "dwi_lesion": (
        "Diffusion-restricted lesion tissue: affected white-matter tissue whose ADC relative to "
        "normal white matter (700 um2/s) is below 0.75. Pseudo-normalised tissue (rADC >= 0.75, "
        "still DWI-bright from T2 shine-through) is NOT a DWI lesion. 1 mm model volume = sum of "
        "the restricted tissue fraction; grid mask = footprint mean >= 0.5 on the DWI grid."
    ),
    "brain_mask": (
        "The template brain: everything inside the MNI152 2009a brain outline (parenchyma, "
        "ventricles, sulcal CSF), excluding the extra-axial CSF rim, skull, scalp and the "
        "spinal cord below the template. Grid mask = footprint mean >= 0.5."
    ),
    "grid_volume_ml": (
        "number of mask voxels x |det(affine)| / 1000, i.e. pixel area x slice spacing "
        "(SpacingBetweenSlices, including any gap), as a tool computing volumes from the affine "
        "does."
    ),
    "pseudonormalised_ml_model_1mm": (
        "affected lesion tissue whose rADC is back in 0.75 <= rADC < 1.3 (pseudo-normalised: "
        "not a DWI lesion although still DWI-bright by T2 shine-through); later, facilitated "
        "diffusion (rADC >= 1.3) is not counted."
    ),
    "events": (
        "FLAIR-based, from connected_groups: 'new' = a named component first seen in a FLAIR "
        "group; 'merge' = a group joining components that were in separate groups before."
    ),
    "hemisphere": "by the sign of the template (MNI) x coordinate: x < 0 left, x > 0 right.",
    "connected_groups": (
        "3D connected components (26-connectivity) of the 1 mm FLAIR lesion (ell_f >= 0.5) in "
        "template space, each listed with the named components it contains; a group holding "
        "several names that were separate in the previous session is a merge."
    ),
}

NIFTI_CONVENTION = (
    "Arrays are in DICOM order, not reoriented: axis 0 (i) = DICOM column index, axis 1 (j) = "
    "DICOM row index (pixel [row=j, col=i] of an image), axis 2 (k) = slice index sorted by "
    "increasing position along the slice normal n = row_cosines x column_cosines (first "
    "slice = ImagePositionPatient with the smallest IPP.n); DWI axis 3 = volume (0: b=0, "
    "1: b=1000). Affine (sform = qform, code 1) = diag(-1, -1, 1) applied to [row_cos * "
    "column_spacing, col_cos * row_spacing, IPP[k=last] - IPP[k=0] / (K - 1), IPP[k=0]], i.e. "
    "the DICOM LPS geometry converted to RAS. References hold the pixel values after the DICOM "
    "rescale (stored * RescaleSlope + RescaleIntercept): the stored integer type when the "
    "rescale is the identity, else float64 computed exactly that way."
)


def nifti_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzipped NIfTI-1 bytes, deterministic (gzip mtime 0, compression level 9).

    Parameters
    ----------
    data : numpy.ndarray
        Array to store (its dtype is kept, no scaling).
    affine : numpy.ndarray
        4x4 voxel -> RAS mm affine, written as sform and qform (code 1, scanner).

    Returns
    -------
    bytes
    """
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=9, mtime=0)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a deterministic ``.nii.gz`` (see :func:`nifti_bytes`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nifti_bytes(data, affine))


def connected_groups(
    flair: np.ndarray,
    by_component: dict[str, np.ndarray],
    boxes: dict[str, tuple[slice, slice, slice]],
) -> list[dict[str, Any]]:
    """Connected FLAIR lesion regions (1 mm) and the named components inside each.

    Parameters
    ----------
    flair : numpy.ndarray
        FLAIR lesion fraction on the model grid.
    by_component : dict
        Per-component FLAIR fraction within each component's box.
    boxes : dict
        Component boxes into the model grid.

    Returns
    -------
    list of dict
        ``{"components": [...], "volume_ml": float}`` per region, largest first.
    """
    mask = flair >= 0.5
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    groups: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        region = lab == i
        names = sorted(
            name
            for name, frac in by_component.items()
            if np.any((frac >= 0.5) & region[boxes[name]])
        )
        groups.append({"components": names, "volume_ml": round(float(region.sum()) / 1000.0, 4)})
    groups.sort(key=lambda g: -g["volume_ml"])
    return groups


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON with sorted keys and a trailing newline (deterministic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
