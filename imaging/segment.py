"""Lesion segmentation on FLAIR (white matter) and on diffusion (DWI trace + ADC, or the trace alone).

Both methods are classical (no trained weights), deterministic, and work on the input grid: no
resampling, masks come back on the grid they were computed on. z-scores are in robust standard
deviations of normal-appearing white matter (NAWM, :mod:`imaging.normalize`).

FLAIR lesions (:func:`segment_flair_lesions`)
---------------------------------------------
A per-image contrast model: a lesion is tissue brighter than the normal tissue *around it*, by a margin
measured in this image's own white-matter texture, where MS-like lesions occur; its boundary is where
half of a voxel is lesion (the truth definition: lesion fraction >= 0.5).

1. **Normalise** the bias-corrected FLAIR on NAWM (robust median and SD, trimmed; coarsely quantised
   images, where the MAD is 0, use the mean absolute deviation): the global z-score, used for CSF.
2. **Local background**: the FLAIR smoothed by ``smooth_mm`` minus the local level of normal white
   matter (a normalised convolution of width ``background_sigma_mm`` over voxels with WM prior >= 0.5
   and |z| <= 2, then again without the bright voxels found). Residual bias and regional differences
   of white matter (brighter tracts, periventricular caps) stay out of the contrast.
3. **Contrast** c = residual / robust SD of the residual over NAWM: the unit is this image's own
   texture, so that no threshold is tied to one scanner's noise. Real FLAIRs put lesions 2-3 NAWM SD
   above the median (issue 13): a global z threshold cannot separate them, a local smoothed one can.
4. **Seeds**: contrast over the brighter of white and grey matter (``seed_above_gm``: the grey-matter
   level is a percentile of the smoothed image over the grey-matter sample) above ``seed_c``, lowered
   where the lesion-frequency prior (:mod:`imaging.lesion_prior`, optional) is above
   ``prior_reference`` by ``prior_gain x ln(prior / reference)`` and raised where it is below
   (clipped to ``seed_c_min``..``seed_c_max``); at least ``seed_over_gm`` x that tissue level; in
   white matter (prior >= ``seed_wm_prior_min``) or, with a lesion prior, where lesions are frequent
   and the grey-matter prior is low (hippocampus and amygdala are bright on FLAIR beside CSF).
5. **Growth**: seeds grow into 6-connected voxels with c > ``grow_c`` within ``grow_distance_mm``.
6. **Partial-volume boundary**: each lesion is then cut where ``image / background - 1`` reaches
   ``boundary_fraction`` of its pure contrast; the pure contrast is the lesion's own 90th percentile,
   floored by the median over the image's lesions of at least ``pure_lesion_min_mm3``. This is the fix
   of the volume bias of the previous method: (a) it cut each lesion at 0.4 x the 90th percentile of
   its *seed* voxels' z, i.e. of its brightest voxels, and never below ``grow_z`` = 2, so faint rims
   and partial-volume voxels of small lesions were lost (volumes low by 10-66 % on an independent
   cohort, worst for small day-0 lesions); (b) small lesions that never reach their pure intensity
   (thick slices) were cut at half of a peak that is itself partial volume. ``boundary_fraction`` is
   0.4, not 0.5: lesion rims are less hyperintense than cores (graded T2 prolongation), so the
   half-fraction voxel of a rim sits below half of the core contrast; on uniform lesions 0.4
   over-calls by a fraction of a voxel on the boundary (tests/test_flair_method.py: within 10 %).
7. **Rules kept from the previous method**: the brain edge (``edge_distance_mm``), CSF distance
   (``csf_*``: ependyma, flow artefacts), the choroid plexus and septum pellucidum (CSF-enclosed
   components), the smallest lesion (``min_lesion_volume_mm3``).

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
from imaging.filters import gaussian_mm, local_mean
from imaging.image import MRImage, check_same_grid
from imaging.morphology import (
    bounding_box,
    distance_inside_mm,
    distance_to_mm,
    fill_holes_2d3d,
    remove_small_components,
    within_mm,
)
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
    """Parameters of :func:`segment_flair_lesions` (units in the names; "c" is the local lesion
    contrast in robust SDs of the smoothed NAWM contrast, "z" the global NAWM z-score).

    Attributes
    ----------
    nawm : NawmParams
        NAWM estimate (prior core, trimming) for the z-score.
    smooth_mm : float
        Gaussian smoothing (sigma, mm) of the image the contrast is measured on.
    background_sigma_mm : float
        Width (sigma, mm) of the local normal-tissue level: a normalised convolution of the image over
        voxels of normal-appearing white matter.
    seed_c : float
        A lesion must contain a seed with local contrast above this (c), where the lesion prior
        equals ``prior_reference`` (everywhere when no lesion prior is given) ...
    prior_gain : float
        ... lowered by ``prior_gain * ln(prior / prior_reference)`` where lesions are more frequent
        than ``prior_reference`` (and raised where they are rarer) ...
    prior_reference : float
        Lesion frequency (0..1) at which the seed threshold is ``seed_c``.
    seed_c_min, seed_c_max : float
        ... and kept within these bounds (c).
    seed_above_gm : bool
        The seed contrast is measured over the brighter of the local white matter and the grey
        matter (the white-matter level times the image's GM / WM ratio when that exceeds 1): WMH are
        hyperintense to cortex as well as to white matter. False: over the white matter only.
    seed_over_gm : float
        Seeds are also at least this many times brighter than the median of the grey matter
        (smoothed image): WMH are hyperintense to cortex as well as to white matter.
    grow_over_gm : float
        Every lesion voxel is at least this many times brighter than that grey-matter median
        (boundary image): lesions do not grow into bright cortex.
    gm_prior_max_wm : float
        Deep, non-CSF brain voxels with a white-matter prior below this (or, when a GM prior is
        given, a GM prior of at least 0.5) are the grey-matter sample.
    seed_wm_prior_min : float
        Seeds lie where the white-matter prior is at least this (0..1) or the lesion prior at least
        ``prior_reference``.
    seed_gm_prior_max : float
        Where a grey-matter prior is given, seeds allowed by the lesion prior alone (white-matter
        prior below ``seed_wm_prior_min``) need a grey-matter prior below this.
    grow_c : float
        Lesions grow from their seeds into 6-connected voxels with contrast above this (c) ...
    grow_distance_mm : float
        ... within this distance of a seed, mm (0 = no limit).
    boundary_fraction : float
        Partial-volume boundary: a lesion voxel has ``image / background - 1 >= boundary_fraction x
        pure lesion contrast`` (see ``pure_lesion_min_mm3``). 0.5 = lesion fraction >= 0.5, the truth
        definition.
    boundary_smooth_mm : float
        Gaussian smoothing (sigma, mm) of the image the boundary is cut on (noise).
    boundary_reach_mm : float
        The boundary may lie up to this far outside the grown lesion, mm.
    pure_lesion_min_mm3 : float
        Lesions at least this large set the image's typical pure-lesion contrast, the floor of every
        lesion's own (small lesions never reach their pure intensity), mm3.
    gm_level_percentile : float
        The grey-matter level is this percentile (0-100) of the smoothed image over the grey-matter
        sample: that sample is partial-volumed with CSF (sulci) and white matter (a template prior),
        both darker than cortex on FLAIR, so its median underestimates the cortex (by 3-14 % on the
        synthetic cohort, 5-10 % at the 75th percentile).
    wm_prior_min : float
        White-matter prior (0..1) defining the white matter where lesions may be.
    wm_dilation_mm : float
        That white matter is dilated by this distance, mm (periventricular, juxtacortical lesions).
    region_prior_min : float
        Where a lesion prior is given, voxels with a lesion frequency at least this are also in the
        region where lesions may be.
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
    smooth_mm: float = 1.0
    background_sigma_mm: float = 8.0
    seed_c: float = 5.0
    prior_gain: float = 1.0
    prior_reference: float = 0.02
    seed_c_min: float = 3.0
    seed_c_max: float = 8.0
    seed_above_gm: bool = True
    seed_over_gm: float = 1.1
    grow_over_gm: float = 1.05
    gm_prior_max_wm: float = 0.2
    seed_wm_prior_min: float = 0.5
    seed_gm_prior_max: float = 0.5
    grow_c: float = 2.0
    grow_distance_mm: float = 5.0
    boundary_fraction: float = 0.4
    boundary_smooth_mm: float = 0.0
    boundary_reach_mm: float = 2.0
    pure_lesion_min_mm3: float = 100.0
    gm_level_percentile: float = 75.0
    wm_prior_min: float = 0.3
    wm_dilation_mm: float = 2.0
    region_prior_min: float = 0.01
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
    fill_holes : bool
        Fill the holes a lesion encloses, in 3-D and in each slice (inside the lesion territory):
        the core of a large infarct mixes restricted and pseudo-normalised or T2-dark voxels, and a
        reader's lesion outline does not have holes.
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
    fill_holes: bool = True

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
        The grey-matter level measured on this image (``gm_level_percentile`` of the smoothed image
        over the grey-matter sample), as a NAWM z-score.
    seed_z_used : float
        The seed threshold in local contrast units (c) where the lesion prior is at its reference
        (``params.seed_c``), for the record; with a lesion prior it varies over the image.
    params : FlairLesionParams
        The parameters used.
    contrast : MRImage or None
        float32 local lesion contrast c (0 outside the brain).
    """

    lesion_mask: MRImage
    zscore: MRImage
    nawm_mask: MRImage
    nawm_median: float
    nawm_sigma: float
    gm_ceiling_z: float
    seed_z_used: float
    params: FlairLesionParams
    contrast: MRImage | None = None


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
def _check_inputs(reference: MRImage, **others: MRImage | None) -> None:
    if reference.data.ndim != 3:
        raise GeometryError(
            f"segment one 3-D volume, got shape {reference.shape}; pick a volume first "
            "(e.g. dwi.volume(1) for b=1000)"
        )
    check_same_grid(reference, **others)


def _brain_box(brain: NDArray[np.bool_], margin: int = 2) -> tuple[slice, slice, slice]:
    """Bounding box of the brain, widened by ``margin`` voxels (clipped to the array)."""
    if not brain.any():
        raise NormalizationError("the brain mask is empty")
    return bounding_box(brain, margin)


def _wm_region(
    wm_prior: NDArray[Any], spacing: tuple[float, ...], prior_min: float, dilation_mm: float
) -> NDArray[np.bool_]:
    core = wm_prior >= prior_min
    if dilation_mm <= 0:
        return np.asarray(core)
    return within_mm(core, spacing, dilation_mm)


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
    # the shells lie within shell_mm of the mask: its bounding box widened by that much holds them
    margin = tuple(int(np.ceil(shell_mm / s)) + 1 for s in spacing[:3])
    box = bounding_box(mask, (margin[0], margin[1], margin[2]))
    distance, nearest = ndi.distance_transform_edt(
        ~mask[box], sampling=spacing, return_indices=True
    )
    shell = (distance > 0) & (distance <= shell_mm)
    owner = labels[box][tuple(nearest)][shell]
    shell_size = np.bincount(owner, minlength=n + 1).astype(np.float64)
    shell_csf = np.bincount(owner, weights=csf[box][shell].astype(np.float64), minlength=n + 1)
    fraction = np.divide(shell_csf, shell_size, out=np.zeros(n + 1), where=shell_size > 0)
    keep = fraction <= enclosure_max
    keep[0] = False
    return np.asarray(keep[labels])


def _paste(shape: tuple[int, int, int], box: tuple[slice, ...], part: NDArray[Any]) -> NDArray[Any]:
    full = np.zeros(shape, dtype=part.dtype)
    full[box] = part
    return full


def _smooth(image: NDArray[Any], sigma_mm: float, spacing: tuple[float, ...]) -> NDArray[Any]:
    # wide kernels: 2.5 SD is plenty for a background level and halves the cost
    return gaussian_mm(image, sigma_mm, spacing, truncate=_truncate(sigma_mm))


def _truncate(sigma_mm: float) -> float:
    return 4.0 if sigma_mm <= 2.0 else 2.5


def _local_level(
    image: NDArray[Any],
    sample: NDArray[np.bool_],
    fallback: float,
    sigma_mm: float,
    spacing: tuple[float, ...],
) -> NDArray[Any]:
    """The local level of normal tissue (:func:`imaging.filters.local_mean`)."""
    return local_mean(
        image, sample, fallback, sigma_mm, spacing, min_weight=0.05, truncate=_truncate(sigma_mm)
    )


def _grow_from(seeds: NDArray[np.bool_], candidates: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Seeds plus the 6-connected parts of ``candidates`` that touch a seed."""
    parts, _ = ndi.label(candidates | seeds)
    seeded = np.unique(parts[seeds])
    return np.asarray(np.isin(parts, seeded[seeded > 0]))


def _seed_threshold(
    lesion_prior: NDArray[Any] | None, params: FlairLesionParams
) -> NDArray[Any] | float:
    """Seed threshold (c) per voxel: ``seed_c`` moved by the log prior ratio, clipped."""
    if lesion_prior is None or params.prior_gain == 0:
        return params.seed_c
    ratio = np.maximum(lesion_prior, 1e-4) / params.prior_reference
    threshold = params.seed_c - params.prior_gain * np.log(ratio)
    return np.clip(threshold, params.seed_c_min, params.seed_c_max).astype(np.float32)


def _partial_volume_boundary(
    image: NDArray[Any],
    background: NDArray[Any],
    grown: NDArray[np.bool_],
    seeds: NDArray[np.bool_],
    reach: NDArray[np.bool_],
    fraction: float,
    voxel_mm3: float,
    pure_min_mm3: float,
) -> NDArray[np.bool_]:
    """Cut each grown lesion where its lesion fraction is ``fraction`` (linear partial volume).

    A voxel holding a fraction f of lesion has ``image = background + f x (pure - background)``.
    The pure lesion contrast of a lesion is ``max(own, typical)``: ``own`` = the 90th percentile of
    ``image / background - 1`` over the lesion, ``typical`` = the median of ``own`` over the lesions
    of at least ``pure_min_mm3`` (none: no floor). A lesion smaller than a few voxels (or thinner
    than a thick slice) never reaches its pure intensity: half of its own peak would place its
    boundary near a lesion fraction of 0.25-0.3 and inflate its volume, which is why the typical
    contrast of the image's large lesions is the floor. Every voxel of ``reach`` belongs to its
    nearest grown lesion; parts not connected to a seed are dropped.
    """
    if not grown.any():
        return grown
    labels, n = ndi.label(grown, structure=_FULL)
    idx = np.arange(1, n + 1)
    ratio = image / np.maximum(background, np.float32(1e-6)) - np.float32(1.0)
    own = np.asarray(
        ndi.labeled_comprehension(ratio, labels, idx, lambda v: np.percentile(v, 90), float, 0.0)
    )
    sizes_mm3 = np.bincount(labels.ravel(), minlength=n + 1)[1:] * voxel_mm3
    large = sizes_mm3 >= pure_min_mm3
    pure = np.maximum(own, float(np.median(own[large]))) if large.any() else own
    # each voxel of reach belongs to its nearest lesion (searched in the box that holds them all)
    box = bounding_box(grown | reach, 0)
    _, nearest = ndi.distance_transform_edt(labels[box] == 0, return_indices=True)
    owner = np.zeros_like(labels)
    owner[box] = labels[box][tuple(nearest)]
    level = np.zeros(n + 1, np.float32)
    level[1:] = fraction * pure
    kept = reach & (owner > 0) & (ratio >= level[owner])
    parts, _ = ndi.label(kept)
    seeded = np.unique(parts[kept & seeds])
    return np.asarray(np.isin(parts, seeded[seeded > 0]))


# -------------------------------------------------------------------------------------- FLAIR
def segment_flair_lesions(
    flair: MRImage,
    brain_mask: MRImage,
    wm_prior: MRImage,
    *,
    params: FlairLesionParams | None = None,
    lesion_prior: MRImage | None = None,
    gm_prior: MRImage | None = None,
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
    lesion_prior : MRImage, optional
        Lesion frequency 0..1 on the FLAIR grid (:func:`imaging.lesion_prior.lesion_prior_on`).
        Without it the seed threshold is ``params.seed_c`` everywhere.
    gm_prior : MRImage, optional
        Grey-matter probability 0..1 on the FLAIR grid (better grey-matter sample).

    Returns
    -------
    FlairLesionResult
        Lesion mask (uint8), z-score, contrast map and NAWM mask, all on the FLAIR grid.

    Raises
    ------
    GeometryError
        If the inputs are not 3-D images on one grid.
    NormalizationError
        If the brain mask is empty or holds too little white matter to normalise on.
    """
    params = params or FlairLesionParams()
    optional = {
        name: image
        for name, image in (("lesion_prior", lesion_prior), ("gm_prior", gm_prior))
        if image is not None
    }
    _check_inputs(flair, brain_mask=brain_mask, wm_prior=wm_prior, **optional)
    spacing = flair.spacing_mm
    brain_full = np.asarray(brain_mask.data) > 0
    box = _brain_box(brain_full)
    brain = brain_full[box]
    affine = _crop_affine(flair, box)
    prior = np.asarray(wm_prior.data, dtype=np.float32)[box]
    values = np.asarray(flair.data, dtype=np.float32)[box]
    norm = normalize_to_nawm(
        MRImage(values, affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(prior, affine),
        params=params.nawm,
    )
    z = np.asarray(norm.zscore.data, dtype=np.float32)
    frequency = (
        None if lesion_prior is None else np.asarray(lesion_prior.data, dtype=np.float32)[box]
    )

    # local contrast: smoothed image over the local level of normal-appearing white matter
    csf = brain & (z <= params.csf_z_max)
    smooth = _smooth(np.where(brain, values, np.float32(norm.median)), params.smooth_mm, spacing)
    normal = brain & (prior >= 0.5) & (np.abs(z) <= 2.0)
    background = _local_level(smooth, normal, norm.median, params.background_sigma_mm, spacing)
    residual = smooth - background
    nawm = np.asarray(norm.nawm_mask.data) > 0
    _, spread, _ = robust_location_scale(residual[nawm])
    spread = max(spread, 1e-6 * max(norm.sigma, 1e-6))
    c = np.where(brain, residual / np.float32(spread), np.float32(0.0)).astype(np.float32)
    # a second pass without the bright voxels (lesions) in the background estimate
    normal &= c <= 2.0
    background = _local_level(smooth, normal, norm.median, params.background_sigma_mm, spacing)
    c = np.where(brain, (smooth - background) / np.float32(spread), np.float32(0.0))
    c = c.astype(np.float32)

    deep = brain & (distance_inside_mm(brain, spacing) > params.edge_distance_mm)
    region = _wm_region(prior, spacing, params.wm_prior_min, params.wm_dilation_mm)
    if frequency is not None:
        region |= frequency >= params.region_prior_min
    region &= deep
    csf_distance = distance_to_mm(csf, spacing)
    allowed = region & (csf_distance > params.csf_grow_distance_mm)
    grey_prior = None if gm_prior is None else np.asarray(gm_prior.data, np.float32)[box]
    likely = prior >= params.seed_wm_prior_min
    if frequency is not None:
        frequent = frequency >= params.prior_reference
        if grey_prior is not None:
            # grey-matter structures next to CSF (hippocampus, amygdala) are bright on FLAIR and
            # lie where periventricular lesions are frequent: they may be grown into, not seed
            frequent &= grey_prior < params.seed_gm_prior_max
        likely |= frequent
    seeds_ok = allowed & (csf_distance > params.csf_seed_distance_mm) & likely
    if grey_prior is not None:
        grey = deep & (grey_prior >= 0.5) & ~csf
    else:
        grey = deep & (prior < params.gm_prior_max_wm) & ~csf
    gm_level = (
        float(np.percentile(smooth[grey], params.gm_level_percentile))
        if grey.any()
        else float(norm.median)
    )
    gm_level_z = (gm_level - norm.median) / norm.sigma
    # normal tissue where it is brightest: grey matter when it is brighter than white matter,
    # following the local (bias) level of the white matter
    gm_ratio = max(1.0, gm_level / norm.median) if params.seed_above_gm else 1.0
    tissue = background * np.float32(gm_ratio)
    lesion_c = np.where(brain, (smooth - tissue) / np.float32(spread), np.float32(0.0))
    seed_c = _seed_threshold(frequency, params)
    seeds = seeds_ok & (lesion_c > seed_c) & (smooth >= params.seed_over_gm * tissue)

    grow_ok = allowed.copy()
    if params.grow_distance_mm > 0:
        grow_ok &= within_mm(seeds, spacing, params.grow_distance_mm)
    grown = _grow_from(seeds, grow_ok & (c > params.grow_c))
    boundary_image = _smooth(
        np.where(brain, values, np.float32(norm.median)), params.boundary_smooth_mm, spacing
    )
    reach = grow_ok & within_mm(grown, spacing, params.boundary_reach_mm)
    reach &= boundary_image >= params.grow_over_gm * background * np.float32(gm_level / norm.median)
    lesion = _partial_volume_boundary(
        boundary_image,
        background,
        grown & reach,
        seeds,
        reach,
        params.boundary_fraction,
        flair.voxel_volume_mm3,
        params.pure_lesion_min_mm3,
    )
    lesion = remove_small_components(lesion, flair.voxel_volume_mm3, params.min_lesion_volume_mm3)
    lesion = _drop_csf_enclosed(lesion, csf, spacing, params.csf_shell_mm, params.csf_enclosure_max)

    shape = flair.spatial_shape
    return FlairLesionResult(
        lesion_mask=derived_image(flair, _paste(shape, box, lesion.astype(np.uint8))),
        zscore=derived_image(flair, _paste(shape, box, z)),
        nawm_mask=derived_image(flair, _paste(shape, box, np.asarray(norm.nawm_mask.data))),
        nawm_median=norm.median,
        nawm_sigma=norm.sigma,
        gm_ceiling_z=float(gm_level_z),
        seed_z_used=float(params.seed_c),
        params=params,
        contrast=derived_image(flair, _paste(shape, box, c)),
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

    deep = brain & (distance_inside_mm(brain, spacing) > params.edge_distance_mm)
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
    if params.fill_holes:
        lesion = fill_holes_2d3d(lesion) & region
    lesion = remove_small_components(lesion, b1000.voxel_volume_mm3, params.min_lesion_volume_mm3)

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
