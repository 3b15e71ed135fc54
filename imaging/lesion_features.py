"""Per-voxel features of a FLAIR for the learned lesion classifier (``voxel-classifier`` engine).

The same function computes the features when the classifier is trained (on synthetic FLAIRs,
``scripts/train_flair_classifier.py``) and when it segments, so the two cannot drift apart. Every
intensity feature is a ratio to this image's own tissue levels (white matter, grey matter), so the
classifier sees contrast, not scanner units; spatial features are the template priors and the
distance to the brain's edge in mm, so it sees where a voxel is, not on which grid.

Features (in :data:`FEATURE_NAMES` order), for each brain voxel:

* ``ratio_wm``: intensity / white-matter level (median over WM prior >= 0.9);
* ``smooth1_wm``, ``smooth2_wm``: the same after a Gaussian of 1 and 2.5 mm (noise averaged);
* ``local8_wm``, ``local20_wm``: ``smooth1_wm`` minus the local white-matter level around the voxel
  (normalised convolution over WM-prior voxels, Gaussian of 8 and 20 mm): contrast to nearby
  tissue, immune to residual bias;
* ``z_wm``: (intensity - WM level) / WM spread (1.4826 MAD): the contrast in units of this image's
  noise and texture;
* ``ratio_gm``: intensity / grey-matter level (median over GM prior >= 0.7);
* ``gm_over_wm``: the image's grey / white level ratio (one value per image: the contrast regime);
* ``wm_prior``, ``gm_prior``, ``lesion_prior``: the registered template and lesion-frequency maps;
* ``edge_mm``: distance to the brain mask's edge (mm, capped at 40);
* ``slice_mm``: the largest voxel spacing (partial volume along thick slices);
* ``asymmetry_wm``: ``smooth1_wm`` minus the 2.5 mm-smoothed ratio at the voxel's mirror image
  across the template's midsagittal plane (MNI x = 0): normal FLAIR-bright structures (the
  corticospinal tracts, periventricular caps, the septal region) come in symmetric pairs or sit on
  the midline, MS and toxic lesions mostly do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging.filters import local_mean, masked_smooth, mirrored_across_midline
from imaging.image import MRImage, check_same_grid
from imaging.morphology import bounding_box, distance_inside_mm
from imaging.normalize import NormalizationError

__all__ = ["FEATURE_NAMES", "FlairFeatures", "flair_features"]

FEATURE_NAMES: tuple[str, ...] = (
    "ratio_wm",
    "smooth1_wm",
    "smooth2_wm",
    "local8_wm",
    "local20_wm",
    "z_wm",
    "ratio_gm",
    "gm_over_wm",
    "wm_prior",
    "gm_prior",
    "lesion_prior",
    "edge_mm",
    "slice_mm",
    "asymmetry_wm",
)

#: Voxels with at least these prior values sample the white and grey matter levels.
WM_CORE = 0.9
GM_CORE = 0.7


@dataclass(frozen=True)
class FlairFeatures:
    """The feature matrix of one FLAIR and where its rows sit.

    Attributes
    ----------
    values : ndarray of float32, shape (n_voxels, n_features)
        One row per brain voxel inside ``box``, columns in :data:`FEATURE_NAMES` order.
    inside : ndarray of bool, shape of the box
        Which voxels of the box are rows (the brain mask, cropped).
    box : tuple of slice
        The brain's bounding box on the FLAIR grid.
    wm_level, gm_level, wm_spread : float
        The tissue levels measured (FLAIR units).
    """

    values: NDArray[np.float32]
    inside: NDArray[np.bool_]
    box: tuple[slice, slice, slice]
    wm_level: float
    gm_level: float
    wm_spread: float

    def to_volume(
        self, column: NDArray[Any], shape: tuple[int, ...], fill: float = 0.0
    ) -> NDArray[Any]:
        """Scatter one value per row back onto the full grid, ``fill`` elsewhere."""
        volume = np.full(shape, fill, dtype=np.asarray(column).dtype)
        part = volume[self.box]
        part[self.inside] = column
        return volume


def _level(values: NDArray[Any], what: str) -> float:
    if values.size < 200:
        raise NormalizationError(
            f"too few {what} voxels ({values.size}) to measure its FLAIR level: check the brain "
            "mask and the template fit"
        )
    return float(np.median(values))


def flair_features(
    flair: MRImage,
    brain: MRImage,
    wm_prior: MRImage,
    gm_prior: MRImage,
    lesion_prior: MRImage | None,
    to_mni: NDArray[np.float64] | None = None,
) -> FlairFeatures:
    """The classifier's features of every brain voxel (see the module docstring).

    Parameters
    ----------
    flair : MRImage
        3-D FLAIR, any units, bias-corrected, shape (I, J, K).
    brain : MRImage
        Brain mask on the FLAIR grid.
    wm_prior, gm_prior : MRImage
        White- and grey-matter probability (0..1) on the FLAIR grid.
    lesion_prior : MRImage or None
        Lesion frequency (0..1) on the FLAIR grid; zeros when absent.
    to_mni : ndarray, shape (4, 4), optional
        FLAIR world -> MNI world (the template fit); None when the FLAIR is in MNI space.

    Returns
    -------
    FlairFeatures

    Raises
    ------
    NormalizationError
        Too few white- or grey-matter voxels, or no white-matter spread, to set the scale.
    """
    check_same_grid(
        flair, brain=brain, wm_prior=wm_prior, gm_prior=gm_prior, lesion_prior=lesion_prior
    )
    mask = np.asarray(brain.data) > 0
    if not mask.any():
        raise NormalizationError("the brain mask is empty: no FLAIR features to compute")
    box = bounding_box(mask, margin=2)
    inside = mask[box]
    spacing = flair.spacing_mm
    image = np.asarray(flair.data, dtype=np.float32)[box]
    wm = np.asarray(wm_prior.data, dtype=np.float32)[box]
    gm = np.asarray(gm_prior.data, dtype=np.float32)[box]
    prior = (
        np.zeros_like(image)
        if lesion_prior is None
        else np.asarray(lesion_prior.data, dtype=np.float32)[box]
    )
    wm_core = inside & (wm >= WM_CORE)
    gm_core = inside & (gm >= GM_CORE)
    wm_level = _level(image[wm_core], "white-matter")
    gm_level = _level(image[gm_core], "grey-matter")
    if wm_level <= 0:
        raise NormalizationError("the white-matter level of this FLAIR is not positive")
    spread = 1.4826 * float(np.median(np.abs(image[wm_core] - wm_level)))
    if spread <= 0:  # coarse quantisation: fall back on the interquartile range, then one step
        q25, q75 = np.percentile(image[wm_core], [25, 75])
        spread = float(q75 - q25) / 1.349 or float(np.std(image[wm_core]))
    if spread <= 0:
        raise NormalizationError("the white matter of this FLAIR has no spread (constant image?)")
    ratio = np.where(inside, image / wm_level, 0.0).astype(np.float32)
    smooth1 = masked_smooth(ratio, inside, 1.0, spacing)
    smooth2 = masked_smooth(ratio, inside, 2.5, spacing)
    sample = wm_core
    local8 = local_mean(smooth1, sample, 1.0, 8.0, spacing, min_weight=0.02)
    local20 = local_mean(smooth1, sample, 1.0, 20.0, spacing, min_weight=0.02)
    edge = np.minimum(distance_inside_mm(inside, spacing), 40.0)
    mirrored = mirrored_across_midline(smooth2, flair.affine, box, to_mni, outside=1.0)
    columns = (
        ratio,
        smooth1,
        smooth2,
        smooth1 - local8,
        smooth1 - local20,
        (image - wm_level) / spread,
        image / gm_level,
        np.full(image.shape, gm_level / wm_level, np.float32),
        wm,
        gm,
        prior,
        edge,
        np.full(image.shape, max(spacing), np.float32),
        smooth1 - mirrored,
    )
    values = np.stack([np.asarray(c, np.float32)[inside] for c in columns], axis=1)
    return FlairFeatures(values, inside, box, wm_level, gm_level, spread)
