"""Lesion segmentation on FLAIR (white matter) and on diffusion (DWI trace + ADC, or the trace alone).

Both methods are classical (no trained weights), deterministic, and work on the input grid: no
resampling, masks come back on the grid they were computed on. z-scores are in robust standard
deviations of normal-appearing white matter (NAWM, :mod:`imaging.normalize`).

FLAIR lesions (:func:`segment_flair_lesions`)
---------------------------------------------
1. **Normalise** the bias-corrected FLAIR on NAWM: ``z = (I - median) / (1.4826 MAD)``, with
   hyperintense outliers trimmed from the estimate.
2. **Where lesions may be**: white matter (template prior ``>= wm_prior_min``, dilated by
   ``wm_dilation_mm`` so that periventricular and juxtacortical lesions at the edge of the template's
   white matter are not cut), deeper than ``edge_distance_mm`` inside the brain mask (cortical ribbon
   and brain surface, bright on FLAIR), and off CSF edges. Brain voxels darker than ``csf_z_max`` are
   CSF; lesion voxels lie more than ``csf_grow_distance_mm`` from CSF and lesion *seeds* more than
   ``csf_seed_distance_mm``. Partial volume with CSF, the ependyma and CSF-flow artefacts make a thin
   bright band along every CSF surface: it cannot start a lesion, while a periventricular lesion
   seeded in the white matter still grows up to it.
3. **Seeds** are brighter than ``seed_z`` *and* than the grey-matter ceiling plus
   ``seed_above_gm_z``. The ceiling is a high percentile (``gm_ceiling_percentile``) of z over deep,
   non-CSF brain tissue whose white-matter prior is below ``gm_prior_max_wm``. WMH are hyperintense to
   cortex as well as to white matter; on FLAIR with strong grey/white contrast (2-D turbo inversion
   recovery at 1.5 T puts cortex 5-7 SD above NAWM) this keeps partial-volume cortex at the edge of
   the white-matter region, or a slightly misregistered prior, from seeding lesions. Seeds also need a
   white-matter prior ``>= seed_wm_prior_min`` (0.5: more likely white matter than not).
4. **Hysteresis**: seeds grow into 6-connected voxels with ``z > grow_z`` lying within
   ``grow_distance_mm`` of a seed (:func:`skimage.filters.apply_hysteresis_threshold`). The distance
   limit stops a faint seed from percolating through textured white matter.
5. **Boundary per lesion**: each grown lesion is cut again at ``grow_fraction`` x its peak (90th
   percentile of z over its seeds), never below ``grow_z``. A voxel half filled with lesion has about
   half the lesion's contrast, so this places the boundary near the half-partial-volume contour for
   faint and bright lesions alike, where one global low threshold would be right for one brightness
   only.
6. **Components** (26-connected) smaller than ``min_lesion_volume_mm3`` are dropped, and so are those
   enclosed by CSF: if more than ``csf_enclosure_max`` of the shell within ``csf_shell_mm`` around a
   component is CSF, it floats in a CSF space. This, with the CSF seed distance, is how the **septum
   pellucidum** (a sheet 1-3 mm thick with a lateral ventricle on either side, so no voxel of it is far
   enough from CSF to seed, and its shell is mostly CSF) and the **choroid plexus** (a tuft inside the
   atrium or temporal horn, CSF all around) are suppressed. Both are recognised from the image
   itself, not from the template, because patients' ventricles are often larger than the template's.
   A mid-line exclusion was not used: it would also remove callosal lesions.

DWI lesions (:func:`segment_dwi_lesions`)
-----------------------------------------
A DWI lesion is *restricted* tissue: bright on the diffusion-weighted trace (b >= 500 s/mm2; z-score
on NAWM) **and** ADC low relative to NAWM, ``rADC = ADC / median NAWM ADC < radc_max`` (0.75). Ratios
to the patient's own NAWM make the rule independent of the b-value (800, 1000, 2500: the trace
contrast and the apparent ADC of tissue both change with b) and of a wrong or missing b-value scale.

1. **Where**: the whole brain parenchyma (``territory="parenchyma"``), deeper than
   ``edge_distance_mm``. Restricted diffusion is abnormal in grey matter as in white matter
   (infarcts, toxic lesions of the cortex, dentate nuclei or brainstem), and normal grey matter has a
   *higher* ADC than white matter (800-900 against 700 um2/s), so a NAWM-relative bound is stricter
   there, not looser. ``territory="white_matter"`` restores the white-matter-only rule.
2. **Seeds** are (a) brighter than ``seed_z`` and than the **grey-matter ceiling** plus
   ``seed_above_gm_z``: grey matter is brighter than white matter on the trace, so once lesions may
   lie in grey matter "hyperintense" is measured against the brightest normal parenchyma (robust
   median + ``gm_ceiling_sd`` robust SDs of z over deep grey matter, outliers such as a cortical
   infarct trimmed; the ceiling is 3 SDs, like every other significance level here); and (b)
   restricted beyond the scan's own ADC noise: ``rADC < 1 - seed_adc_sd *
   SD / median`` of the NAWM ADC (3 robust SDs). On thick-slice clinical EPI the NAWM ADC scatters by
   12-14 % voxel to voxel, so a voxel at rADC 0.70 is within noise of normal. The earlier rule
   (white matter only, seeds z > 4 with rADC < 0.75) found 30 foci of 3-40 voxels in the small
   stroke case Subject02 (ADS), nearly all noise in the cerebellum and temporal lobes.
3. **Growth** (hysteresis): 6-connected voxels brighter than ``grow_z`` with ``rADC < radc_max``; or,
   with ``radc_rim_max`` above ``radc_max`` (0.9 for the visible lesion of stroke readers), voxels
   brighter than the grey-matter ceiling with ``rADC < radc_rim_max``. Then a minimum size.
4. **Trace alone** (no b=0 and no ADC map): seeds and growth on brightness only, growth limited to
   voxels brighter than the grey-matter ceiling. Restriction is not checked, so T2 shine-through and
   bright artefacts count as lesion; the result says so (``adc_used`` False, ADC figures nan).

Once the ADC of a lesion pseudo-normalises (second week onwards) the tissue is still bright on the
trace (T2 shine-through) but its rADC is back above the threshold, so it stops being a DWI lesion.
That is intended: the DWI lesion measures restriction (cytotoxic oedema) and the FLAIR lesion follows
the damaged tissue after the restriction has gone. The trace alone would call shine-through, and grey
matter (brighter than white matter on the trace, but not restricted), a lesion; ADC alone flags noise
and susceptibility artefacts near the skull base.

What the caller provides
------------------------
* FLAIR corrected for the bias field (N4 within the brain mask): the NAWM estimate is global, and on
  the sample case the faint day-0 lesion loses 20 % of its volume without N4.
* A brain mask on the same grid (parenchyma with ventricles and sulci; skull and scalp outside).
* A white-matter prior (probability 0..1) on the same grid: the MNI152 2009a WM map
  (``mni_icbm152_wm_tal_nlin_sym_09a_converted``, 0..255 / 255) resampled through the template
  registration. The NAWM sample uses its core (``>= 0.9``); the lesion territory its ``>= 0.3`` part
  dilated by 2 mm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold

from imaging.errors import GeometryError
from imaging.image import MRImage
from imaging.normalize import (
    NawmParams,
    NormalizationError,
    derived_image,
    normalize_to_nawm,
    robust_location_scale,
)
from imaging.units import mm3_to_ml

__all__ = [
    "DwiLesionParams",
    "DwiLesionResult",
    "FlairLesionParams",
    "FlairLesionResult",
    "segment_dwi_lesions",
    "segment_flair_lesions",
]

#: 26-connectivity for lesion components.
_FULL = np.ones((3, 3, 3), dtype=bool)


# ------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class FlairLesionParams:
    """Parameters of :func:`segment_flair_lesions` (units in the names; z in NAWM robust SDs).

    Attributes
    ----------
    nawm : NawmParams
        NAWM estimate (prior core, trimming) for the z-score.
    seed_z : float
        A lesion must contain a seed voxel brighter than this (z) ...
    seed_above_gm_z : float
        ... and brighter than the grey-matter ceiling plus this margin (z).
    gm_prior_max_wm : float
        Deep, non-CSF brain voxels with a white-matter prior below this are the grey-matter sample.
    gm_ceiling_percentile : float
        The grey-matter ceiling is this percentile (0-100) of z over that sample.
    seed_wm_prior_min : float
        Seeds lie where the white-matter prior is at least this (0..1).
    grow_z : float
        Lesions grow from their seeds into 6-connected voxels brighter than this (z) ...
    grow_fraction : float
        ... and brighter than this fraction of the lesion's own peak (90th percentile of z over
        its seeds).
    grow_distance_mm : float
        Lesion voxels lie within this distance of a seed, mm (0 = no limit).
    wm_prior_min : float
        White-matter prior (0..1) defining the white matter where lesions may be.
    wm_dilation_mm : float
        That white matter is dilated by this distance, mm (periventricular, juxtacortical lesions).
    edge_distance_mm : float
        Lesion voxels lie deeper than this inside the brain mask, mm (cortical ribbon, surface).
    csf_z_max : float
        Brain voxels at most this bright (z) count as CSF (dark on FLAIR).
    csf_seed_distance_mm : float
        Seeds lie further than this from CSF, mm.
    csf_grow_distance_mm : float
        Lesion voxels lie further than this from CSF, mm.
    csf_shell_mm : float
        Width of the shell around a lesion in which its CSF fraction is measured, mm.
    csf_enclosure_max : float
        Lesions whose shell is more than this fraction CSF are dropped (choroid plexus, septum
        pellucidum).
    min_lesion_volume_mm3 : float
        Smallest lesion (26-connected component) kept, mm3.
    """

    nawm: NawmParams = field(default_factory=NawmParams)
    seed_z: float = 5.0
    seed_above_gm_z: float = 3.5
    gm_prior_max_wm: float = 0.2
    gm_ceiling_percentile: float = 95.0
    seed_wm_prior_min: float = 0.5
    grow_z: float = 2.0
    grow_fraction: float = 0.4
    grow_distance_mm: float = 5.0
    wm_prior_min: float = 0.3
    wm_dilation_mm: float = 2.0
    edge_distance_mm: float = 5.0
    csf_z_max: float = -2.0
    csf_seed_distance_mm: float = 2.0
    csf_grow_distance_mm: float = 1.0
    csf_shell_mm: float = 3.0
    csf_enclosure_max: float = 0.5
    min_lesion_volume_mm3: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a flat dict (``nawm.*`` prefixed), to record with a result."""
        return _flat_dict(self)


