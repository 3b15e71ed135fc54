"""Segmentation metrics with the MICCAI 2017 WMH segmentation challenge definitions.

The challenge's evaluation script (Kuijf et al., IEEE TMI 2019; ``evaluation.py``) scores a binary
prediction against a binary reference with five numbers, reproduced here:

* **Dice** = 2 |R & P| / (|R| + |P|).
* **HD95** (mm): the larger of the two directed 95th-percentile distances between the boundaries of
  R and P. A boundary is the mask minus its eroded self; the challenge erodes *in plane* (within
  each slice ``k``, 3x3 square, so that thick-slice stacks keep their top and bottom faces as
  boundary only where they are in-plane edges) and measures distances between voxel centres in
  physical millimetres (through the affine, hence anisotropic and oblique grids are handled).
  ``boundary="3d"`` erodes with the full 3x3x3 cube instead.
* **AVD** (%) = |V_R - V_P| / V_R x 100.
* **Lesion recall** = reference lesions (3-D connected components, 26-connectivity) that the
  prediction touches (at least one voxel in common) / reference lesions.
* **Lesion precision** = predicted components that touch the reference / predicted components, and
  **lesion F1** = 2 precision recall / (precision + recall).

Empty masks (defined here explicitly; the challenge code follows the same choices where it has one):

====================  ==================  ==================  ==================
metric                both empty          reference empty     prediction empty
====================  ==================  ==================  ==================
dice                  1.0                 0.0                 0.0
hd95_mm               nan                 nan                 nan
avd_percent           0.0                 nan (undefined)     100.0
lesion_recall         1.0 (nothing        1.0                 0.0
                      to miss)
lesion_precision      1.0 (no false       0.0                 1.0
                      detection)
lesion_f1             1.0                 0.0                 0.0
====================  ==================  ==================  ==================

Volumes are the voxel count times the voxel volume from the affine (|det|), in mL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from imaging.errors import GeometryError
from imaging.image import MRImage
from imaging.units import mm3_to_ml

__all__ = [
    "SegmentationMetrics",
    "absolute_volume_difference_percent",
    "boundary_mask",
    "dice",
    "evaluate_segmentation",
    "hd95_mm",
    "lesion_detection",
]

Boundary = Literal["2d", "3d"]

#: 26-connectivity (full 3-D neighbourhood) for lesion components, as in the challenge.
FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class SegmentationMetrics:
    """The challenge metrics of one prediction against one reference.

    Attributes
    ----------
    dice : float
        Dice similarity coefficient in [0, 1].
    hd95_mm : float
        95th-percentile Hausdorff distance between the boundaries, mm (nan if a mask is empty).
    avd_percent : float
        Absolute volume difference relative to the reference, %.
    lesion_recall, lesion_precision, lesion_f1 : float
        Component-wise detection scores in [0, 1] (26-connected components).
    volume_ref_ml, volume_pred_ml : float
        Volumes of the reference and of the prediction, mL.
    n_ref_lesions, n_pred_lesions : int
        Number of connected components in each mask.
    """

    dice: float
    hd95_mm: float
    avd_percent: float
    lesion_recall: float
    lesion_precision: float
    lesion_f1: float
    volume_ref_ml: float
    volume_pred_ml: float
    n_ref_lesions: int
    n_pred_lesions: int

    def to_dict(self) -> dict[str, Any]:
        """The metrics as a plain dict (for tables and JSON)."""
        return asdict(self)


# ---------------------------------------------------------------------------------------- inputs
def _as_bool(mask: MRImage | ArrayLike) -> NDArray[np.bool_]:
    data = mask.data if isinstance(mask, MRImage) else np.asarray(mask)
    if data.ndim != 3:
        raise GeometryError(f"a segmentation mask must be 3-D, got shape {data.shape}")
    return np.asarray(data > 0)


def _pair(
    reference: MRImage | ArrayLike,
    prediction: MRImage | ArrayLike,
    spacing_mm: Sequence[float] | None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.float64]]:
    """Binary arrays and the voxel-to-mm affine of a (reference, prediction) pair."""
    ref_is_image = isinstance(reference, MRImage)
    pred_is_image = isinstance(prediction, MRImage)
    if ref_is_image and pred_is_image:
        assert isinstance(reference, MRImage) and isinstance(prediction, MRImage)
        if not reference.same_grid(prediction):
            raise GeometryError(
                f"reference {reference!r} and prediction {prediction!r} are not on the same grid; "
                "resample the prediction onto the reference grid first"
            )
        affine = reference.affine
    elif ref_is_image or pred_is_image:
        image = reference if ref_is_image else prediction
        assert isinstance(image, MRImage)
        affine = image.affine
    else:
        if spacing_mm is None:
            raise ValueError("plain arrays need spacing_mm (voxel size in mm along i, j, k)")
        affine = _spacing_affine(spacing_mm)
    ref = _as_bool(reference)
    pred = _as_bool(prediction)
    if ref.shape != pred.shape:
        raise GeometryError(
            f"reference shape {ref.shape} and prediction shape {pred.shape} differ; "
            "both masks must be on the same grid"
        )
    if spacing_mm is not None and (ref_is_image or pred_is_image):
        expected = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        if not np.allclose(expected, spacing_mm, atol=1e-3):
            raise GeometryError(
                f"spacing_mm {tuple(spacing_mm)} disagrees with the image's spacing "
                f"{tuple(expected.round(4))}; leave spacing_mm out for images"
            )
    return ref, pred, affine


def _spacing_affine(spacing_mm: Sequence[float]) -> NDArray[np.float64]:
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must be three positive sizes in mm, got {spacing_mm!r}")
    return np.diag([*spacing.tolist(), 1.0])


# --------------------------------------------------------------------------------------- metrics
def dice(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Dice coefficient of two binary masks (non-zero = foreground).

    Parameters
    ----------
    reference, prediction : array_like, same shape
        Masks of any dimension.

    Returns
    -------
    float
        ``2 |R & P| / (|R| + |P|)`` in [0, 1]; 1.0 when both are empty.

    Examples
    --------
    >>> dice([1, 1, 0, 0], [0, 1, 1, 0])
    0.5
    """
    ref = np.asarray(reference) > 0
    pred = np.asarray(prediction) > 0
    total = int(ref.sum()) + int(pred.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(ref, pred).sum()) / total


