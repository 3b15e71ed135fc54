"""Head anatomy in template space: the MNI152 2009a brain plus a synthetic skull and scalp.

The brain (grey matter, white matter and cerebrospinal fluid fractions) comes from the MNI152
2009a symmetric template files shipped inside the nilearn wheel (1 mm, 197 x 233 x 189, RAS,
skull-stripped). Everything outside the brain is built here from distances to a smoothed brain
outline: a thin subarachnoid CSF rim, the skull (inner table, fatty diploe, outer table), a
galea/temporalis muscle layer, subcutaneous fat and skin. Below the skull base a simple neck
(muscle wrapped in fat and skin) closes the head.

All volumes live on the *model grid*: the template grid padded so that the scalp fits, 1 mm,
RAS, affine :attr:`Anatomy.affine` (voxel -> template RAS mm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from scipy import ndimage

from synthetic.fields import smooth_noise

#: Tissue classes of the model, in the order of :attr:`Anatomy.fractions`.
TISSUES = ("csf", "gm", "wm", "bone", "marrow", "muscle", "fat", "skin")

#: Padding of the template grid in voxels: ((x-, x+), (y-, y+), (z-, z+)).
PAD = ((12, 12), (16, 14), (30, 6))


def template_dir() -> Path:
    """Folder of the MNI152 2009a files inside the installed nilearn package."""
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data"


def load_template() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the MNI152 2009a T1, GM and WM maps from the nilearn wheel (no network).

    Returns
    -------
    t1, gm, wm : numpy.ndarray
        float32 arrays of shape (197, 233, 189); ``gm`` and ``wm`` are probabilities in [0, 1],
        ``t1`` is the raw 0-255 intensity (0 outside the brain).
    affine : numpy.ndarray
        4x4 template affine (voxel -> MNI RAS mm).
    """
    folder = template_dir()
    out = []
    affine = None
    for name in ("t1", "gm", "wm"):
        img = cast(
            nib.Nifti1Image,
            nib.load(folder / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"),
        )
        out.append(np.asarray(img.dataobj, dtype=np.float32))
        affine = img.affine
    t1, gm, wm = out
    return t1, gm / 255.0, wm / 255.0, np.asarray(affine)


@dataclass
class Anatomy:
    """Tissue model of one head on the padded 1 mm model grid.

    Attributes
    ----------
    fractions : numpy.ndarray
        float32, shape (8, X, Y, Z): volume fraction of each tissue in :data:`TISSUES`; the
        remainder to 1 is air.
    brain_mask : numpy.ndarray
        float32, shape (X, Y, Z): the true brain (template brain outline, parenchyma plus
        ventricles and sulcal CSF inside it), 1 inside, 0 outside, soft at the edge.
    affine : numpy.ndarray
        4x4 affine of the model grid (voxel -> template RAS mm).
    template_affine : numpy.ndarray
        4x4 affine of the unpadded template grid.
    template_slices : tuple of slice
        Index of the unpadded template inside the model grid.
    """

    fractions: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray
    template_affine: np.ndarray
    template_slices: tuple[slice, slice, slice]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Model grid shape ``(X, Y, Z)``."""
        x, y, z = self.brain_mask.shape
        return (x, y, z)

    def tissue(self, name: str) -> np.ndarray:
        """Fraction volume of one tissue class, shape (X, Y, Z)."""
        return self.fractions[TISSUES.index(name)]

    def mm_coordinates(self, box: tuple[slice, slice, slice]) -> list[np.ndarray]:
        """Template RAS coordinates (mm) of the voxels in a box of the model grid.

        Parameters
        ----------
        box : tuple of slice
            Index box into the model grid.

        Returns
        -------
        list of numpy.ndarray
            ``[x, y, z]`` broadcastable arrays with the box's shape.
        """
        axes = []
        for dim, sl in enumerate(box):
            idx = np.arange(sl.start, sl.stop, dtype=np.float32)
            shape = [1, 1, 1]
            shape[dim] = -1
            axes.append((idx * self.affine[dim, dim] + self.affine[dim, 3]).reshape(shape))
        return axes


def _layer(dist: np.ndarray, inner: np.ndarray | float, outer: np.ndarray | float) -> np.ndarray:
    """Soft (1 voxel ramp) fraction of the shell ``inner <= dist < outer``."""
    return np.clip(dist - inner + 0.5, 0, 1) - np.clip(dist - outer + 0.5, 0, 1)


def _outside_distance(mask: np.ndarray, step: int = 2) -> np.ndarray:
    """Distance (mm) from a binary mask, computed at ``step`` mm and interpolated back."""
    small = mask[::step, ::step, ::step]
    dist = ndimage.distance_transform_edt(~small).astype(np.float32) * step
    zoomed = ndimage.zoom(dist, step, order=1, grid_mode=False)
    out = np.full(mask.shape, dist.max(), np.float32)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(mask.shape, zoomed.shape, strict=True))
    out[sl] = zoomed[sl]
    return out


def build_anatomy(rng: np.random.Generator) -> Anatomy:
    """Build the head model: template brain plus synthetic CSF rim, skull, scalp and neck.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the smooth random variations of skull and scalp thickness.

    Returns
    -------
    Anatomy
        The tissue model on the padded model grid.
    """
    t1, gm, wm, tpl_affine = load_template()
    brain = (t1 > 0) | (gm + wm > 0.5)
    brain = ndimage.binary_fill_holes(brain)
    brain_mask = np.pad(brain, PAD).astype(np.float32)
    # extrude the medulla below the template's lower edge (spinal cord into the neck)
    pad = PAD
    gm_p = np.pad(gm, pad)
    wm_p = np.pad(wm, pad)
    brain_p = np.pad(brain, pad)
    z0 = pad[2][0]
    bottom = brain_p[:, :, z0]
    lab, n = ndimage.label(bottom)
    if n:
        sizes = ndimage.sum(bottom, lab, range(1, n + 1))
        cord = lab == (1 + int(np.argmax(sizes)))
        cord = ndimage.binary_erosion(cord, iterations=1)
        for z in range(z0):
            brain_p[:, :, z] = cord
            wm_p[:, :, z] = np.where(cord, 0.85, 0.0)
            gm_p[:, :, z] = np.where(cord, 0.15, 0.0)
    gm_p *= brain_p
    wm_p *= brain_p
    csf_in = np.clip(1.0 - gm_p - wm_p, 0.0, 1.0) * brain_p

    affine = tpl_affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.array([p[0] for p in pad], float)
    shape = brain_p.shape

    # inner skull surface: the brain outline with sulci closed over (6 mm closing); outer skull
    # surface and scalp: a much smoother outline (16 mm closing), so that the skull base fills
    # the gaps between temporal lobes, cerebellum and frontal lobes with bone.
    d_brain = _outside_distance(brain_p)
    closed = (_outside_distance(~(d_brain <= 6.0)) > 6.0) | brain_p
    closed_big = (_outside_distance(~(d_brain <= 16.0)) > 16.0) | closed
    d1 = _outside_distance(closed)
    d2 = _outside_distance(closed_big)
    del d_brain, closed, closed_big

    var = [smooth_noise(rng, shape, sigma_vox=12.0, step=4) for _ in range(3)]
    x, y, z = (
        np.arange(n_, dtype=np.float32) * affine[d, d] + affine[d, 3] for d, n_ in enumerate(shape)
    )
    zz = z[None, None, :]
    xx = x[:, None, None]
    rim = 1.8 + 0.5 * var[0]
    t_skull = rim + 6.0 + 0.9 * var[1]
    # temporalis muscle: thicker laterally above the ear
    temporal = 5.5 * np.exp(-(((zz - 5.0) / 22.0) ** 2)) * np.clip((np.abs(xx) - 35) / 25, 0, 1)
    t_muscle = t_skull + 1.2 + temporal
    t_fat = t_muscle + 3.2 + 1.0 * var[2]
    t_skin = t_fat + 1.6
    del var

    skull = np.clip(d1 - rim + 0.5, 0, 1) * (1.0 - np.clip(d2 - t_skull + 0.5, 0, 1))
    inner_table = skull * (1.0 - np.clip(d1 - rim - 1.6 + 0.5, 0, 1))
    outer_table = (skull - inner_table) * np.clip(d2 - t_skull + 1.6 + 0.5, 0, 1)
    marrow = np.clip(skull - inner_table - outer_table, 0, 1)
    # diploe only in the vault; the thick skull base (inside the smooth outline) is dark
    deep = np.maximum(np.clip((d1 - rim - 7.0) / 2.0, 0, 1), 1.0 - np.clip(d2 - 0.5, 0, 1))
    fr = np.zeros((len(TISSUES), *shape), np.float32)
    fr[TISSUES.index("csf")] = csf_in + _layer(d1, -0.5, rim) * (1 - brain_p)
    fr[TISSUES.index("gm")] = gm_p
    fr[TISSUES.index("wm")] = wm_p
    fr[TISSUES.index("bone")] = inner_table + outer_table + marrow * deep
    fr[TISSUES.index("marrow")] = marrow * (1 - deep)
    fr[TISSUES.index("muscle")] = _layer(d2, t_skull, t_muscle)
    fr[TISSUES.index("fat")] = _layer(d2, t_muscle, t_fat)
    fr[TISSUES.index("skin")] = _layer(d2, t_fat, t_skin)
    del d1, d2, skull, inner_table, outer_table, marrow, deep

    # neck below the skull base: muscle, wrapped in fat and skin
    yy = y[None, :, None]
    r_neck = np.sqrt((xx / 52.0) ** 2 + ((yy + 30.0) / 50.0) ** 2) * 50.0
    below = np.clip((-38.0 - zz) / 8.0, 0, 1)
    head_sum = fr.sum(axis=0)
    free = np.clip(1.0 - head_sum, 0, 1)
    neck_muscle = np.clip(44.0 - r_neck + 0.5, 0, 1) * below * free
    neck_fat = _layer(r_neck, 44.0, 48.0) * below * free
    neck_skin = _layer(r_neck, 48.0, 49.8) * below * free
    fr[TISSUES.index("muscle")] += neck_muscle
    fr[TISSUES.index("fat")] += neck_fat
    fr[TISSUES.index("skin")] += neck_skin
    total = fr.sum(axis=0)
    fr /= np.maximum(total, 1.0)[None]

    tpl_sl = tuple(slice(p[0], p[0] + n_) for p, n_ in zip(pad, t1.shape, strict=True))
    return Anatomy(
        fractions=fr,
        brain_mask=brain_mask,
        affine=affine,
        template_affine=tpl_affine,
        template_slices=tpl_sl,  # type: ignore[arg-type]
    )