@dataclass(frozen=True)
class DwiLesionParams:
    """Parameters of :func:`segment_dwi_lesions` (units in the names; z in NAWM robust SDs).

    Attributes
    ----------
    nawm : NawmParams
        NAWM estimate on the trace (the NAWM ADC is the median ADC over the same voxels).
    seed_z : float
        A lesion must contain a voxel at least this bright on the trace (z) ...
    seed_above_gm_z : float
        ... and brighter than the grey-matter ceiling plus this margin (z): grey matter is brighter
        than white matter on the trace (longer T2, more protons), so "hyperintense" is measured
        against the brightest normal parenchyma once lesions may lie in grey matter. 0: the
        ceiling (3 robust SDs above grey matter) is itself the significance level; a margin in z
        depends on the noise (z = 2 above the ceiling removed the cerebellar false foci of the
        noisy ADS Subject02 but also seeds of the sample's day-0 lesion, whose noise is lower).
    gm_prior_max_wm : float
        Deep (> ``edge_distance_mm``), non-CSF brain voxels with a white-matter prior below this
        are the grey-matter sample.
    gm_ceiling_sd : float
        The grey-matter ceiling is the sample's robust median plus this many of its robust SDs
        (z; outliers such as an infarct in the cortex are trimmed from the estimate, as for NAWM).
    grow_z : float
        Lesions grow into connected voxels at least this bright on the trace (z) that are
        restricted (``radc_max``) ...
    radc_max : float
        Restricted: ADC / NAWM ADC below this (0.75: the automated ischaemic-core rule
        ADC <= 620 um2/s relative to normal tissue, 620 / 843 = 0.74 with the contralateral ADC of
        Nagesh et al. 1998; also the synthetic generator's truth definition).
    radc_rim_max : float
        ... or, brighter than the grey-matter ceiling (visibly hyperintense), with rADC below this.
        The default (= ``radc_max``) keeps the DWI lesion to restricted tissue, the quantity
        leukotrack follows (see the module docstring). 0.9 (ADC below the normal range: normal
        white matter 700 +- 30 um2/s, Helenius et al. 2002, 2 SD below the mean is 0.91) gives the
        *visible* DWI lesion as stroke readers delineate it, which holds mildly restricted zones:
        Nagesh et al. 1998 found the visible infarct's mean ADC only 0.74 of contralateral
        tissue, with 20 % of it pseudonormal. 0.9 also takes in T2 shine-through around a
        restricted core, which leukotrack's follow-up counts on FLAIR instead.
    seed_adc_sd : float
        Seed voxels are also restricted beyond this many robust SDs of the NAWM ADC (the scan's
        own ADC noise): ``rADC < 1 - seed_adc_sd * sd / median``. On noisy thick-slice EPI
        (NAWM ADC SD 12-14 % of the median) a voxel at rADC 0.7 is within noise of normal.
    adc_min_um2s : float
        Voxels with ADC below this are background or fit failures, not tissue, um2/s.
    territory : {"parenchyma", "white_matter"}
        Where lesions may be: the whole brain parenchyma (restricted diffusion is abnormal in grey
        and white matter: infarcts, toxic lesions of the dentate nuclei or cortex), or white
        matter only (the ``wm_prior_min`` region dilated by ``wm_dilation_mm``).
    wm_prior_min : float
        White-matter prior (0..1) of the white-matter territory.
    wm_dilation_mm : float
        That white matter is dilated by this distance, mm.
    edge_distance_mm : float
        Lesion voxels lie deeper than this inside the brain mask, mm.
    min_lesion_volume_mm3 : float
        Smallest lesion kept, mm3.
    """

    nawm: NawmParams = field(default_factory=NawmParams)
    seed_z: float = 4.0
    seed_above_gm_z: float = 0.0
    gm_prior_max_wm: float = 0.2
    gm_ceiling_sd: float = 3.0
    grow_z: float = 2.0
    radc_max: float = 0.75
    radc_rim_max: float = 0.75
    seed_adc_sd: float = 3.0
    adc_min_um2s: float = 100.0
    territory: str = "parenchyma"
    wm_prior_min: float = 0.3
    wm_dilation_mm: float = 2.0
    edge_distance_mm: float = 5.0
    min_lesion_volume_mm3: float = 20.0

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a flat dict (``nawm.*`` prefixed), to record with a result."""
        return _flat_dict(self)


def _flat_dict(params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(params).items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------- results
class _LesionResult:
    """What every lesion result derives from its ``lesion_mask``."""

    lesion_mask: MRImage

    @property
    def volume_ml(self) -> float:
        """Total lesion volume, mL."""
        return _volume_ml(self.lesion_mask)

    @property
    def n_lesions(self) -> int:
        """Number of 26-connected lesions."""
        return int(ndi.label(self.lesion_mask.data > 0, structure=_FULL)[1])


@dataclass(frozen=True)
class FlairLesionResult(_LesionResult):
    """FLAIR lesions of one session, on the FLAIR grid.

    Attributes
    ----------
    lesion_mask : MRImage
        uint8 lesion mask (1 = lesion).
    zscore : MRImage
        float32 NAWM z-score of the FLAIR (0 outside the brain).
    nawm_mask : MRImage
        uint8 mask of the voxels the NAWM estimate used.
    nawm_median, nawm_sigma : float
        NAWM median and robust SD of the FLAIR, in its intensity units.
    gm_ceiling_z : float
        The grey-matter ceiling (z) measured on this image.
    seed_z_used : float
        The seed threshold applied: ``max(seed_z, gm_ceiling_z + seed_above_gm_z)``.
    params : FlairLesionParams
        The parameters used.
    """

    lesion_mask: MRImage
    zscore: MRImage
    nawm_mask: MRImage
    nawm_median: float
    nawm_sigma: float
    gm_ceiling_z: float
    seed_z_used: float
    params: FlairLesionParams


@dataclass(frozen=True)
class DwiLesionResult(_LesionResult):
    """Diffusion-restricted lesions of one session, on the DWI grid.

    Attributes
    ----------
    lesion_mask : MRImage
        uint8 lesion mask (1 = restricted lesion).
    zscore : MRImage
        float32 NAWM z-score of the b=1000 image (0 outside the brain).
    radc : MRImage or None
        float32 ADC relative to the NAWM ADC (0 outside the brain); ``None`` without an ADC map.
    nawm_mask : MRImage
        uint8 mask of the NAWM voxels (b=1000 estimate; the NAWM ADC uses the same voxels).
    nawm_b1000_median, nawm_b1000_sigma : float
        NAWM median and robust SD of the b=1000 image, in its units.
    nawm_adc_um2s : float
        Median ADC of the NAWM, um2/s (nan without an ADC map).
    lesion_adc_mean_um2s : float
        Mean ADC inside the lesion mask, um2/s (nan when there is no lesion or no ADC).
    gm_ceiling_z : float
        The grey-matter ceiling (z) of the trace measured on this image.
    seed_z_used : float
        The seed threshold applied: ``max(seed_z, gm_ceiling_z + seed_above_gm_z)``.
    seed_radc_max : float
        The seeds' rADC bound applied (nan without ADC).
    params : DwiLesionParams
        The parameters used.
    """

    lesion_mask: MRImage
    zscore: MRImage
    radc: MRImage | None
    nawm_mask: MRImage
    nawm_b1000_median: float
    nawm_b1000_sigma: float
    nawm_adc_um2s: float
    lesion_adc_mean_um2s: float
    gm_ceiling_z: float
    seed_z_used: float
    seed_radc_max: float
    params: DwiLesionParams

    @property
    def adc_used(self) -> bool:
        """Whether an ADC map was used (False: trace alone, restriction not checked)."""
        return self.radc is not None

    @property
    def radc_lesion(self) -> float:
        """Mean lesion ADC / NAWM ADC (nan when there is no lesion or no ADC)."""
        return self.lesion_adc_mean_um2s / self.nawm_adc_um2s


def _volume_ml(mask: MRImage) -> float:
    return mm3_to_ml(float(np.count_nonzero(mask.data)) * mask.voxel_volume_mm3)


# --------------------------------------------------------------------------------------- helpers
def _check_inputs(reference: MRImage, **others: MRImage) -> None:
    if reference.data.ndim != 3:
        raise GeometryError(
            f"segment one 3-D volume, got shape {reference.shape}; pick a volume first "
            "(e.g. dwi.volume(1) for b=1000)"
        )
    for name, other in others.items():
        if other.data.ndim != 3:
            raise GeometryError(f"{name} must be 3-D, got shape {other.shape}")
        if not reference.same_grid(other):
            raise GeometryError(
                f"{name} {other!r} is not on the grid of {reference!r}; resample it onto that "
                "grid first"
            )


def _brain_box(brain: NDArray[np.bool_], margin: int = 2) -> tuple[slice, slice, slice]:
    """Bounding box of the brain, widened by ``margin`` voxels (clipped to the array)."""
    if not brain.any():
        raise NormalizationError("the brain mask is empty")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(brain.any(axis=other))
        box.append(slice(max(int(present[0]) - margin, 0), int(present[-1]) + margin + 1))
    return (box[0], box[1], box[2])


def _distance_inside_mm(mask: NDArray[np.bool_], spacing: tuple[float, ...]) -> NDArray[Any]:
    """Distance (mm) of each voxel of ``mask`` to the nearest voxel outside it (0 outside).

    Voxels beyond the array count as outside (a brain cut by the field of view has an edge there).
    """
    padded = np.pad(mask, 1, constant_values=False)
    return np.asarray(ndi.distance_transform_edt(padded, sampling=spacing))[1:-1, 1:-1, 1:-1]


def _distance_to_mm(mask: NDArray[np.bool_], spacing: tuple[float, ...]) -> NDArray[Any]:
    """Distance (mm) of each voxel to the nearest voxel of ``mask`` (inf if it is empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float64)
    return np.asarray(ndi.distance_transform_edt(~mask, sampling=spacing))


