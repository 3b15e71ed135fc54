"""Lesion measures of one session: volumes (total, by hemisphere, by region), counts and ADC figures.

Volumes are voxel counts times the voxel volume from the affine (pixel area x slice spacing, gaps
included, as every volumetric tool computes them), converted to mL in :func:`imaging.units.mm3_to_ml`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage as ndi
from scipy import stats
from scipy.special import ndtr

from imaging.image import MRImage
from imaging.normalize import NawmParams, normalize_to_nawm
from imaging.regions import Hemisphere, Region
from imaging.units import mm3_to_ml

__all__ = [
    "LesionAdcFit",
    "adc_in_mask",
    "lesion_count",
    "lesion_volumes",
    "nawm_for_adc",
    "pure_lesion_adc",
]

_FULL = np.ones((3, 3, 3), bool)


def lesion_count(mask: MRImage) -> int:
    """Number of 26-connected lesions."""
    return int(ndi.label(np.asarray(mask.data) > 0, structure=_FULL)[1])


def lesion_volumes(
    mask: MRImage, hemispheres: MRImage, regions: MRImage, *, prefix: str
) -> dict[str, float]:
    """Total, left, right and per-region lesion volumes in mL, keyed ``<prefix>_volume[_<part>]_ml``.

    Parameters
    ----------
    mask : MRImage
        Binary lesion mask.
    hemispheres, regions : MRImage
        Label maps (:class:`~imaging.regions.Hemisphere`, :class:`~imaging.regions.Region`) on the
        same grid (warped from the template). Lesion voxels outside every label count only in the
        total.

    Examples
    --------
    >>> import numpy as np
    >>> lesion = np.zeros((7, 8, 9), np.uint8); lesion[1:3, 1:3, 1:3] = 1
    >>> hemi = np.full((7, 8, 9), 1, np.uint8); hemi[2:] = 2
    >>> region = np.full((7, 8, 9), 2, np.uint8)
    >>> m = MRImage(lesion, np.diag([1.0, 1.0, 2.0, 1.0]))
    >>> out = lesion_volumes(m, m.with_data(hemi), m.with_data(region), prefix="flair_lesion")
    >>> [out[f"flair_lesion_volume_{k}ml"] for k in ("", "left_", "right_", "parietal_")]
    [0.016, 0.008, 0.008, 0.016]
    """
    lesion = np.asarray(mask.data) > 0
    voxel_ml = mm3_to_ml(mask.voxel_volume_mm3)
    hemi = np.asarray(hemispheres.data)
    region = np.asarray(regions.data)
    out = {f"{prefix}_volume_ml": round(float(lesion.sum()) * voxel_ml, 4)}
    for side in Hemisphere:
        count = np.count_nonzero(lesion & (hemi == side))
        out[f"{prefix}_volume_{side.name.lower()}_ml"] = round(float(count) * voxel_ml, 4)
    for part in Region:
        count = np.count_nonzero(lesion & (region == part))
        out[f"{prefix}_volume_{part.column}_ml"] = round(float(count) * voxel_ml, 4)
    return out


def adc_in_mask(adc_um2s: MRImage, mask: MRImage) -> float:
    """Mean ADC (um2/s) inside a mask on the same grid; nan for an empty mask."""
    inside = np.asarray(mask.data) > 0
    if not inside.any():
        return math.nan
    return float(np.mean(np.asarray(adc_um2s.data, dtype=np.float64)[inside]))


class LesionAdcFit(NamedTuple):
    """A lesion tissue's own ADC fitted from voxels it fills in part (:func:`pure_lesion_adc`).

    Attributes
    ----------
    adc_um2s : float
        The fitted ADC, um2/s (nan without a voxel to fit).
    se_um2s : float
        Its standard error, um2/s (nan with fewer than 2 voxels).
    voxels : int
        The voxels fitted.
    """

    adc_um2s: float
    se_um2s: float
    voxels: int

    def lower(self, z: float = 1.96) -> float:
        """The lower end of its two-sided interval of normal quantile ``z`` (Student's t with
        ``voxels - 1`` degrees of freedom: a small lesion fills few voxels), um2/s; the fit itself
        when it has no error."""
        if not math.isfinite(self.se_um2s):
            return self.adc_um2s
        return self.adc_um2s - float(stats.t.ppf(ndtr(z), self.voxels - 1)) * self.se_um2s


def pure_lesion_adc(
    adc_um2s: MRImage,
    share: MRImage,
    nawm_adc_um2s: float,
    *,
    min_share: float = 0.3,
    max_radc: float = 1.5,
) -> LesionAdcFit:
    """The ADC of a lesion's own tissue, apart from the normal tissue its voxels also hold, with
    the standard error of that fit (um2/s).

    A voxel filled to share ``s`` with lesion of ADC ``L``, the rest normal white matter of ADC
    ``n``, reads about ``n + s (L - n)``; the least-squares ``L = n + sum s (a - n) / sum s^2``
    over the voxels filled to at least ``min_share`` whose ADC ``a`` is below ``max_radc`` times
    ``n`` (a voxel holding CSF, ADC about 3000, fits no two-tissue mix of lesion and white
    matter). On 4-5 mm ADC maps the voxels of small lesions are mostly part normal tissue, and
    their mean ADC lies well above the lesion's. The standard error is that of a least-squares
    slope through the origin, ``sqrt(sum r^2 / (m - 1) / sum s^2)`` over the fit's ``m`` voxels
    and residuals ``r``: it holds the ADC map's noise, the lesion's own heterogeneity and the
    error of the shares, and is large where a small lesion fills few voxels.

    Parameters
    ----------
    adc_um2s : MRImage
        ADC map, shape (I, J, K).
    share : MRImage
        The lesion's share of each voxel, 0..1, same grid (:func:`imaging.edit.mask_share_onto`).
    nawm_adc_um2s : float
        ADC of normal white matter, um2/s.

    Returns
    -------
    LesionAdcFit
        nan without such a voxel or a valid ``nawm_adc_um2s`` (the error also with one voxel).
    """
    if not nawm_adc_um2s > 0:
        return LesionAdcFit(math.nan, math.nan, 0)
    s = np.asarray(share.data, np.float64)
    a = np.asarray(adc_um2s.data, np.float64)
    used = (s >= min_share) & (a > 0) & (a < max_radc * nawm_adc_um2s)
    if not used.any():
        return LesionAdcFit(math.nan, math.nan, 0)
    weights, excess, count = s[used], a[used] - nawm_adc_um2s, int(used.sum())
    squares = float(np.sum(weights * weights))
    slope = float(np.sum(weights * excess)) / squares
    if count < 2:
        return LesionAdcFit(nawm_adc_um2s + slope, math.nan, count)
    residual = float(np.sum((excess - slope * weights) ** 2)) / (count - 1)
    return LesionAdcFit(nawm_adc_um2s + slope, math.sqrt(residual / squares), count)


def as_cell(value: Any) -> Any:
    """A table cell: nan and None become empty, floats keep 4 decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return round(value, 4)
    return value


