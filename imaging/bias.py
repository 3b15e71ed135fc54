"""N4 bias-field correction (Tustison et al. 2010) with SimpleITK."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from imaging.image import MRImage
from imaging.sitk_bridge import to_sitk

__all__ = ["N4Params", "correct_bias"]


@dataclass(frozen=True)
class N4Params:
    """Settings of :func:`correct_bias`.

    Attributes
    ----------
    fit_spacing_mm : float
        The field is fitted on the image shrunk (by whole factors per axis) to about this voxel size,
        then evaluated at full resolution; the field is smooth, so a coarse fit loses nothing.
    iterations : tuple of int
        Iterations per fitting level (one entry per level).
    convergence_threshold : float
    spline_distance_mm : float
        Distance between B-spline control points of the field.
    """

    fit_spacing_mm: float = 8.0
    iterations: tuple[int, ...] = (25,)
    convergence_threshold: float = 1e-4
    spline_distance_mm: float = 100.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return asdict(self)


def correct_bias(
    image: MRImage, mask: MRImage | None = None, *, params: N4Params | None = None
) -> tuple[MRImage, MRImage]:
    """Remove the smooth multiplicative bias field of a 3-D image.

    Parameters
    ----------
    image : MRImage
        A 3-D image (e.g. FLAIR or b=0).
    mask : MRImage, optional
        Where to fit the field (e.g. the head or brain mask); the whole image when absent.
    params : N4Params, optional

    Returns
    -------
    (MRImage, MRImage)
        The corrected image (float32) and the bias field (float32, mean 1 inside the mask) on the
        same grid. Apply ``image / field`` to other images of the same acquisition.
    """
    params = params or N4Params()
    data = np.asarray(image.data, dtype=np.float32)
    offset = float(min(0.0, data.min()))  # N4 works on log intensities: keep them positive
    source = to_sitk(image.with_data(data - offset + 1.0))
    fit_mask = (
        to_sitk(mask, dtype=np.uint8)
        if mask is not None
        else sitk.Cast(source > float(np.percentile(data, 10)), sitk.sitkUInt8)
    )
    shrink = [max(1, round(params.fit_spacing_mm / s)) for s in image.spacing_mm]
    small = sitk.Shrink(source, shrink)
    small_mask = sitk.Shrink(fit_mask, shrink)
    physical = np.asarray(small.GetSpacing()) * np.asarray(small.GetSize())
    control_points = [max(round(p / params.spline_distance_mm) + 3, 4) for p in physical]
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(list(params.iterations))
    corrector.SetConvergenceThreshold(params.convergence_threshold)
    corrector.SetNumberOfControlPoints(control_points)
    corrector.Execute(small, small_mask)
    log_field = corrector.GetLogBiasFieldAsImage(source)
    field = np.exp(sitk.GetArrayFromImage(log_field).transpose(2, 1, 0)).astype(np.float32)
    inside = np.asarray(sitk.GetArrayFromImage(fit_mask).transpose(2, 1, 0)) > 0
    field /= float(np.mean(field[inside])) if inside.any() else 1.0
    corrected = (data / field).astype(np.float32)
    return image.with_data(corrected), image.with_data(field, sequence="OTHER", bvals_s_mm2=None)