def _wm_region(
    wm_prior: NDArray[Any], spacing: tuple[float, ...], prior_min: float, dilation_mm: float
) -> NDArray[np.bool_]:
    core = wm_prior >= prior_min
    if dilation_mm <= 0:
        return np.asarray(core)
    return np.asarray(_distance_to_mm(core, spacing) <= dilation_mm)


def _remove_small(
    mask: NDArray[np.bool_], voxel_mm3: float, min_volume_mm3: float
) -> NDArray[np.bool_]:
    labels, n = ndi.label(mask, structure=_FULL)
    if n == 0:
        return mask
    sizes_mm3 = np.bincount(labels.ravel()) * voxel_mm3
    keep = sizes_mm3 >= min_volume_mm3
    keep[0] = False
    return np.asarray(keep[labels])


def _hysteresis(
    z: NDArray[Any],
    allowed: NDArray[np.bool_],
    seeds_ok: NDArray[np.bool_],
    low: float,
    high: float,
) -> NDArray[np.bool_]:
    """Voxels of ``allowed`` with z > low, 6-connected to a voxel of ``seeds_ok`` with z > high.

    :func:`skimage.filters.apply_hysteresis_threshold` on z, with voxels outside ``allowed`` set to
    -inf and those where no seed may start capped just below ``high`` (they can still be grown into).
    """
    below_high = np.nextafter(np.float32(high), np.float32(-np.inf))
    masked = np.where(allowed, z, -np.inf).astype(np.float32)
    masked = np.where(seeds_ok, masked, np.minimum(masked, below_high))
    return np.asarray(apply_hysteresis_threshold(masked, low, high), dtype=bool)


