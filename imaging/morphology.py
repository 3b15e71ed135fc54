"""Morphology in millimetres on anisotropic grids."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = ["ball", "dilate_mm", "erode_mm", "fill_holes_2d3d", "largest_component"]


def ball(spacing_mm: tuple[float, ...], radius_mm: float) -> NDArray[np.bool_]:
    """An ellipsoidal structuring element of ``radius_mm`` on a grid with ``spacing_mm``.

    >>> ball((1.0, 1.0, 3.0), 2.0).shape
    (5, 5, 1)
    """
    half = [int(np.floor(radius_mm / s)) for s in spacing_mm]
    grids = np.ogrid[tuple(slice(-n, n + 1) for n in half)]
    distance = sum((g * s) ** 2 for g, s in zip(grids, spacing_mm, strict=True))
    return np.asarray(distance <= radius_mm**2)


def erode_mm(
    mask: NDArray[Any], spacing_mm: tuple[float, ...], radius_mm: float
) -> NDArray[np.bool_]:
    """Binary erosion by a ball of ``radius_mm``."""
    return np.asarray(ndi.binary_erosion(mask, ball(spacing_mm, radius_mm)))


def dilate_mm(
    mask: NDArray[Any], spacing_mm: tuple[float, ...], radius_mm: float
) -> NDArray[np.bool_]:
    """Binary dilation by a ball of ``radius_mm``."""
    return np.asarray(ndi.binary_dilation(mask, ball(spacing_mm, radius_mm)))


def largest_component(mask: NDArray[Any]) -> NDArray[np.bool_]:
    """The largest 26-connected component of ``mask`` (empty in, empty out)."""
    labels, count = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    return np.asarray(labels == int(np.argmax(sizes)) + 1)


def fill_holes_2d3d(mask: NDArray[Any]) -> NDArray[np.bool_]:
    """Fill holes in 3-D and in every slice along the last axis (thick-slice acquisitions)."""
    filled = np.stack([ndi.binary_fill_holes(mask[..., k]) for k in range(mask.shape[-1])], axis=-1)
    return np.asarray(ndi.binary_fill_holes(filled))
