"""Robust intensity normalisation on normal-appearing white matter (NAWM).

A lesion is "bright" relative to the patient's own white matter, not in absolute scanner units. The
z-score map is

    z = (I - median_NAWM) / (1.4826 * MAD_NAWM)

where 1.4826 * MAD is the standard deviation of a normal distribution with that median absolute
deviation. The NAWM sample starts as the voxels inside the brain whose white-matter prior is high
(``wm_prior_min``, default 0.9: deep WM with little grey-matter or CSF partial volume). Lesions
inside it would pull the median up and widen the MAD, so the estimate is trimmed: voxels further than
``trim_z`` robust standard deviations from the current median (hyperintense lesions above, CSF
partial volume and enlarged ventricles below) are dropped and the median and MAD recomputed, a fixed
number of times (``n_trim_iterations``, default 2). Everything is deterministic.

The caller should correct the bias field (N4) first: the estimate is global, so a smooth receive-coil
field of +-10 % widens the NAWM spread and shifts lesions at the edges of the field of view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from imaging.errors import GeometryError, ImagingError
from imaging.image import MRImage, check_same_grid
from imaging.sequence import SequenceClass

__all__ = [
    "MAD_TO_SIGMA",
    "NawmNormalization",
    "NawmParams",
    "NormalizationError",
    "derived_image",
    "normalize_to_nawm",
    "robust_location_scale",
]

#: 1.4826 x MAD estimates the standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826

#: sqrt(pi / 2) x the mean absolute deviation does too (used when the MAD is 0: quantised data).
MEAN_ABS_TO_SIGMA = 1.2533


class NormalizationError(ImagingError):
    """Too little normal-appearing white matter to normalise the image."""


@dataclass(frozen=True)
class NawmParams:
    """Parameters of the NAWM estimate.

    Attributes
    ----------
    wm_prior_min : float
        Smallest white-matter prior probability (0..1) of a voxel in the NAWM sample.
    trim_z : float
        Voxels with ``|z| > trim_z`` under the current estimate are dropped before re-estimating
        (robust standard deviations).
    n_trim_iterations : int
        Number of trim-and-re-estimate passes after the first estimate.
    min_voxels : int
        Fewest NAWM voxels accepted; fewer raises :class:`NormalizationError`.
    """

    wm_prior_min: float = 0.9
    trim_z: float = 3.0
    n_trim_iterations: int = 2
    min_voxels: int = 200

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (to record with a result)."""
        return asdict(self)


@dataclass(frozen=True)
class NawmNormalization:
    """A NAWM z-score map and the estimate behind it.

    Attributes
    ----------
    zscore : MRImage
        float32 z-score map on the input grid (0 outside the brain).
    nawm_mask : MRImage
        uint8 mask of the voxels the final estimate used, on the input grid.
    median : float
        NAWM median, in the input's intensity units.
    sigma : float
        NAWM robust standard deviation (1.4826 x MAD), in the input's units.
    n_voxels : int
        Number of voxels in the final NAWM sample.
    """

    zscore: MRImage
    nawm_mask: MRImage
    median: float
    sigma: float
    n_voxels: int