def _adaptive_boundary(
    z: NDArray[Any],
    provisional: NDArray[np.bool_],
    seeds: NDArray[np.bool_],
    floor_z: float,
    fraction: float,
) -> NDArray[np.bool_]:
    """Re-threshold each provisional lesion at ``fraction`` of its seeds' 90th-percentile z."""
    if fraction <= 0 or not provisional.any():
        return provisional
    labels, n = ndi.label(provisional, structure=_FULL)
    seed_labels = labels[seeds & provisional]
    seed_z = z[seeds & provisional]
    peak = np.zeros(n + 1, dtype=np.float64)
    order = np.lexsort((seed_z, seed_labels))
    seed_labels, seed_z = seed_labels[order], seed_z[order]
    starts = np.searchsorted(seed_labels, np.arange(n + 1), side="left")
    ends = np.searchsorted(seed_labels, np.arange(n + 1), side="right")
    for lab in range(1, n + 1):
        if ends[lab] > starts[lab]:
            peak[lab] = float(np.percentile(seed_z[starts[lab] : ends[lab]], 90))
    threshold = np.maximum(floor_z, fraction * peak)
    kept = provisional & (z > threshold[labels])
    parts, _ = ndi.label(kept)
    seeded = np.unique(parts[kept & seeds])
    return np.asarray(np.isin(parts, seeded[seeded > 0]))


