"""Where MS-like white-matter lesions occur: a lesion-frequency prior in MNI space, and MNI maps on a
scan's grid.

The prior (``imaging/data/ms_lesion_frequency_mni_2mm.nii.gz``) is the fraction of 27 MS patients of the
open_ms_data cross-sectional database (Lesjak et al., Neuroinformatics 2017, CC-BY) whose consensus
expert mask marks a voxel as lesion, smoothed (Gaussian, 4 mm) and stored at 2 mm. It is built by
``scripts/build_lesion_prior.py``; patient07, the real case the FLAIR method is validated on, is left
out. Values are frequencies 0..1 (highest, 0.18, along the lateral ventricles).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.register import resample

__all__ = [
    "LESION_PRIOR_FILE",
    "build_lesion_frequency",
    "lesion_frequency_mni",
    "lesion_prior_on",
    "lesion_prior_sha256",
    "mni_map_on",
]

#: The packaged lesion-frequency prior (MNI, 2 mm).
LESION_PRIOR_FILE = Path(__file__).parent / "data" / "ms_lesion_frequency_mni_2mm.nii.gz"


def build_lesion_frequency(
    masks: Sequence[NDArray[np.bool_]],
    affine: NDArray[np.float64],
    *,
    sigma_mm: float = 4.0,
    block: int = 2,
) -> MRImage:
    """Lesion frequency (0..1) over binary masks on one grid, smoothed and block-averaged.

    Parameters
    ----------
    masks : sequence of ndarray of bool, each shape (I, J, K)
        Lesion masks of different patients on one (MNI) grid.
    affine : ndarray, shape (4, 4)
        The masks' voxel-to-world matrix.
    sigma_mm : float
        Gaussian smoothing, mm (0 = none).
    block : int
        Voxels averaged per axis into one output voxel (2 on a 1 mm grid gives 2 mm).

    Returns
    -------
    MRImage
        float32 frequency map on the block grid (voxel centres at the blocks' centres).
    """
    if not masks:
        raise ImagingError("no lesion masks to build a prior from")
    total = np.zeros(masks[0].shape, dtype=np.float32)
    for mask in masks:
        total += np.asarray(mask, dtype=np.float32)
    frequency = total / np.float32(len(masks))
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    if sigma_mm > 0:
        frequency = ndi.gaussian_filter(frequency, sigma_mm / spacing, mode="constant")
    shape = [n // block for n in frequency.shape]
    cropped = frequency[: shape[0] * block, : shape[1] * block, : shape[2] * block]
    blocks = cropped.reshape(shape[0], block, shape[1], block, shape[2], block).mean(axis=(1, 3, 5))
    out_affine = np.array(affine, dtype=np.float64)
    out_affine[:3, :3] = affine[:3, :3] * block
    out_affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ np.full(3, (block - 1) / 2.0)
    return MRImage(blocks.astype(np.float32), out_affine)


@lru_cache(maxsize=1)
def lesion_frequency_mni() -> MRImage:
    """The packaged lesion-frequency prior in MNI space (float32 0..1, 2 mm)."""
    if not LESION_PRIOR_FILE.is_file():
        raise ImagingError(
            f"the lesion prior {LESION_PRIOR_FILE} is missing; reinstall leukotrack or rebuild it "
            "with scripts/build_lesion_prior.py"
        )
    image = nib.load(LESION_PRIOR_FILE)
    if not isinstance(image, nib.Nifti1Image):
        raise ImagingError(f"{LESION_PRIOR_FILE} is not a NIfTI-1 image")
    return MRImage(image.get_fdata(dtype=np.float32), image.affine)


@lru_cache(maxsize=1)
def lesion_prior_sha256() -> str:
    """sha256 (hex) of the packaged lesion prior file, for provenance."""
    return hashlib.sha256(LESION_PRIOR_FILE.read_bytes()).hexdigest()


def mni_map_on(
    mni_map: MRImage, reference: MRImage, to_mni: NDArray[np.float64] | None = None
) -> MRImage:
    """An MNI-space map resampled (linear) onto ``reference``'s grid.

    Parameters
    ----------
    mni_map : MRImage
        A map whose world coordinates are MNI (e.g. :func:`lesion_frequency_mni`, or
        ``imaging.template.mni_template().gm``).
    reference : MRImage
        The scan whose grid the map is wanted on.
    to_mni : ndarray, shape (4, 4), optional
        Scan world -> MNI world (``TemplateFit.registration.matrix``, or its composition with a
        session's transform). None when the scan already is in MNI space.

    Returns
    -------
    MRImage
        float32 map on ``reference``'s grid (0 outside the map's field of view).
    """
    warped = resample(mni_map, reference, to_mni, interpolation="linear")
    return MRImage(np.asarray(warped.data, dtype=np.float32), reference.affine)


def lesion_prior_on(reference: MRImage, to_mni: NDArray[np.float64] | None = None) -> MRImage:
    """The packaged lesion-frequency prior on ``reference``'s grid (see :func:`mni_map_on`)."""
    return mni_map_on(lesion_frequency_mni(), reference, to_mni)
