"""Smoothing in millimetres, shared by the lesion methods: a Gaussian whose width is given in mm on
any voxel spacing, and the normalised convolution that gives the local level of a tissue sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["gaussian_mm", "local_mean", "masked_smooth", "mirrored_across_midline"]


def gaussian_mm(
    image: NDArray[Any], sigma_mm: float, spacing: tuple[float, ...], *, truncate: float = 4.0
) -> NDArray[np.float32]:
    """``image`` smoothed by a Gaussian of ``sigma_mm`` (0: unchanged), float32, same shape.

    >>> out = gaussian_mm(np.ones((4, 5, 6)), 2.0, (1.0, 1.0, 3.0))
    >>> out.dtype, bool(np.allclose(out, 1.0))
    (dtype('float32'), True)
    """
    if sigma_mm <= 0:
        return np.asarray(image, dtype=np.float32)
    sigma = [sigma_mm / s for s in spacing]
    smoothed = ndi.gaussian_filter(np.asarray(image, np.float32), sigma, truncate=truncate)
    return np.asarray(smoothed, dtype=np.float32)


def local_mean(
    image: NDArray[Any],
    sample: NDArray[np.bool_],
    fallback: float,
    sigma_mm: float,
    spacing: tuple[float, ...],
    *,
    min_weight: float,
    truncate: float = 4.0,
) -> NDArray[np.float32]:
    """Normalised convolution: the Gaussian-weighted mean of ``image`` over ``sample`` near each
    voxel, ``fallback`` where the sample's weight is below ``min_weight`` (too sparse).

    >>> image = np.zeros((9, 9, 9)); image[:, :, 5:] = 10.0
    >>> level = local_mean(image, image > 5, 0.0, 2.0, (1.0, 1.0, 1.0), min_weight=0.05)
    >>> float(level[4, 4, 3]), float(level[4, 4, 0])
    (10.0, 0.0)
    """
    weight = gaussian_mm(sample.astype(np.float32), sigma_mm, spacing, truncate=truncate)
    total = gaussian_mm(np.where(sample, image, 0.0), sigma_mm, spacing, truncate=truncate)
    sparse = weight < min_weight
    level = np.divide(total, weight, out=np.full(image.shape, fallback, np.float32), where=~sparse)
    return np.where(sparse, np.float32(fallback), level).astype(np.float32)


def masked_smooth(
    image: NDArray[np.float32], mask: NDArray[np.bool_], sigma_mm: float, spacing: tuple[float, ...]
) -> NDArray[np.float32]:
    """Gaussian smoothing inside ``mask`` only (normalised convolution: no darkening at the edge)."""
    weight = gaussian_mm(mask.astype(np.float32), sigma_mm, spacing)
    total = gaussian_mm(np.where(mask, image, 0.0), sigma_mm, spacing)
    return np.divide(total, weight, out=np.zeros_like(total), where=weight > 1e-3)


def mirrored_across_midline(
    image: NDArray[np.float32],
    affine: NDArray[np.float64],
    box: tuple[slice, slice, slice],
    to_mni: NDArray[np.float64] | None,
    *,
    outside: float = 0.0,
) -> NDArray[np.float32]:
    """``image`` sampled at each voxel's mirror image across the template's midsagittal plane.

    Parameters
    ----------
    image : ndarray, shape of ``box``
        A crop (``box``) of a grid whose voxel-to-world matrix is ``affine``.
    affine : ndarray, shape (4, 4)
        The full grid's voxel-to-world matrix (mm).
    box : tuple of slice
        Where ``image`` sits on that grid.
    to_mni : ndarray, shape (4, 4), or None
        World -> MNI world (the template fit); None when the world already is MNI. The mirror plane
        is MNI x = 0.
    outside : float
        Value where the mirror image falls outside the crop.

    Returns
    -------
    ndarray of float32, shape of ``image``
        Linear interpolation of ``image`` at the mirrored positions.
    """
    forward = np.eye(4) if to_mni is None else np.asarray(to_mni, dtype=np.float64)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    start = np.array([s.start for s in box], dtype=np.float64)
    box_affine = np.array(affine, dtype=np.float64)
    box_affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    # box voxel -> world -> MNI -> mirrored MNI -> world -> box voxel
    mapping = np.linalg.inv(box_affine) @ np.linalg.inv(forward) @ flip @ forward @ box_affine
    return np.asarray(
        ndi.affine_transform(
            image, mapping[:3, :3], offset=mapping[:3, 3], order=1, mode="constant", cval=outside
        ),
        dtype=np.float32,
    )