def _drop_csf_enclosed(
    mask: NDArray[np.bool_],
    csf: NDArray[np.bool_],
    spacing: tuple[float, ...],
    shell_mm: float,
    enclosure_max: float,
) -> NDArray[np.bool_]:
    """Remove components whose surrounding shell (width ``shell_mm``) is mostly CSF."""
    labels, n = ndi.label(mask, structure=_FULL)
    if n == 0 or enclosure_max >= 1.0:
        return mask
    distance, nearest = ndi.distance_transform_edt(~mask, sampling=spacing, return_indices=True)
    shell = (distance > 0) & (distance <= shell_mm)
    owner = labels[tuple(nearest)][shell]
    shell_size = np.bincount(owner, minlength=n + 1).astype(np.float64)
    shell_csf = np.bincount(owner, weights=csf[shell].astype(np.float64), minlength=n + 1)
    fraction = np.divide(shell_csf, shell_size, out=np.zeros(n + 1), where=shell_size > 0)
    keep = fraction <= enclosure_max
    keep[0] = False
    return np.asarray(keep[labels])


def _paste(shape: tuple[int, int, int], box: tuple[slice, ...], part: NDArray[Any]) -> NDArray[Any]:
    full = np.zeros(shape, dtype=part.dtype)
    full[box] = part
    return full


