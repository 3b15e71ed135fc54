"""The MNI152 2009a template shipped inside the nilearn wheel, and its registration to a scan.

One affine registration of the template T1 to the baseline FLAIR (or b=0) gives the brain mask, the
white-matter prior, the hemispheres and the regions of :mod:`imaging.regions` on every grid of a case.
Nothing is downloaded: the files are read from the installed nilearn package.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.regions import hemisphere_labels, region_labels
from imaging.register import Registration, RegistrationParams, register, resample

__all__ = [
    "TEMPLATE_REGISTRATION",
    "TEMPLATE_SPACING_MM",
    "Template",
    "TemplateFit",
    "fit_template",
    "mni_template",
]

#: Registration settings of the template fit (affine, brain-masked, sparse sampling).
TEMPLATE_REGISTRATION = RegistrationParams(
    shrink_factors=(2, 1),
    smoothing_sigmas_mm=(2.0, 1.0),
    learning_rate=0.5,
    iterations=100,
    sampling_fraction=0.05,
)

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass(frozen=True)
class Template:
    """The template at 1 mm: T1 (0-1), GM and WM probabilities (0-1), brain, regions, hemispheres."""

    t1: MRImage
    gm: MRImage
    wm: MRImage
    brain: MRImage
    regions: MRImage
    hemispheres: MRImage


def _data_folder() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImagingError("the nilearn package (which ships the MNI152 template) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    missing = [name for name in _FILES.values() if not (folder / name).is_file()]
    if missing:
        raise ImagingError(f"nilearn at {folder} lacks the template files {missing}; reinstall it")
    return folder


#: The template is used at this resolution (mm): ample for an affine fit and smooth priors.
TEMPLATE_SPACING_MM = 2


def _block_mean(data: NDArray[np.float32], factor: int) -> NDArray[np.float32]:
    """Mean over ``factor``-cubed blocks (the array is cropped to a multiple of ``factor``)."""
    shape = [n // factor for n in data.shape]
    cropped = data[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor]
    blocks = cropped.reshape(shape[0], factor, shape[1], factor, shape[2], factor)
    return np.asarray(blocks.mean(axis=(1, 3, 5)), dtype=np.float32)


@lru_cache(maxsize=1)
def mni_template() -> Template:
    """Load the template once per process, at :data:`TEMPLATE_SPACING_MM` (about 0.5 s).

    ``brain`` is the fraction (0-1) of each 2 mm voxel inside the 1 mm brain outline
    (T1 > 0 or GM + WM > 0.5, holes filled), so that a warped brain thresholded at 0.5 keeps
    sub-voxel accuracy.
    """
    folder = _data_folder()
    factor = TEMPLATE_SPACING_MM
    maps: dict[str, NDArray[np.float32]] = {}
    affine_1mm = np.eye(4)
    for key, name in _FILES.items():
        nifti = nib.load(folder / name)
        if not isinstance(nifti, nib.Nifti1Image):
            raise ImagingError(f"{name} is not a NIfTI image")
        maps[key] = np.asarray(nifti.dataobj, dtype=np.float32) / 255.0
        affine_1mm = nifti.affine
    brain_1mm = (maps["t1"] > 0) | (maps["gm"] + maps["wm"] > 0.5)
    brain_1mm = ndi.binary_fill_holes(brain_1mm).astype(np.float32)
    affine = affine_1mm.copy()
    affine[:3, :3] = affine_1mm[:3, :3] * factor
    affine[:3, 3] = affine_1mm[:3, 3] + affine_1mm[:3, :3] @ np.full(3, (factor - 1) / 2.0)
    t1 = MRImage(_block_mean(maps["t1"], factor), affine)
    brain = _block_mean(brain_1mm, factor)
    ijk = np.indices(t1.spatial_shape).reshape(3, -1).T
    xyz = t1.voxel_to_world_mm(ijk).reshape(*t1.spatial_shape, 3)
    inside = brain >= 0.5
    return Template(
        t1=t1,
        gm=t1.with_data(_block_mean(maps["gm"], factor)),
        wm=t1.with_data(_block_mean(maps["wm"], factor)),
        brain=t1.with_data(brain),
        regions=t1.with_data(np.where(inside, region_labels(xyz), 0).astype(np.uint8)),
        hemispheres=t1.with_data(np.where(inside, hemisphere_labels(xyz), 0).astype(np.uint8)),
    )


@dataclass(frozen=True)
class TemplateFit:
    """The template registered to one reference scan: ``registration.matrix`` maps the scan's
    world to MNI (fixed = scan, moving = template)."""

    registration: Registration

    def prior(
        self, reference: MRImage, name: str, *, to_mni: NDArray[np.float64] | None = None
    ) -> MRImage:
        """A template map on ``reference``'s grid: ``"wm"``, ``"gm"`` (probabilities, linear),
        ``"brain"`` (uint8 mask: warped fraction >= 0.5), ``"regions"``, ``"hemispheres"`` (labels,
        nearest). ``to_mni`` replaces the fit's own scan-to-MNI matrix for
        grids of another session or sequence (compose their transforms first)."""
        template = mni_template()
        source: MRImage = getattr(template, name)
        matrix = self.registration.matrix if to_mni is None else to_mni
        nearest = name in ("regions", "hemispheres")
        warped = resample(
            source, reference, matrix, interpolation="nearest" if nearest else "linear"
        )
        if name == "brain":
            return warped.with_data((np.asarray(warped.data) >= 0.5).astype(np.uint8))
        return warped


def fit_template(
    reference: MRImage,
    reference_brain: MRImage,
    *,
    params: RegistrationParams | None = None,
) -> TemplateFit:
    """Register the template T1 to ``reference`` (affine, mutual information, within a brain mask).

    Parameters
    ----------
    reference : MRImage
        The baseline FLAIR (bias-corrected), or a b=0 image when a case has no FLAIR.
    reference_brain : MRImage
        A brain mask on the reference grid (the intensity estimate of :mod:`imaging.brain`).
    """
    template = mni_template()
    registration = register(
        reference,
        template.t1,
        kind="affine",
        fixed_mask=reference_brain,
        moving_mask=template.brain.with_data(
            (np.asarray(template.brain.data) >= 0.5).astype(np.uint8)
        ),
        params=params or TEMPLATE_REGISTRATION,
    )
    return TemplateFit(registration)
