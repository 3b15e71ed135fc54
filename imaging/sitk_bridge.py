"""Conversion between :class:`~imaging.image.MRImage` (RAS+ affine) and SimpleITK images (LPS+).

SimpleITK stores origin, spacing and a direction matrix in LPS+ patient coordinates and indexes its
arrays (k, j, i); MRImage stores one RAS+ affine and indexes (i, j, k). Both conversions are exact for
affines without shear (every MR acquisition).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from imaging.errors import GeometryError
from imaging.image import MRImage

__all__ = ["LPS_RAS", "affine_from_sitk", "from_sitk", "grid_to_sitk", "to_sitk"]

#: Flips x and y: RAS+ <-> LPS+ (its own inverse).
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _geometry(
    affine_ras: NDArray[np.float64],
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    lps = LPS_RAS @ affine_ras
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise GeometryError("the affine has shear; SimpleITK cannot represent it")
    return tuple(lps[:3, 3]), tuple(spacing), tuple(direction.ravel())


def to_sitk(image: MRImage, *, dtype: Any = np.float32) -> sitk.Image:
    """A 3-D MRImage (or its first volume) as a SimpleITK image with the same physical geometry."""
    data = np.asarray(image.data if image.data.ndim == 3 else image.data[..., 0], dtype=dtype)
    result = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    origin, spacing, direction = _geometry(image.affine)
    result.SetOrigin(origin)
    result.SetSpacing(spacing)
    result.SetDirection(direction)
    return result


def grid_to_sitk(image: MRImage) -> sitk.Image:
    """An empty (uint8) SimpleITK image on ``image``'s grid, to serve as a resampling reference."""
    reference = sitk.Image(*image.spatial_shape, sitk.sitkUInt8)
    origin, spacing, direction = _geometry(image.affine)
    reference.SetOrigin(origin)
    reference.SetSpacing(spacing)
    reference.SetDirection(direction)
    return reference


def affine_from_sitk(image: sitk.Image) -> NDArray[np.float64]:
    """The RAS+ voxel-to-world affine of a SimpleITK image (axes i, j, k)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    affine[:3, 3] = image.GetOrigin()
    return LPS_RAS @ affine


def from_sitk(image: sitk.Image, like: MRImage | None = None, **kwargs: Any) -> MRImage:
    """A SimpleITK image as an MRImage; sequence and acquisition copied from ``like`` when given."""
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    if like is not None:
        kwargs.setdefault("sequence", like.sequence)
        kwargs.setdefault("acquisition", like.acquisition)
    return MRImage(np.ascontiguousarray(data), affine_from_sitk(image), **kwargs)
