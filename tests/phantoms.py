"""A brain-like phantom on an anisotropic, non-cubic grid, with an optional lesion box whose faces
hold partial-volume fractions: the FLAIR methods' shared test object."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from imaging.image import MRImage

SPACING = (0.9, 1.1, 3.0)
SHAPE = (70, 60, 22)
LEVELS = {"csf": 20.0, "gm": 112.0, "wm": 100.0, "lesion": 140.0}
#: The lesion box, mm along i, j, k from the grid origin (edges fall inside voxels, so that the
#: boundary voxels hold lesion fractions below and above 0.5).
LESION_BOX_MM = ((24.3, 36.65), (34.0, 46.6), (26.0, 41.4))


def _overlap_1d(n: int, step: float, low: float, high: float) -> np.ndarray:
    """Fraction of each voxel [i*step - step/2, i*step + step/2] inside [low, high]."""
    centres = np.arange(n) * step
    lo = np.maximum(centres - step / 2, low)
    hi = np.minimum(centres + step / 2, high)
    return np.clip(hi - lo, 0.0, None) / step


def brain_phantom(
    *, lesion: bool, seed: int = 3
) -> tuple[MRImage, MRImage, MRImage, MRImage, MRImage, np.ndarray]:
    """A brain-like phantom: WM core, 5 mm GM shell, a CSF 'ventricle', optional lesion box.

    Returns flair, brain, wm prior, gm prior, lesion prior and the lesion fraction per voxel.
    """
    affine = np.diag([*SPACING, 1.0])
    ijk = np.indices(SHAPE).astype(float)
    xyz = [ijk[a] * SPACING[a] for a in range(3)]
    centre = [(n - 1) * s / 2 for n, s in zip(SHAPE, SPACING, strict=True)]
    radii = [28.0, 30.0, 30.0]
    r = np.sqrt(sum(((xyz[a] - centre[a]) / radii[a]) ** 2 for a in range(3)))
    brain = r <= 1.0
    depth = ndi.distance_transform_edt(brain, sampling=SPACING)
    gm = brain & (depth <= 5.0)
    csf = (
        (np.abs(xyz[0] - centre[0]) <= 4)
        & (np.abs(xyz[1] - centre[1] + 8) <= 8)
        & (np.abs(xyz[2] - centre[2]) <= 12)
    )
    wm = brain & ~gm & ~csf
    fraction = np.zeros(SHAPE)
    if lesion:
        parts = [_overlap_1d(SHAPE[a], SPACING[a], *LESION_BOX_MM[a]) for a in range(3)]
        fraction = parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
    tissue = LEVELS["wm"] * wm + LEVELS["gm"] * gm + LEVELS["csf"] * csf
    image = (1 - fraction) * tissue + fraction * LEVELS["lesion"]
    rng = np.random.default_rng(seed)
    image = np.where(brain, image + rng.normal(0, 3.0, SHAPE), 0.0).astype(np.float32)
    wm_prior = ndi.gaussian_filter(wm.astype(float), 1.0)
    gm_prior = ndi.gaussian_filter(gm.astype(float), 1.0)
    lesion_prior = 0.1 * ndi.gaussian_filter((depth > 8.0).astype(float), 2.0)

    def image_of(data: np.ndarray, dtype: type = np.float32) -> MRImage:
        return MRImage(np.asarray(data, dtype=dtype), affine)

    return (
        image_of(image),
        image_of(brain, np.uint8),
        image_of(wm_prior),
        image_of(gm_prior),
        image_of(lesion_prior),
        fraction,
    )