def nawm_for_adc(
    trace: MRImage,
    adc_um2s: MRImage | None,
    brain_mask: MRImage,
    wm_prior: MRImage,
    lesion_mask: MRImage,
    *,
    params: NawmParams | None = None,
    adc_min_um2s: float = 100.0,
) -> MRImage:
    """Normal-appearing white matter on the DWI grid, the reference of rADC, for any engine.

    The white-matter core of the prior (``params.wm_prior_min``) inside the brain, minus the
    engine's lesions and the voxels next to them (one voxel), with trace outliers trimmed
    (:func:`imaging.normalize.normalize_to_nawm`) and, when there is an ADC, voxels below
    ``adc_min_um2s`` (background, fit failures) removed.

    Parameters
    ----------
    trace : MRImage
        Diffusion-weighted volume, shape (I, J, K).
    adc_um2s : MRImage or None
        ADC on the same grid, um2/s.
    brain_mask, wm_prior, lesion_mask : MRImage
        On the same grid.
    params : NawmParams, optional
    adc_min_um2s : float
        Smallest valid ADC, um2/s.

    Returns
    -------
    MRImage
        uint8 mask, shape (I, J, K).

    Raises
    ------
    NormalizationError
        When too little white matter is left to estimate from.
    """
    lesion = ndi.binary_dilation(np.asarray(lesion_mask.data) > 0, structure=_FULL)
    norm = normalize_to_nawm(trace, brain_mask, wm_prior, params=params, exclude=lesion)
    nawm = np.asarray(norm.nawm_mask.data) > 0
    if adc_um2s is not None:
        nawm &= np.asarray(adc_um2s.data) >= adc_min_um2s
    return norm.nawm_mask.with_data(nawm.astype(np.uint8), sequence="OTHER")