def boundary_mask(mask: ArrayLike, boundary: Boundary = "2d") -> NDArray[np.bool_]:
    """The boundary of a 3-D mask: the mask minus its eroded self.

    Parameters
    ----------
    mask : array_like of shape (I, J, K)
        Binary mask.
    boundary : {"2d", "3d"}
        ``"2d"``: erode within each slice ``k`` by a 3x3 square (the challenge's in-plane erosion,
        SimpleITK ``BinaryErode`` radius (1, 1, 0)); ``"3d"``: erode by the 3x3x3 cube.
        Voxels outside the array count as foreground, as in SimpleITK (a mask touching the edge of
        the field of view keeps no boundary there).

    Returns
    -------
    ndarray of bool, shape (I, J, K)
    """
    binary = np.asarray(mask) > 0
    if boundary == "2d":
        structure = np.ones((3, 3, 1), dtype=bool)
    elif boundary == "3d":
        structure = np.ones((3, 3, 3), dtype=bool)
    else:
        raise ValueError(f"boundary must be '2d' or '3d', got {boundary!r}")
    eroded = ndi.binary_erosion(binary, structure=structure, border_value=1)
    return np.asarray(binary & ~eroded)


def _boundary_points_mm(
    mask: NDArray[np.bool_], affine: NDArray[np.float64], boundary: Boundary
) -> NDArray[np.float64]:
    ijk = np.argwhere(boundary_mask(mask, boundary)).astype(np.float64)
    return np.asarray(ijk @ affine[:3, :3].T + affine[:3, 3])


