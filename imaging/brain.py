"""Head and brain masks from the image intensities (a first estimate, before template registration).

On a scan with scalp and skull, the brain is the largest mid-intensity body once thin connections
(meninges, vessels, optic nerves) are cut by an erosion; the dark skull separates it from the scalp.
This estimate is over-inclusive by design (Dice about 0.9 on the sample case); it initialises the
template registration (:mod:`imaging.template`), whose warped brain outline is the final mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from imaging.image import MRImage
from imaging.morphology import dilate_mm, erode_mm, fill_holes_2d3d, largest_component

__all__ = ["BrainEstimateParams", "estimate_brain", "head_mask"]


@dataclass(frozen=True)
class BrainEstimateParams:
    """Settings of :func:`estimate_brain` (lengths in mm).

    Attributes
    ----------
    smoothing_mm : float
        Gaussian sigma before thresholding.
    erosion_mm, dilation_mm : float
        The ball that cuts the brain from extracranial tissue, and the one that grows it back.
    bright_percentile : float
        Voxels above this percentile of the head (fat, vessels) are not brain tissue.
    """

    smoothing_mm: float = 1.0
    erosion_mm: float = 4.0
    dilation_mm: float = 5.0
    bright_percentile: float = 99.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return asdict(self)


def _smoothed(image: MRImage, sigma_mm: float) -> np.ndarray:
    data = np.asarray(image.data if image.data.ndim == 3 else image.data[..., 0], dtype=np.float32)
    return np.asarray(ndi.gaussian_filter(data, [sigma_mm / s for s in image.spacing_mm]))


def head_mask(image: MRImage, *, smoothing_mm: float = 1.0) -> MRImage:
    """The head (everything but the air around it), hole-filled: uint8 on ``image``'s grid."""
    smooth = _smoothed(image, smoothing_mm)
    positive = smooth[smooth > 0]
    threshold = 0.5 * threshold_otsu(positive) if positive.size else 0.0
    head = fill_holes_2d3d(largest_component(smooth > threshold))
    return image.with_data(head.astype(np.uint8), sequence="OTHER", bvals_s_mm2=None)


def estimate_brain(image: MRImage, *, params: BrainEstimateParams | None = None) -> MRImage:
    """A first, over-inclusive brain mask from intensities alone (uint8 on ``image``'s grid).

    Parameters
    ----------
    image : MRImage
        A FLAIR or b=0 image of a head (3-D; the first volume of 4-D data is used).
    params : BrainEstimateParams, optional
    """
    params = params or BrainEstimateParams()
    spacing = image.spacing_mm
    smooth = _smoothed(image, params.smoothing_mm)
    head = np.asarray(head_mask(image, smoothing_mm=params.smoothing_mm).data) > 0
    values = smooth[head]
    low = threshold_otsu(smooth[smooth > 0])
    high = np.percentile(values, params.bright_percentile)
    tissue = head & (smooth > low) & (smooth < high)
    core = largest_component(erode_mm(tissue, spacing, params.erosion_mm))
    brain = dilate_mm(core, spacing, params.dilation_mm) & head
    brain = fill_holes_2d3d(brain)
    return image.with_data(brain.astype(np.uint8), sequence="OTHER", bvals_s_mm2=None)