def robust_location_scale(
    values: ArrayLike, *, trim_z: float = 3.0, n_trim_iterations: int = 2
) -> tuple[float, float, NDArray[np.bool_]]:
    """Median and 1.4826 x MAD of a sample, trimmed of outliers.

    Parameters
    ----------
    values : array_like, 1-D
        The sample (e.g. intensities of candidate NAWM voxels).
    trim_z : float
        Samples further than ``trim_z`` robust standard deviations from the median are dropped
        before each re-estimate.
    n_trim_iterations : int
        Number of trim-and-re-estimate passes.

    Returns
    -------
    median, sigma : float
        Location and robust scale of the kept samples (sigma is 0 for a constant sample only: when
        more than half of the samples share one value, as in coarsely quantised images, the MAD is 0
        and sigma comes from the mean absolute deviation instead).
    kept : ndarray of bool, same length as ``values``
        Which samples the final estimate used.

    Examples
    --------
    >>> sample = np.r_[np.arange(-50, 51) / 10.0, [500.0] * 5]
    >>> med, sigma, kept = robust_location_scale(sample)
    >>> med, int(kept.sum())
    (0.0, 101)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise NormalizationError("no samples to estimate a median from")
    kept = np.ones(x.shape, dtype=bool)
    median = float(np.median(x))
    sigma = _robust_spread(x, median)
    for _ in range(n_trim_iterations):
        if sigma <= 0:
            break
        new_kept = np.abs(x - median) <= trim_z * sigma
        if not new_kept.any() or np.array_equal(new_kept, kept):
            break
        kept = new_kept
        median = float(np.median(x[kept]))
        sigma = _robust_spread(x[kept], median)
    return median, sigma, kept


def _robust_spread(x: NDArray[np.float64], median: float) -> float:
    """1.4826 x MAD; on coarsely quantised samples, where more than half of the values share one
    level and the MAD is 0, sqrt(pi/2) x the mean absolute deviation from the median (also the
    standard deviation of a normal distribution) instead."""
    deviation = np.abs(x - median)
    mad = float(np.median(deviation))
    if mad > 0:
        return MAD_TO_SIGMA * mad
    return MEAN_ABS_TO_SIGMA * float(deviation.mean())


def derived_image(like: MRImage, data: NDArray[Any]) -> MRImage:
    """A derived 3-D map (class OTHER, no b-values) on the grid of ``like``, same acquisition."""
    return MRImage(data, like.affine, sequence=SequenceClass.OTHER, acquisition=like.acquisition)


def normalize_to_nawm(
    image: MRImage,
    brain_mask: MRImage,
    wm_prior: MRImage,
    *,
    params: NawmParams | None = None,
    exclude: NDArray[np.bool_] | None = None,
) -> NawmNormalization:
    """z-score an image on its normal-appearing white matter.

    Parameters
    ----------
    image : MRImage
        3-D image (e.g. bias-corrected FLAIR, or DWI b=1000), shape (I, J, K).
    brain_mask : MRImage
        Brain mask on the same grid (non-zero = brain).
    wm_prior : MRImage
        White-matter probability 0..1 on the same grid.
    params : NawmParams, optional
        Estimate parameters (defaults: :class:`NawmParams`).
    exclude : ndarray of bool, shape (I, J, K), optional
        Voxels never to use as NAWM (e.g. known CSF or artefacts).

    Returns
    -------
    NawmNormalization

    Raises
    ------
    GeometryError
        If the inputs are not 3-D or not on one grid.
    NormalizationError
        If fewer than ``params.min_voxels`` NAWM voxels remain, or their spread is zero.
    """
    params = params or NawmParams()
    if image.data.ndim != 3:
        raise GeometryError(f"normalise one 3-D volume at a time, got shape {image.shape}")
    check_same_grid(image, brain_mask=brain_mask, wm_prior=wm_prior)
    brain = np.asarray(brain_mask.data) > 0
    candidates = brain & (np.asarray(wm_prior.data, dtype=np.float32) >= params.wm_prior_min)
    if exclude is not None:
        candidates &= ~np.asarray(exclude, dtype=bool)
    values = np.asarray(image.data, dtype=np.float32)
    candidates &= np.isfinite(values)
    n_candidates = int(candidates.sum())
    if n_candidates < params.min_voxels:
        raise NormalizationError(
            f"only {n_candidates} brain voxels have a white-matter prior >= "
            f"{params.wm_prior_min} (need {params.min_voxels}); check that the brain mask and the "
            "white-matter prior are aligned with the image"
        )
    median, sigma, kept = robust_location_scale(
        values[candidates],
        trim_z=params.trim_z,
        n_trim_iterations=params.n_trim_iterations,
    )
    if not sigma > 0:
        raise NormalizationError(
            "normal-appearing white matter has no intensity spread (all its voxels have one "
            "value); the image is constant there: check that the right series was loaded"
        )
    nawm = np.zeros(values.shape, dtype=np.uint8)
    nawm[candidates] = kept.astype(np.uint8)
    n_voxels = int(nawm.sum())
    if n_voxels < params.min_voxels:
        raise NormalizationError(
            f"only {n_voxels} voxels are left in normal-appearing white matter after trimming "
            f"(need {params.min_voxels})"
        )
    z = np.where(brain, (values - np.float32(median)) / np.float32(sigma), np.float32(0.0))
    return NawmNormalization(
        zscore=derived_image(image, z.astype(np.float32)),
        nawm_mask=derived_image(image, nawm),
        median=median,
        sigma=sigma,
        n_voxels=n_voxels,
    )