# -------------------------------------------------------------------------------------- FLAIR
def segment_flair_lesions(
    flair: MRImage,
    brain_mask: MRImage,
    wm_prior: MRImage,
    *,
    params: FlairLesionParams | None = None,
) -> FlairLesionResult:
    """Segment FLAIR-hyperintense white-matter lesions (method in the module docstring).

    Parameters
    ----------
    flair : MRImage
        3-D FLAIR, shape (I, J, K), ideally bias-corrected (N4) by the caller.
    brain_mask : MRImage
        Brain mask on the FLAIR grid (non-zero = brain).
    wm_prior : MRImage
        White-matter probability 0..1 on the FLAIR grid (the template's WM map, registered).
    params : FlairLesionParams, optional
        Parameters (defaults: :class:`FlairLesionParams`).

    Returns
    -------
    FlairLesionResult
        Lesion mask (uint8), z-score map and NAWM mask, all on the FLAIR grid.

    Raises
    ------
    GeometryError
        If the inputs are not 3-D images on one grid.
    NormalizationError
        If the brain mask is empty or holds too little white matter to normalise on.
    """
    params = params or FlairLesionParams()
    _check_inputs(flair, brain_mask=brain_mask, wm_prior=wm_prior)
    spacing = flair.spacing_mm
    brain_full = np.asarray(brain_mask.data) > 0
    box = _brain_box(brain_full)
    brain = brain_full[box]
    affine = _crop_affine(flair, box)
    prior = np.asarray(wm_prior.data, dtype=np.float32)[box]
    norm = normalize_to_nawm(
        MRImage(np.asarray(flair.data, dtype=np.float32)[box], affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(prior, affine),
        params=params.nawm,
    )
    z = np.asarray(norm.zscore.data, dtype=np.float32)

    deep = brain & (_distance_inside_mm(brain, spacing) > params.edge_distance_mm)
    region = deep & _wm_region(prior, spacing, params.wm_prior_min, params.wm_dilation_mm)
    csf = brain & (z <= params.csf_z_max)
    csf_distance = _distance_to_mm(csf, spacing)
    allowed = region & (csf_distance > params.csf_grow_distance_mm)
    seeds_ok = (
        allowed & (csf_distance > params.csf_seed_distance_mm) & (prior >= params.seed_wm_prior_min)
    )
    grey = deep & (prior < params.gm_prior_max_wm) & ~csf
    gm_ceiling_z = (
        float(np.percentile(z[grey], params.gm_ceiling_percentile)) if grey.any() else 0.0
    )
    seed_z = max(params.seed_z, gm_ceiling_z + params.seed_above_gm_z)

    seeds = seeds_ok & (z > seed_z)
    if params.grow_distance_mm > 0:
        allowed = allowed & (_distance_to_mm(seeds, spacing) <= params.grow_distance_mm)
    lesion = _hysteresis(z, allowed, seeds_ok, params.grow_z, seed_z)
    lesion = _adaptive_boundary(z, lesion, seeds, params.grow_z, params.grow_fraction)
    lesion = _remove_small(lesion, flair.voxel_volume_mm3, params.min_lesion_volume_mm3)
    lesion = _drop_csf_enclosed(lesion, csf, spacing, params.csf_shell_mm, params.csf_enclosure_max)

    shape = flair.spatial_shape
    return FlairLesionResult(
        lesion_mask=derived_image(flair, _paste(shape, box, lesion.astype(np.uint8))),
        zscore=derived_image(flair, _paste(shape, box, z)),
        nawm_mask=derived_image(flair, _paste(shape, box, np.asarray(norm.nawm_mask.data))),
        nawm_median=norm.median,
        nawm_sigma=norm.sigma,
        gm_ceiling_z=gm_ceiling_z,
        seed_z_used=seed_z,
        params=params,
    )


def _crop_affine(image: MRImage, box: tuple[slice, ...]) -> NDArray[np.float64]:
    affine = image.affine
    offset = np.array([s.start for s in box], dtype=np.float64)
    affine[:3, 3] = affine[:3, :3] @ offset + affine[:3, 3]
    return affine


# ---------------------------------------------------------------------------------------- DWI
def _gm_ceiling(z: NDArray[Any], grey: NDArray[np.bool_], params: DwiLesionParams) -> float:
    """Robust median + ``gm_ceiling_sd`` robust SDs of the trace z over the grey-matter sample."""
    if np.count_nonzero(grey) < params.nawm.min_voxels:
        return 0.0
    median, sigma, _ = robust_location_scale(
        z[grey], trim_z=params.nawm.trim_z, n_trim_iterations=params.nawm.n_trim_iterations
    )
    return float(median + params.gm_ceiling_sd * sigma)


def segment_dwi_lesions(
    b1000: MRImage,
    adc_um2s: MRImage | None,
    brain_mask: MRImage,
    wm_prior: MRImage,
    *,
    params: DwiLesionParams | None = None,
) -> DwiLesionResult:
    """Segment diffusion-restricted lesions (method in the module docstring).

    Parameters
    ----------
    b1000 : MRImage
        3-D diffusion-weighted trace at b >= 500 s/mm2 (1000 usually; e.g. ``dwi.volume(1)``),
        shape (I, J, K).
    adc_um2s : MRImage or None
        ADC map in um2/s on the same grid; ``None`` for a trace-only export: lesions are then
        trace-hyperintense tissue only (``adc_used`` False, ADC figures nan, ``radc`` None).
    brain_mask : MRImage
        Brain mask on the DWI grid.
    wm_prior : MRImage
        White-matter probability 0..1 on the DWI grid.
    params : DwiLesionParams, optional
        Parameters (defaults: :class:`DwiLesionParams`).

    Returns
    -------
    DwiLesionResult
        Lesion mask (uint8), trace z-score map, rADC map and NAWM mask on the DWI grid, with the
        NAWM and lesion ADC.

    Raises
    ------
    GeometryError
        If the inputs are not 3-D images on one grid.
    NormalizationError
        If the brain mask is empty or holds too little white matter to normalise on.
    """
    params = params or DwiLesionParams()
    others = {"brain_mask": brain_mask, "wm_prior": wm_prior}
    if adc_um2s is not None:
        others["adc_um2s"] = adc_um2s
    _check_inputs(b1000, **others)
    spacing = b1000.spacing_mm
    brain_full = np.asarray(brain_mask.data) > 0
    box = _brain_box(brain_full)
    crops = [
        MRImage(np.asarray(im.data)[box], _crop_affine(im, box))
        for im in (b1000, brain_mask, wm_prior)
    ]
    norm = normalize_to_nawm(crops[0], crops[1], crops[2], params=params.nawm)
    z = np.asarray(norm.zscore.data, dtype=np.float32)
    brain = brain_full[box]
    prior = np.asarray(crops[2].data, dtype=np.float32)
    nawm = np.asarray(norm.nawm_mask.data) > 0

    deep = brain & (_distance_inside_mm(brain, spacing) > params.edge_distance_mm)
    if params.territory == "white_matter":
        region = deep & _wm_region(prior, spacing, params.wm_prior_min, params.wm_dilation_mm)
    elif params.territory == "parenchyma":
        region = deep
    else:
        raise ValueError(
            f"territory must be 'parenchyma' or 'white_matter', not {params.territory!r}"
        )
    radc: NDArray[np.float32] | None = None
    nawm_adc_um2s = math.nan
    grey = deep & (prior < params.gm_prior_max_wm)
    if adc_um2s is not None:
        adc = np.asarray(adc_um2s.data, dtype=np.float32)[box]
        nawm_adc = nawm & (adc >= params.adc_min_um2s)
        if not nawm_adc.any():
            raise NormalizationError(
                "no normal-appearing white-matter voxel has a valid ADC; check the ADC map and "
                "its unit"
            )
        nawm_adc_um2s, nawm_adc_sd, _ = robust_location_scale(
            adc[nawm_adc],
            trim_z=params.nawm.trim_z,
            n_trim_iterations=params.nawm.n_trim_iterations,
        )
        radc = np.where(brain, adc / np.float32(nawm_adc_um2s), np.float32(0.0)).astype(np.float32)
        valid = adc >= params.adc_min_um2s
        grey &= valid & (radc < 1.5)  # CSF (free water, ADC about 3000 um2/s) is not grey matter
        gm_ceiling_z = _gm_ceiling(z, grey, params)
        seed_radc_max = min(params.radc_max, 1.0 - params.seed_adc_sd * nawm_adc_sd / nawm_adc_um2s)
        core = region & valid & (radc < params.radc_max)
        rim = region & valid & (radc < params.radc_rim_max) & (z > gm_ceiling_z)
        grow = core | rim
        seeds = core & (radc < seed_radc_max)
    else:
        gm_ceiling_z = _gm_ceiling(z, grey, params)
        seed_radc_max = math.nan
        grow = seeds = region
    seed_z_used = max(params.seed_z, gm_ceiling_z + params.seed_above_gm_z)
    # without ADC nothing tells a lesion from normal grey matter but its brightness: grow only
    # into voxels brighter than the grey-matter ceiling
    grow_z_used = params.grow_z if radc is not None else max(params.grow_z, gm_ceiling_z)
    lesion = _hysteresis(z, grow, seeds, grow_z_used, seed_z_used)
    lesion = _remove_small(lesion, b1000.voxel_volume_mm3, params.min_lesion_volume_mm3)

    lesion_adc = math.nan
    if adc_um2s is not None and lesion.any():
        lesion_adc = float(np.asarray(adc_um2s.data, dtype=np.float32)[box][lesion].mean())
    shape = b1000.spatial_shape
    return DwiLesionResult(
        lesion_mask=derived_image(b1000, _paste(shape, box, lesion.astype(np.uint8))),
        zscore=derived_image(b1000, _paste(shape, box, z)),
        radc=derived_image(b1000, _paste(shape, box, radc)) if radc is not None else None,
        nawm_mask=derived_image(b1000, _paste(shape, box, nawm.astype(np.uint8))),
        nawm_b1000_median=norm.median,
        nawm_b1000_sigma=norm.sigma,
        nawm_adc_um2s=float(nawm_adc_um2s),
        lesion_adc_mean_um2s=lesion_adc,
        gm_ceiling_z=gm_ceiling_z,
        seed_z_used=seed_z_used,
        seed_radc_max=seed_radc_max,
        params=params,
    )
