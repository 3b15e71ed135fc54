"""Morphology in millimetres on anisotropic grids."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

__all__ = [
    "ball",
    "bounding_box",
    "dilate_mm",
    "distance_inside_mm",
    "distance_to_mm",
    "erode_mm",
    "fill_holes_2d3d",
    "largest_component",
    "remove_small_components",
]


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


def bounding_box(
    mask: NDArray[np.bool_], margin: int | tuple[int, int, int] = 2
) -> tuple[slice, slice, slice]:
    """Bounding box of a non-empty 3-D mask, widened by ``margin`` voxels (one for all axes or one
    per axis; clipped to the array).

    >>> m = np.zeros((5, 6, 7), bool); m[2, 3, 4] = True
    >>> bounding_box(m, margin=1)
    (slice(1, 4, None), slice(2, 5, None), slice(3, 6, None))
    """
    margins = (margin,) * 3 if isinstance(margin, int) else margin
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        box.append(
            slice(max(int(present[0]) - margins[axis], 0), int(present[-1]) + margins[axis] + 1)
        )
    return (box[0], box[1], box[2])


def distance_inside_mm(mask: NDArray[np.bool_], spacing: tuple[float, ...]) -> NDArray[Any]:
    """Distance (mm) of each voxel of ``mask`` to the nearest voxel outside it (0 outside).

    Voxels beyond the array count as outside (a brain cut by the field of view has an edge there).
    """
    padded = np.pad(mask, 1, constant_values=False)
    return np.asarray(ndi.distance_transform_edt(padded, sampling=spacing))[1:-1, 1:-1, 1:-1]


def distance_to_mm(mask: NDArray[np.bool_], spacing: tuple[float, ...]) -> NDArray[Any]:
    """Distance (mm) of each voxel to the nearest voxel of ``mask`` (inf if it is empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float64)
    return np.asarray(ndi.distance_transform_edt(~mask, sampling=spacing))


def within_mm(
    mask: NDArray[np.bool_], spacing: tuple[float, ...], radius_mm: float
) -> NDArray[np.bool_]:
    """Voxels at most ``radius_mm`` from a voxel of ``mask`` (``distance_to_mm(mask) <= radius_mm``).

    The distance transform runs only on the mask's bounding box widened by the radius, which is
    exact (no voxel outside it is that close) and cheap for sparse masks (seeds, lesions).

    >>> m = np.zeros((9, 9, 5), bool); m[4, 4, 2] = True
    >>> int(within_mm(m, (1.0, 1.0, 3.0), 2.0).sum())  # a disc of radius 2 in one slice
    13
    """
    out = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return out
    margin = tuple(int(np.ceil(radius_mm / s)) + 1 for s in spacing[:3])
    box = bounding_box(mask, (margin[0], margin[1], margin[2]))
    distance = ndi.distance_transform_edt(~mask[box], sampling=spacing)
    out[box] = np.asarray(distance) <= radius_mm
    return out


def remove_small_components(
    mask: NDArray[np.bool_], voxel_mm3: float, min_volume_mm3: float
) -> NDArray[np.bool_]:
    """``mask`` without its 26-connected components smaller than ``min_volume_mm3``."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return mask
    keep = np.bincount(labels.ravel()) * voxel_mm3 >= min_volume_mm3
    keep[0] = False
    return np.asarray(keep[labels])