def _hd95_from_affine(
    ref: NDArray[np.bool_], pred: NDArray[np.bool_], affine: NDArray[np.float64], boundary: Boundary
) -> float:
    if not ref.any() or not pred.any():
        return math.nan
    a = _boundary_points_mm(ref, affine, boundary)
    b = _boundary_points_mm(pred, affine, boundary)
    d_ab = cKDTree(b).query(a, k=1)[0]
    d_ba = cKDTree(a).query(b, k=1)[0]
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def hd95_mm(
    reference: MRImage | ArrayLike,
    prediction: MRImage | ArrayLike,
    *,
    spacing_mm: Sequence[float] | None = None,
    boundary: Boundary = "2d",
) -> float:
    """95th-percentile Hausdorff distance between the boundaries of two masks, in mm.

    Parameters
    ----------
    reference, prediction : MRImage or array_like of shape (I, J, K)
        Binary masks on the same grid.
    spacing_mm : sequence of 3 float, optional
        Voxel size along i, j, k (required for plain arrays).
    boundary : {"2d", "3d"}
        Erosion used to find the boundary, see :func:`boundary_mask`.

    Returns
    -------
    float
        ``max(P95(d(R -> P)), P95(d(P -> R)))`` in mm; nan when either mask is empty.
    """
    ref, pred, affine = _pair(reference, prediction, spacing_mm)
    return _hd95_from_affine(ref, pred, affine, boundary)


def absolute_volume_difference_percent(volume_ref: float, volume_pred: float) -> float:
    """``|V_ref - V_pred| / V_ref x 100``; 0.0 if both are 0, nan if only the reference is 0."""
    if volume_ref == 0:
        return 0.0 if volume_pred == 0 else math.nan
    return abs(volume_ref - volume_pred) / volume_ref * 100.0


def lesion_detection(
    reference: ArrayLike, prediction: ArrayLike
) -> tuple[float, float, float, int, int]:
    """Component-wise recall, precision and F1 (3-D, 26-connected components).

    Parameters
    ----------
    reference, prediction : array_like of shape (I, J, K)
        Binary masks on the same grid.

    Returns
    -------
    recall, precision, f1 : float
        See the module docstring (and its table for empty masks).
    n_ref, n_pred : int
        Number of reference and predicted components.
    """
    ref = np.asarray(reference) > 0
    pred = np.asarray(prediction) > 0
    ref_labels, n_ref = ndi.label(ref, structure=FULL_CONNECTIVITY)
    pred_labels, n_pred = ndi.label(pred, structure=FULL_CONNECTIVITY)
    detected = np.unique(ref_labels[pred & ref])
    touching = np.unique(pred_labels[pred & ref])
    recall = 1.0 if n_ref == 0 else detected.size / n_ref
    precision = 1.0 if n_pred == 0 else touching.size / n_pred
    f1 = 0.0 if recall + precision == 0 else 2.0 * recall * precision / (recall + precision)
    return float(recall), float(precision), float(f1), int(n_ref), int(n_pred)


def evaluate_segmentation(
    reference: MRImage | ArrayLike,
    prediction: MRImage | ArrayLike,
    *,
    spacing_mm: Sequence[float] | None = None,
    boundary: Boundary = "2d",
) -> SegmentationMetrics:
    """All challenge metrics of a prediction against a reference on the same grid.

    Parameters
    ----------
    reference, prediction : MRImage or array_like of shape (I, J, K)
        Binary masks (non-zero = lesion). Two images must be on the same grid
        (:meth:`MRImage.same_grid`); for plain arrays give ``spacing_mm``.
    spacing_mm : sequence of 3 float, optional
        Voxel size along i, j, k in mm (plain arrays only; checked against the image otherwise).
    boundary : {"2d", "3d"}
        Erosion for the HD95 boundary (``"2d"`` = the challenge's in-plane erosion).

    Returns
    -------
    SegmentationMetrics

    Raises
    ------
    GeometryError
        If the masks are not on the same grid or not 3-D.
    ValueError
        If plain arrays come without ``spacing_mm``.
    """
    ref, pred, affine = _pair(reference, prediction, spacing_mm)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    volume_ref_ml = mm3_to_ml(int(ref.sum()) * voxel_mm3)
    volume_pred_ml = mm3_to_ml(int(pred.sum()) * voxel_mm3)
    recall, precision, f1, n_ref, n_pred = lesion_detection(ref, pred)
    return SegmentationMetrics(
        dice=dice(ref, pred),
        hd95_mm=_hd95_from_affine(ref, pred, affine, boundary),
        avd_percent=absolute_volume_difference_percent(volume_ref_ml, volume_pred_ml),
        lesion_recall=recall,
        lesion_precision=precision,
        lesion_f1=f1,
        volume_ref_ml=volume_ref_ml,
        volume_pred_ml=volume_pred_ml,
        n_ref_lesions=n_ref,
        n_pred_lesions=n_pred,
    )
