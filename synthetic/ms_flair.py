"""Synthetic MS FLAIRs built around real lesion shapes, with randomised contrast (FLAIR method cohort).

Independent of the patients the FLAIR method is validated on: the anatomy is the nilearn MNI152 2009a
template (GM, WM, CSF fractions), deformed per case by a random affine and a smooth random
displacement (so that the anatomy differs from the priors the method gets); the lesions are the
consensus expert masks of other MS patients (``open_ms_masks_mni``, 1 mm MNI grid), carried by the
same deformation. Per case, drawn at random:

* contrast: GM / WM ratio 0.95-1.35 (from FLAIRs where WM is as bright as cortex to 2D TIRM with
  bright cortex), CSF 0.05-0.3 of WM, lesion 1.2-1.6 x the brighter of WM and GM (the real FLAIRs of
  the issue: lesion median 1.30-1.37 x GM), each lesion +-10 % around that;
* tissue texture: a multiplicative smooth random field (SD 3-8 %, correlation 1.5 mm), residual bias
  (SD 0-5 %, correlation 40 mm), white noise (SD 2-6 % of WM);
* resolution: 1 mm 3D, or 2D with 3-4 mm axial slices (block average along z);
* scale (WM level 200-2000) and quantisation to integers, coarse (about 150 levels over the
  brain) in one case of four.

Truth definition: a voxel of the output grid is lesion when the lesion fraction inside it is at
least 0.5. The lesion fraction is the expert mask (1 mm) smoothed by a Gaussian of 0.5 mm (rounded
edges: partial volume at 1 mm), averaged over the output voxel. The image is rendered from the
same fractions: ``(1 - f) * tissue + f * lesion``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.image import MRImage
from imaging.sequence import SequenceClass
from imaging.template import mni_template
from synthetic.anatomy import load_template
from synthetic.fields import rng_for, smooth_noise

__all__ = [
    "MsFlairCase",
    "make_ms_flair",
    "rotation_xyz",
    "with_extra_noise",
    "with_symmetric_decoys",
]


@dataclass(frozen=True)
class MsFlairCase:
    """One synthetic FLAIR with its truth and the inputs the FLAIR method takes.

    Attributes
    ----------
    flair : MRImage
        The FLAIR (float32 holding integers), on the output grid.
    truth : MRImage
        uint8 lesion mask (lesion fraction >= 0.5) on the output grid.
    brain : MRImage
        uint8 brain mask (the deformed anatomy's brain) on the output grid.
    to_mni : ndarray, shape (4, 4)
        The affine part of the deformation (output world -> MNI world), the "template fit" a
        perfect affine registration would find; priors are resampled through it.
    contrast : dict
        The randomised settings of this case.
    """

    flair: MRImage
    truth: MRImage
    brain: MRImage
    to_mni: NDArray[np.float64]
    contrast: dict[str, Any] = field(default_factory=dict)


def _deformation(
    rng: np.random.Generator, shape: tuple[int, int, int], amplitude_mm: float
) -> NDArray[np.float32]:
    """A smooth random displacement field (voxels of a 1 mm grid), shape (3, I, J, K)."""
    return np.stack(
        [amplitude_mm * smooth_noise(rng, shape, sigma_vox=12.0, step=4) for _ in range(3)]
    ).astype(np.float32)


def rotation_xyz(angles_rad: NDArray[np.float64]) -> NDArray[np.float64]:
    """``Rx @ Ry @ Rz`` for angles (radians) about x, y and z, shape (3, 3): the pose rotation of
    :func:`make_ms_flair` (and of the registration error the classifier is trained with)."""
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    return np.asarray(
        np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    )


def make_ms_flair(
    lesion_mask: NDArray[np.bool_] | None,
    mask_affine: NDArray[np.float64],
    *,
    seed: int,
    slice_mm: float | None = None,
    coarse: bool | None = None,
    graded_rim_mm: float = 0.0,
) -> MsFlairCase:
    """Render one synthetic FLAIR around a real lesion mask (see the module docstring).

    Parameters
    ----------
    lesion_mask : ndarray of bool, shape (I, J, K), or None
        An expert lesion mask on a 1 mm MNI grid; None for a lesion-free control.
    mask_affine : ndarray, shape (4, 4)
        Its voxel-to-MNI matrix (also the 1 mm render grid).
    seed : int
        Random seed of the contrast, texture, noise and deformation.
    slice_mm : float, optional
        Thick axial slices (2D FLAIR) of this many mm; None draws 1 mm 3D or 3-4 mm 2D at random.
    coarse : bool, optional
        Coarse quantisation; None draws it (one case in four).
    graded_rim_mm : float
        Graded lesions: the lesion contrast rises from half at the lesion's edge to full at this
        depth (mm) inside it (T2 prolongation fading towards the rim, as in early or resolving
        lesions); 0 gives uniform lesions. The truth is unchanged (lesion fraction >= 0.5).

    Returns
    -------
    MsFlairCase
    """
    rng = rng_for(seed, "ms_flair")
    shape = (182, 218, 182) if lesion_mask is None else lesion_mask.shape
    assert len(shape) == 3
    shape3 = (int(shape[0]), int(shape[1]), int(shape[2]))
    # deformation: output (patient) world -> MNI world = affine part, plus a smooth residual
    rot = rotation_xyz(np.deg2rad(rng.uniform(-4, 4, 3)))
    to_mni = np.eye(4)
    to_mni[:3, :3] = rot @ np.diag(rng.uniform(0.93, 1.07, 3))
    to_mni[:3, 3] = rng.uniform(-3, 3, 3)
    displacement = _deformation(rng, shape3, amplitude_mm=float(rng.uniform(1.0, 2.5)))
    # the patient's anatomy at 1 mm: MNI maps pulled through to_mni and the displacement
    ijk = np.indices(shape3, dtype=np.float32)
    world = (
        np.einsum("ij,j...->i...", mask_affine[:3, :3], ijk) + mask_affine[:3, 3, None, None, None]
    )
    mni = np.einsum("ij,j...->i...", to_mni[:3, :3], world) + to_mni[:3, 3, None, None, None]
    mni = mni + displacement
    # tissue maps: sample the template through the deformed coordinates
    t1, gm, wm, template_affine = load_template()
    brain_t = ndi.binary_fill_holes((t1 > 0) | (gm + wm > 0.5)).astype(np.float32)
    inv = np.linalg.inv(template_affine)
    src = np.einsum("ij,j...->i...", inv[:3, :3], mni) + inv[:3, 3, None, None, None]
    tissue = {
        name: ndi.map_coordinates(vol, src.reshape(3, -1), order=1).reshape(shape3)
        for name, vol in (("gm", gm), ("wm", wm), ("brain", brain_t))
    }
    brain = tissue["brain"] >= 0.5
    csf = np.clip(tissue["brain"] - tissue["gm"] - tissue["wm"], 0.0, 1.0)
    # lesions: the expert mask is in (its patient's) MNI space: pull it through the same mapping
    if lesion_mask is not None and lesion_mask.any():
        inv_mask = np.linalg.inv(mask_affine)
        msrc = np.einsum("ij,j...->i...", inv_mask[:3, :3], mni) + inv_mask[:3, 3, None, None, None]
        soft = ndi.gaussian_filter(lesion_mask.astype(np.float32), 0.5)
        fraction = ndi.map_coordinates(soft, msrc.reshape(3, -1), order=1).reshape(shape3)
        fraction = np.where(brain, np.clip(fraction, 0.0, 1.0), 0.0).astype(np.float32)
        labels, n = ndi.label(fraction > 0.05, structure=np.ones((3, 3, 3)))
        per_lesion = rng.uniform(0.9, 1.1, n + 1).astype(np.float32)
    else:
        fraction = np.zeros(shape3, np.float32)
        labels, per_lesion = np.zeros(shape3, np.int32), np.ones(1, np.float32)
    settings = {
        "gm_over_wm": float(rng.uniform(0.95, 1.35)),
        "csf_over_wm": float(rng.uniform(0.05, 0.3)),
        "lesion_over_tissue": float(rng.uniform(1.2, 1.6)),
        "texture_sd": float(rng.uniform(0.03, 0.08)),
        "bias_sd": float(rng.uniform(0.0, 0.05)),
        "noise_sd": float(rng.uniform(0.02, 0.06)),
        "wm_level": float(rng.uniform(200, 2000)),
    }
    if slice_mm is None:
        slice_mm = float(rng.choice([1.0, 3.0, 4.0], p=[0.5, 0.25, 0.25]))
    settings["slice_mm"] = slice_mm
    settings["coarse"] = bool(rng.uniform() < 0.25) if coarse is None else coarse
    g, c = settings["gm_over_wm"], settings["csf_over_wm"]
    tissue_level = tissue["wm"] * 1.0 + tissue["gm"] * g + csf * c
    tissue_level *= 1.0 + settings["texture_sd"] * smooth_noise(rng, shape3, 1.5, step=1)
    lesion_level = settings["lesion_over_tissue"] * max(1.0, g) * per_lesion[labels]
    if graded_rim_mm > 0:
        depth = ndi.distance_transform_edt(fraction >= 0.5)
        weight = np.clip(0.5 + 0.5 * depth / graded_rim_mm, 0.5, 1.0)
        lesion_level = tissue_level + (lesion_level - tissue_level) * weight
    image = (1.0 - fraction) * tissue_level + fraction * lesion_level
    image *= np.exp(settings["bias_sd"] * smooth_noise(rng, shape3, 40.0, step=4))
    image = np.where(brain, image, 0.0).astype(np.float32)
    # acquisition: thick slices (mean over the slice), then noise on the acquired grid
    affine = np.array(mask_affine, dtype=np.float64)
    factor = round(slice_mm)
    if factor > 1:
        nz = shape3[2] // factor
        image = image[:, :, : nz * factor].reshape(shape3[0], shape3[1], nz, factor).mean(axis=3)
        fraction = (
            fraction[:, :, : nz * factor].reshape(shape3[0], shape3[1], nz, factor).mean(axis=3)
        )
        brain_frac = brain[:, :, : nz * factor].reshape(shape3[0], shape3[1], nz, factor)
        brain = brain_frac.mean(axis=3) >= 0.5
        affine[:3, 2] = mask_affine[:3, 2] * factor
        affine[:3, 3] = mask_affine[:3, 3] + mask_affine[:3, 2] * (factor - 1) / 2.0
    noise = rng.normal(0.0, settings["noise_sd"], image.shape).astype(np.float32)
    image = np.where(brain, image + noise, 0.0) * settings["wm_level"]
    if settings["coarse"]:
        step = float(np.percentile(image[brain], 99.5)) / 150.0
        image = np.round(image / step) * step
    image = np.round(np.clip(image, 0, None)).astype(np.float32)
    truth = (fraction >= 0.5).astype(np.uint8)
    # the world of the output grid is the patient's; to_mni maps it to MNI (affine part only)
    return MsFlairCase(
        flair=MRImage(image, affine, sequence=SequenceClass.FLAIR),
        truth=MRImage(truth, affine),
        brain=MRImage(brain.astype(np.uint8), affine),
        to_mni=to_mni,
        contrast=settings,
    )


def with_symmetric_decoys(
    flair: MRImage, brain: MRImage, to_mni: np.ndarray, rng: np.random.Generator
) -> MRImage:
    """The FLAIR with 0-4 pairs of normal FLAIR-bright structures, labelled not-lesion.

    Real FLAIRs show normal bright white matter that the MNI tissue maps do not hold: the
    corticospinal tracts, periventricular caps, the septal region. Each decoy is a tube (length
    15-45 mm, radius 2.5-5 mm, mostly cranio-caudal) in template white matter, brightened by 5-25 %,
    with its mirror image across the midsagittal plane (a pair), or one tube on the midline.
    """
    n_pairs = int(rng.integers(0, 5))
    if n_pairs == 0:
        return flair
    shape = flair.spatial_shape
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = flair.affine[:3, :3] @ ijk + flair.affine[:3, 3, None]
    mni = (to_mni[:3, :3] @ world + to_mni[:3, 3, None]).astype(np.float32)
    template = mni_template()
    wm = template.wm
    candidates = np.argwhere(np.asarray(wm.data) > 0.7)
    gain = np.zeros(mni.shape[1], dtype=np.float32)
    for _ in range(n_pairs):
        voxel = candidates[rng.integers(len(candidates))]
        centre = (wm.affine[:3, :3] @ voxel + wm.affine[:3, 3]).astype(np.float32)
        direction = np.array([rng.normal(0, 0.4), rng.normal(0, 0.4), 1.0], dtype=np.float32)
        midline = rng.uniform() < 0.25
        if midline:
            centre[0], direction[0] = 0.0, 0.0
        direction /= np.linalg.norm(direction)
        length, radius = rng.uniform(15, 45), rng.uniform(2.5, 5.0)
        amplitude = rng.uniform(0.05, 0.25)
        for sign in (1.0,) if midline else (1.0, -1.0):
            point = mni.copy()
            point[0] *= sign
            start = centre - direction * length / 2
            t = np.clip(direction @ (point - start[:, None]), 0.0, length)
            nearest = start[:, None] + direction[:, None] * t
            distance2 = ((point - nearest) ** 2).sum(axis=0)
            gain = np.maximum(gain, amplitude * np.exp(-distance2 / (2 * radius**2)))
    inside = np.asarray(brain.data) > 0
    data = np.asarray(flair.data, dtype=np.float32) * (1.0 + gain.reshape(shape))
    return flair.with_data(np.where(inside, np.round(data), 0.0).astype(np.float32))


def with_extra_noise(
    flair: MRImage,
    brain: MRImage,
    contrast: dict[str, Any],
    rng: np.random.Generator,
    max_sd: float = 0.10,
) -> MRImage:
    """The FLAIR with further white noise, SD 0-``max_sd`` of the white-matter level, in the brain.

    The generator's own noise (2-6 %) is that of a good 3D FLAIR; clinical FLAIRs are often noisier
    (thin slices, high acceleration), so the classifier must not trust single-voxel contrast.
    """
    sd = float(rng.uniform(0.0, max_sd)) * float(contrast["wm_level"])
    inside = np.asarray(brain.data) > 0
    data = np.asarray(flair.data, dtype=np.float32)
    noisy = data + rng.normal(0.0, sd, data.shape).astype(np.float32)
    return flair.with_data(
        np.where(inside, np.round(np.clip(noisy, 0, None)), 0.0).astype(np.float32)
    )
