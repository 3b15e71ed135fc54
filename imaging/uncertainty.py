"""How sure each measurement is: intervals from perturbed re-segmentation, and change against noise.

A lesion volume is one draw of a noisy process: another scan of the same brain would differ in head
pose, noise and bias, and the registrations and the template fit would land a little elsewhere. This
module estimates, per measurement, the spread that those sources give, by measuring it:

* **registration and template-fit jitter**: each draw moves the fitted transforms by a small random
  rigid motion (rotation and translation about the brain's centre, normal with the SDs of
  :class:`UncertaintyParams`); the priors, brain mask and regions follow, the image is segmented
  again and, for tracking, its mask is carried to baseline through the moved registration. The
  template fit's jitter is shared by all sessions of one draw (there is one fit per case), so it
  largely cancels in session-to-session changes, as it does in reality;
* **head pose, sampling and image noise**: each draw resamples the image on its grid turned by a
  small random rotation and moved by a random fraction of a voxel (a new scan samples the head at
  another pose: small lesions and lesion edges fall differently into voxels and slices) and adds
  white noise at the level estimated from the image
  itself (:func:`noise_sd`) before segmenting; to first order the spread of
  ``segment(image + noise)`` equals that of ``segment(truth + noise)`` over independent scans;
* **the partial-volume band**: voxels whose lesion fraction (:func:`lesion_fraction`) lies between
  0.3 and 0.7 could be counted either way; the volume is taken as uniformly uncertain between the
  volume with only the voxels above 0.7 and that with every voxel above 0.3 (SD = width / sqrt(12));
  the DWI lesion's fraction is read on the ADC deficit (:func:`adc_deficit`), and its band also
  holds the restricted tissue the FLAIR lesions the DWI lesion misses may hold (the upper end of
  its interval, :func:`hidden_restricted_ml` with ``upper``);
* **the engine's own probability**, when it gives one: SD = sqrt(sum p (1 - p)) voxels;
* **lesions seen in one session only** (DWI volume changes): a lesion of a few DWI voxels is
  found on one scan and missed on the next, and no re-segmentation of one image reproduces that.
  Where a session's ADC still reads restricted tissue at a lesion only the other session found
  (:func:`missed_lesions`, :func:`hidden_restricted_ml`), the change's interval reaches over that
  tissue whole (``change_estimate(reach=...)``); likewise the FLAIR-lesion rADC's change reaches
  over the change read on either session's lesion footprint in both sessions (the two
  segmentations differ; :mod:`followup.analyze` reads them). Per lesion, a lesion found on one
  scan only is new or resolved beyond noise only when the other scan's image shows its tissue is
  not there, and a lesion followed from scan to scan changes beyond noise only when both images,
  read over one footprint, agree (:func:`footprint_reading`, :mod:`imaging.track`);
* **the engine's response to a change** (changes only): on the development set of synthetic
  test-retest pairs the engine followed only part of some lesion loads' growth (thick slices, small
  lesions), an error no perturbation of one image reproduces; it enters as an SD of
  ``change_relative_sd`` times the mean of the two volumes (measured there, README *Uncertainty*).

The sources are combined in quadrature; a 95 % interval is ``value +- z * SD`` (volumes clipped at
0), for a measure whose value sits at one end of its band (the DWI volume) widened to hold the
interval about the band's midpoint too (``UncertaintyParams.band_centred``). A session-to-session
change gets the same from the paired draws (draw ``d`` of both sessions shares its template
jitter) and from the partial-volume band of the change (the change measured with the 0.7 cut
against the change with the 0.3 cut). The DWI lesion's rADC change also holds the draws' own
mean change (``UncertaintyParams.draws_centred``): every draw resamples its image, and where
that alone moves the reading (the blur of a resampled 5 mm grid mixes a lesion's edge with
normal tissue) the draws' mean stands off the value; when the two sessions stand off by
different amounts, part of the change is the images' sampling, not the tissue. A change is
**beyond measurement noise** (``increase`` or ``decrease``) when its interval excludes 0, else
**within noise**.

Everything here is image maths on :class:`~imaging.image.MRImage`; the pipeline draws
(:mod:`imaging.pipeline`) and the tables are written in :mod:`followup.analyze`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.normalize import robust_location_scale
from imaging.register import resample

__all__ = [
    "LEVELS",
    "Draw",
    "Estimate",
    "FootprintReading",
    "UncertaintyParams",
    "adc_deficit",
    "change_estimate",
    "change_label",
    "estimate",
    "footprint_reading",
    "grid_motion",
    "hidden_restricted_ml",
    "hidden_restricted_share",
    "label_volumes_mm3",
    "lesion_fraction",
    "missed_lesions",
    "moved_grid",
    "noise_sd",
    "partial_volume_masks",
    "perturbed_image",
    "probability_sd_voxels",
    "rigid_jitter",
    "rim_share",
    "with_noise",
]

#: Draws (perturbed re-segmentations per session) of each ``--uncertainty`` level.
LEVELS = {"off": 0, "fast": 4, "standard": 8, "full": 16}
_FULL = np.ones((3, 3, 3), bool)
WITHIN = "within noise"


@dataclass(frozen=True)
class UncertaintyParams:
    """Settings of the uncertainty estimate; recorded with the results.

    Attributes
    ----------
    name : str
        The level (``off``, ``fast``, ``standard``, ``full``; see :data:`LEVELS`).
    draws : int
        Perturbed re-segmentations per session and source (0: no intervals).
    template_rotation_deg, template_translation_mm : float
        SD per axis of the rigid jitter of the template fit (shared by the sessions of a draw).
    session_rotation_deg, session_translation_mm : float
        SD per axis of the rigid jitter of each session's registration to baseline and of each
        DWI's registration to its FLAIR.
    pose_rotation_deg : float
        SD per axis of the rotation of each draw's sampling grid (a new head pose).
    noise_scale : float
        The added noise's SD as a multiple of the estimated image noise.
    pv_low, pv_high : float
        The partial-volume band: lesion fractions between these are ambiguous.
    band_weight : float
        The band's SD (its width / sqrt(12)) is scaled by this before it joins the draws' SD.
    volume_relative_sd : float
        The engine's own volume error that none of the perturbations reproduces (lesions too small
        or too faint to find in any draw), as an SD relative to the volume (0: on the development
        set of ``benchmarks/calibrate_uncertainty.py`` the volume intervals covered 97 % without
        it; README, *Uncertainty*).
    change_relative_sd : float
        The same for a change between two sessions, relative to the mean of their volumes
        (0.01: on the development set the engine followed part of a lesion load's growth only;
        the smallest value of ``benchmarks/fit_uncertainty.py``'s grid that brings the change
        intervals' coverage there into 90-98 % with the final code).
    band_centred : tuple of str
        The sessions.tsv measures whose interval is also centred on their band's midpoint (the
        union of the intervals about the value and about the midpoint): the DWI lesion volume,
        whose value sits at the band's low end, because the engine thresholds the ADC of mixed
        voxels (see :func:`estimate`).
    draws_centred : tuple of str
        The sessions.tsv measures whose change's interval also holds the interval about the paired
        draws' mean change (``change_estimate(draws_centred=True)``): the DWI lesion's rADC, whose
        reading moves when the image is only resampled (on a real stroke DWI re-sliced by 1-3
        degrees, ``benchmarks/reslice_realdata.py``, the rADC rose by 0.008-0.010 and was called
        an increase in 2 of 3 re-slices; the draws' mean stood 0.011 above the value on the
        original image and 0.006 on its re-slice). Not the volumes: their changes are what the
        synthetic sets score for power, and on the real re-slices none was a false change. Not
        the FLAIR-lesion rADC: its change already reaches over its reading on either session's
        footprint, and its draws, read over FLAIR lesions that fill part of each 4-5 mm ADC
        voxel, follow a true change by less (the sample case's day-8 rise, +0.22, would have lost
        its call: the draws' mean change stood 0.07 lower); the DWI rADC's draws followed the same
        rise to 0.91 of it.
    hidden_restricted : bool
        Extend the DWI lesion volume's band by the most restricted tissue the FLAIR lesions may
        hold where the DWI lesion's band does not reach (the upper end of its ``z`` interval,
        :func:`hidden_restricted_ml`).
    z : float
        Normal quantile of the intervals (1.96: 95 %).
    seed : int
        Seed of the draws (results are reproducible).
    """

    name: str = "standard"
    draws: int = LEVELS["standard"]
    template_rotation_deg: float = 1.0
    template_translation_mm: float = 1.0
    session_rotation_deg: float = 0.3
    session_translation_mm: float = 0.3
    pose_rotation_deg: float = 2.0
    noise_scale: float = 1.0
    pv_low: float = 0.3
    pv_high: float = 0.7
    band_weight: float = 1.0
    volume_relative_sd: float = 0.0
    change_relative_sd: float = 0.01
    band_centred: tuple[str, ...] = ("dwi_lesion_volume_ml",)
    draws_centred: tuple[str, ...] = ("radc",)
    hidden_restricted: bool = True
    z: float = 1.96
    seed: int = 16

    @classmethod
    def level(cls, name: str) -> UncertaintyParams:
        """The settings of a level of :data:`LEVELS`.

        Raises
        ------
        ImagingError
            On an unknown level.
        """
        key = name.strip().lower()
        if key not in LEVELS:
            raise ImagingError(
                f"--uncertainty {name!r}: choose one of {', '.join(LEVELS)} (draws per session: "
                + ", ".join(f"{k} {v}" for k, v in LEVELS.items())
                + ")"
            )
        return replace(cls(), name=key, draws=LEVELS[key])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)


@dataclass
class Draw:
    """One perturbed re-segmentation of a session (``None`` where the session lacks the source).

    Attributes
    ----------
    flair_mask, dwi_mask : MRImage or None
        uint8 lesion masks on the FLAIR and DWI grids.
    adc_um2s : MRImage or None
        The ADC with this draw's noise (um2/s), on the DWI grid.
    nawm_adc_um2s : float
        This draw's normal-appearing white-matter ADC (nan when unknown).
    to_baseline, dwi_to_baseline, dwi_to_reference : ndarray, shape (4, 4)
        The jittered transforms (RAS mm) the draw used.
    """

    flair_mask: MRImage | None
    dwi_mask: MRImage | None
    adc_um2s: MRImage | None
    nawm_adc_um2s: float
    to_baseline: NDArray[np.float64]
    dwi_to_baseline: NDArray[np.float64]
    dwi_to_reference: NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """A measurement with its 95 % interval.

    Attributes
    ----------
    value : float
        The measurement as made on the image.
    sd : float
        Combined SD of the sources (same unit).
    low, high : float
        The interval (``value -+ z sd``, volumes clipped at 0).
    label : str
        For changes: ``increase``, ``decrease`` or ``within noise``; empty for values.
    """

    value: float
    sd: float
    low: float
    high: float
    label: str = ""


def rigid_jitter(
    rng: np.random.Generator,
    centre_mm: NDArray[np.float64],
    rotation_deg: float,
    translation_mm: float,
) -> NDArray[np.float64]:
    """A small random rigid motion about ``centre_mm`` (world mm), shape (4, 4).

    Rotation angles about x, y and z and the translation along each axis are normal with the given
    SDs (degrees, mm).
    """
    ax, ay, az = np.deg2rad(rng.normal(0.0, rotation_deg, 3))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    rotation = rx @ ry @ rz
    centre = np.asarray(centre_mm, np.float64)[:3]
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + rng.normal(0.0, translation_mm, 3)
    return matrix


def brain_centre_mm(brain: MRImage) -> NDArray[np.float64]:
    """World centre (mm, shape (3,)) of a mask's voxels; the grid's centre for an empty mask."""
    inside = np.argwhere(np.asarray(brain.data) > 0)
    ijk = inside.mean(axis=0) if inside.size else (np.asarray(brain.spatial_shape) - 1) / 2.0
    return np.asarray(brain.voxel_to_world_mm(ijk), np.float64)


def noise_sd(image: MRImage, brain: MRImage) -> float:
    """Robust SD of the image noise inside the brain (image units).

    From the differences of neighbouring voxels along the finest-sampled axis (pure noise gives
    ``var = 2 sd^2``), with the median absolute deviation so that tissue edges do not count; on the
    brain eroded by one voxel. A hand-written estimate because the library ones
    (``skimage.restoration.estimate_sigma``) cannot be limited to the brain, and the background of
    a magnitude image holds Rayleigh, not Gaussian, noise.
    """
    data = np.asarray(image.data, np.float64)
    inside = ndi.binary_erosion(np.asarray(brain.data) > 0, structure=np.ones((3, 3, 3), bool))
    axis = int(np.argmin(image.spacing_mm))
    if data.shape[axis] < 2 or not inside.any():
        return 0.0
    differences = np.diff(data, axis=axis)
    both = np.logical_and(
        np.take(inside, range(inside.shape[axis] - 1), axis=axis),
        np.take(inside, range(1, inside.shape[axis]), axis=axis),
    )
    values = differences[both]
    if values.size < 100:
        return 0.0
    mad = float(np.median(np.abs(values - np.median(values))))
    return 1.4826 * mad / math.sqrt(2.0)


def with_noise(
    image: MRImage,
    brain: MRImage,
    sd: float,
    rng: np.random.Generator,
    *,
    floor: float | None = 0.0,
) -> MRImage:
    """The image with white Gaussian noise of ``sd`` (image units) added inside the brain (float32).

    ``floor`` clips the result from below (0 for magnitude images; None keeps negatives).
    """
    data = np.asarray(image.data, np.float32)
    inside = np.asarray(brain.data) > 0
    noisy = data + np.where(inside, rng.normal(0.0, sd, data.shape), 0.0).astype(np.float32)
    if floor is not None:
        noisy = np.maximum(noisy, np.float32(floor))
    return image.with_data(noisy)


def moved_grid(image: MRImage, motion: NDArray[np.float64]) -> MRImage:
    """The image resampled (linear) onto its own grid moved by the rigid ``motion`` (4, 4, world
    mm): the same tissue sampled at other voxel and slice positions and orientation, as a scan
    with another head pose would sample it."""
    moved = np.asarray(motion, np.float64) @ np.asarray(image.affine, np.float64)
    grid = MRImage(np.zeros(image.spatial_shape, np.uint8), moved)
    return resample(image, grid, np.eye(4), interpolation="linear")


def grid_motion(
    rng: np.random.Generator, image: MRImage, centre_mm: NDArray[np.float64], rotation_deg: float
) -> NDArray[np.float64]:
    """A new head pose for a draw: a rotation (normal, SD ``rotation_deg`` per axis) about
    ``centre_mm`` and a shift of up to half a voxel along each grid axis (uniform), (4, 4)."""
    motion = rigid_jitter(rng, centre_mm, rotation_deg, 0.0)
    shift_vox = rng.uniform(-0.5, 0.5, 3)
    motion[:3, 3] += np.asarray(image.affine, np.float64)[:3, :3] @ shift_vox
    return motion


def perturbed_image(
    image: MRImage,
    brain: MRImage,
    *,
    noise_sd_units: float,
    motion: NDArray[np.float64],
    rng: np.random.Generator,
    floor: float | None = 0.0,
) -> MRImage:
    """One draw's image: resampled on a moved grid (:func:`moved_grid`), then with white noise of
    ``noise_sd_units`` added inside the brain (carried onto the new grid)."""
    moved = moved_grid(image, motion)
    inside = resample(brain, moved, np.eye(4), interpolation="nearest")
    return with_noise(moved, inside, noise_sd_units, rng, floor=floor)


def lesion_fraction(
    image: MRImage, mask: MRImage, brain: MRImage, *, shell_mm: tuple[float, float] = (1.5, 4.0)
) -> NDArray[np.float32]:
    """The lesion fraction of the voxels in and around each lesion, shape (I, J, K), 0..1.

    For each 26-connected lesion: ``f = (I - background) / (core - background)``, with the core the
    median of the lesion's voxels above its own median (its brighter half) and the background the
    median of brain voxels in a shell ``shell_mm`` away from it (other lesions excluded). Voxels
    farther than the shell's outer radius from every lesion get 0.
    """
    data = np.asarray(image.data, np.float64)
    lesion = np.asarray(mask.data) > 0
    inside = np.asarray(brain.data) > 0
    fraction = np.zeros(data.shape, np.float32)
    if not lesion.any():
        return fraction
    spacing = image.spacing_mm
    distance, nearest = ndi.distance_transform_edt(~lesion, sampling=spacing, return_indices=True)
    components, _count = ndi.label(lesion, structure=_FULL)
    owner = components[tuple(nearest)]  # the lesion each voxel is nearest to
    near = distance <= shell_mm[1]
    shell = (distance >= shell_mm[0]) & near & inside
    flat_owner = owner[near]
    flat_data = data[near]
    flat_lesion = lesion[near]
    flat_shell = shell[near]
    out = np.zeros(flat_data.shape, np.float32)
    order = np.argsort(flat_owner, kind="stable")
    bounds = np.searchsorted(flat_owner[order], np.arange(1, _count + 2))
    for label in range(1, _count + 1):
        where = order[bounds[label - 1] : bounds[label]]
        values = flat_data[where]
        own = values[flat_lesion[where]]
        around = values[flat_shell[where]]
        if own.size == 0 or around.size < 5:
            out[where] = flat_lesion[where].astype(np.float32)
            continue
        core = float(np.median(own[own >= np.median(own)]))
        background = float(np.median(around))
        if core <= background:
            out[where] = flat_lesion[where].astype(np.float32)
            continue
        out[where] = np.clip((values - background) / (core - background), 0.0, 1.0)
    fraction[near] = out
    return fraction


def adc_deficit(radc: MRImage, brain: MRImage) -> MRImage:
    """The ADC deficit ``1 - rADC`` in the brain (0 outside), float32, on ``radc``'s grid.

    The DWI lesion's partial-volume band is cut on it rather than on the trace: the lesion is
    *restricted* tissue, and on 4-5 mm slices the voxels around a mildly restricted lesion (rADC
    0.6-0.65) are partly restricted without being bright enough on the trace, nor low enough in
    ADC, to pass the engine's thresholds. Their share of lesion, measured on the quantity that
    defines the lesion, is what the band's outer cut (fraction 0.3) must take in.
    """
    inside = np.asarray(brain.data) > 0
    deficit = np.where(inside, 1.0 - np.asarray(radc.data, np.float32), 0.0)
    return radc.with_data(deficit.astype(np.float32), sequence="OTHER")


def hidden_restricted_ml(
    radc: MRImage,
    lesion_share: MRImage,
    reached: MRImage,
    brain: MRImage,
    *,
    pure_deficit: float,
    deficit_sd: float,
    min_share: float = 0.3,
    z: float = 2.0,
    upper: bool = False,
) -> float:
    """Restricted tissue that lesions seen elsewhere hold where the DWI lesion's band does not
    reach, mL: what the ADC shows beyond noise, or with ``upper`` the most it may hold.

    On 4-5 mm DWI slices a small or mildly restricted lesion never reads restricted: its voxels mix
    it with normal tissue, and the engine finds nothing there. A lesion seen elsewhere says where
    such tissue may be: the session's FLAIR lesion, on a finer grid, or the DWI lesion another
    session found there. For each such lesion on the ADC grid (26-connected voxels it fills to at
    least ``min_share``), outside ``reached``: a voxel filled to share ``s`` with
    lesion tissue of which a part ``rho`` is restricted, of pure deficit ``pure_deficit``
    (``1 - rADC``), has an ADC deficit of about ``s rho pure_deficit``; the least-squares
    ``rho`` over the lesion's voxels (``sum s d / sum s^2 / pure_deficit``, clipped to 0..1)
    times the lesion's volume ``sum s`` counts when its deficit is beyond noise (``z`` standard
    errors, from the voxels' deficit SD ``deficit_sd``).

    With ``upper`` every such lesion counts, and the result is the upper end of the ``z`` interval
    of their summed restricted tissue (the estimates summed, their standard errors in quadrature,
    at most the lesions' volume): the outer end of a band must hold what the ADC cannot rule out.
    A lesion of a few voxels on 4-5 mm slices reads a deficit too noisy to be beyond noise, and
    the estimate counts none of it; the bound counts it up to what its noise leaves open, while a
    lesion whose ADC reads normal tissue to within a small error adds almost nothing.

    Parameters
    ----------
    radc : MRImage
        ADC over normal white matter's, shape (I, J, K) (the ADC grid).
    lesion_share : MRImage
        The share of each ADC voxel the lesion seen elsewhere fills, 0..1, same grid
        (:func:`imaging.edit.mask_share_onto`).
    reached : MRImage
        The DWI lesion band's outer cut (voxels already counted), same grid.
    brain : MRImage
        Brain mask, same grid.
    pure_deficit : float
        ``1 - rADC`` of pure restricted tissue.
    deficit_sd : float
        SD of one voxel's deficit in normal tissue (the ADC map's noise over its median).
    min_share, z : float
        See above.
    upper : bool
        Return the upper end of the hidden tissue's interval rather than the tissue beyond noise.

    Returns
    -------
    float
        The volume, mL (0 when no such lesion holds restricted tissue beyond noise).
    """
    parts = _hidden_parts(radc, lesion_share, reached, brain, min_share=min_share)
    if parts is None or pure_deficit <= 0:
        return 0.0
    _, s1, s2, scaled = parts
    standard_error = deficit_sd / np.sqrt(s2)
    rho = np.clip(scaled / pure_deficit, 0.0, 1.0)
    voxel_ml = radc.voxel_volume_mm3 / 1000.0
    if upper:
        tissue_se = s1 * standard_error / pure_deficit
        bound = float(np.sum(rho * s1) + z * math.sqrt(float(np.sum(tissue_se**2))))
        return min(bound, float(np.sum(s1))) * voxel_ml
    counted = scaled > z * standard_error
    return float(np.sum(rho[counted] * s1[counted]) * voxel_ml)


def hidden_restricted_share(
    radc: MRImage,
    lesion_share: MRImage,
    reached: MRImage,
    brain: MRImage,
    *,
    pure_deficit: float,
    deficit_sd: float,
    min_share: float = 0.3,
    z: float = 2.0,
) -> MRImage:
    """The most restricted tissue each voxel may hold next to a DWI lesion, as a share of the voxel.

    The per-lesion form of :func:`hidden_restricted_ml` with ``upper``: a DWI lesion found on
    4-5 mm slices is the most restricted core of a lesion whose rim the engine misses. Each part
    of a lesion seen elsewhere that lies outside ``reached`` and touches it (26-connected) may hold
    restricted tissue up to the upper end of its ``z`` interval, ``rho_upper = min(rho + z se /
    pure_deficit, 1)`` of its volume; each of its voxels gets ``rho_upper`` times the share the
    lesion fills, so that the part's voxels sum to its bound. Parts that touch no DWI lesion get 0:
    they belong to no DWI lesion's volume (the session's volume counts them,
    :func:`hidden_restricted_ml`).

    Parameters
    ----------
    radc, lesion_share, reached, brain : MRImage
        As in :func:`hidden_restricted_ml`, shape (I, J, K) (the ADC grid).
    pure_deficit, deficit_sd, min_share, z : float
        As in :func:`hidden_restricted_ml`.

    Returns
    -------
    MRImage
        float32 share of each voxel, 0..1, on the ADC grid (0 outside the parts).
    """
    out = np.zeros(radc.shape, np.float32)
    parts = _hidden_parts(radc, lesion_share, reached, brain, min_share=min_share)
    if parts is not None and pure_deficit > 0:
        labels, _, s2, scaled = parts
        rho = np.clip(scaled / pure_deficit, 0.0, 1.0)
        upper = np.minimum(rho + z * deficit_sd / np.sqrt(s2) / pure_deficit, 1.0)
        touching = np.unique(labels[ndi.binary_dilation(np.asarray(reached.data) > 0, _FULL)])
        touching = touching[touching > 0]
        weight = np.zeros(upper.size + 1)  # by label; 0 for the background and untouched parts
        weight[touching] = upper[touching - 1]
        out = (weight[labels] * np.asarray(lesion_share.data, np.float64)).astype(np.float32)
    return radc.with_data(out, sequence="OTHER")


def rim_share(radc: MRImage, reached: MRImage, brain: MRImage, *, deficit_sd: float) -> MRImage:
    """The voxels right around each DWI lesion's band (26-neighbourhood), as a share of 1.

    The band's outer cut takes the voxels a lesion fills to at least 0.3 *of its own core*; a
    lesion of a few 4-5 mm voxels has no pure core, and its restricted tissue spread thin over the
    voxels around it is cut away, even where no FLAIR lesion says it is there. These voxels, given
    to :func:`hidden_restricted_share` as a lesion filling them whole, let its least-squares fit say
    how much restricted tissue they may hold. Voxels reading far above normal white matter's ADC
    (a deficit below ``-3 deficit_sd``: cerebrospinal fluid) hold none and are left out, so
    their ADC does not pull the rim's fit down.

    Parameters
    ----------
    radc, reached, brain : MRImage
        As in :func:`hidden_restricted_ml`, shape (I, J, K).
    deficit_sd : float
        SD of one voxel's deficit in normal tissue.

    Returns
    -------
    MRImage
        float32, 1 on the rim, 0 elsewhere.
    """
    band = np.asarray(reached.data) > 0
    values = np.asarray(radc.data, np.float64)
    rim = ndi.binary_dilation(band, _FULL) & ~band & (np.asarray(brain.data) > 0)
    rim &= (values > 0) & (1.0 - values >= -3.0 * deficit_sd)
    return radc.with_data(rim.astype(np.float32), sequence="OTHER")


def _hidden_parts(
    radc: MRImage, lesion_share: MRImage, reached: MRImage, brain: MRImage, *, min_share: float
) -> tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None:
    """The parts of a lesion seen elsewhere outside ``reached`` (:func:`hidden_restricted_ml`):
    their label map, and per part (index ``label - 1``) ``sum s``, ``sum s^2`` and the
    least-squares deficit of its tissue, ``sum s d / sum s^2``; None without any."""
    share = np.asarray(lesion_share.data, np.float64)
    inside = (np.asarray(brain.data) > 0) & (np.asarray(radc.data) > 0)
    candidates = (share >= min_share) & inside & ~(np.asarray(reached.data) > 0)
    if not candidates.any():
        return None
    deficit = 1.0 - np.asarray(radc.data, np.float64)
    labels, count = ndi.label(candidates, structure=_FULL)
    index = np.arange(1, count + 1)
    s1 = np.asarray(ndi.sum(share, labels, index), np.float64)
    s2 = np.asarray(ndi.sum(share * share, labels, index), np.float64)
    sd = np.asarray(ndi.sum(share * deficit, labels, index), np.float64)
    return labels.astype(np.int32), s1, s2, sd / s2


@dataclass(frozen=True)
class FootprintReading:
    """The lesion signal an image holds over a lesion's footprint (:func:`footprint_reading`).

    Attributes
    ----------
    signal : float
        Least-squares excess over the local background, relative (``I / background - 1`` on a
        bright sequence, ``1 - I / background`` on a dark one), of tissue filling a whole voxel.
    se : float
        Its standard error from the background's voxel-to-voxel spread (nan when unknown).
    """

    signal: float
    se: float

    def share_of(self, seer: FootprintReading, z: float) -> float:
        """How much of ``seer``'s lesion tissue this reading may hold at most, 0..1.

        ``(signal + z se) / seer.signal`` clipped to 0..1; 1 (it may hold all of it) when either
        reading is unknown or ``seer``'s is not above its background.
        """
        if not (math.isfinite(self.signal) and math.isfinite(self.se)):
            return 1.0
        if not (math.isfinite(seer.signal) and seer.signal > 0):
            return 1.0
        return float(np.clip((self.signal + z * self.se) / seer.signal, 0.0, 1.0))


def _box_around(
    mask: NDArray[np.bool_], margin_mm: float, spacing_mm: tuple[float, ...]
) -> tuple[slice, ...]:
    """The bounding box of a non-empty mask grown by ``margin_mm`` (and one voxel), cut to the
    grid: distance maps around sparse lesions run on it rather than on the whole grid."""
    pad = np.ceil(margin_mm / np.asarray(spacing_mm)).astype(int) + 1
    found = np.argwhere(mask)
    low = np.maximum(found.min(axis=0) - pad, 0)
    high = np.minimum(found.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def footprint_reading(
    image: MRImage,
    share: MRImage,
    brain: MRImage,
    *,
    exclude: MRImage | None = None,
    bright: bool = True,
    shell_mm: tuple[float, float] = (1.5, 5.0),
    min_shell_voxels: int = 10,
) -> FootprintReading:
    """Read the lesion signal an image holds over a footprint given as each voxel's share.

    A lesion found on one scan and not on the other is either gone or missed: on 3-5 mm slices a
    small lesion falls into voxels differently on every scan, and the engine finds it on one and
    not the next. The other scan's image tells which: over the lesion's footprint (carried onto its
    grid as the share ``s`` of each voxel it fills, :func:`imaging.edit.mask_share_onto`) a voxel
    filled to share ``s`` with lesion tissue of relative signal ``c`` reads ``x = s c`` above its
    background. The least-squares ``c`` is ``sum s x / sum s^2``, its standard error
    ``sd(x) / sqrt(sum s^2)``; ``x = I / b - 1`` (or ``1 - I / b`` on a dark sequence, the ADC),
    with ``b`` the median of the brain voxels in a shell ``shell_mm`` away from the footprint and
    ``sd(x)`` their robust spread (median absolute deviation). Reading the scan that found the
    lesion the same way gives the signal the lesion's tissue has; the ratio of the two readings
    is the share of that tissue the other scan holds (:meth:`FootprintReading.share_of`).

    Parameters
    ----------
    image : MRImage
        The scan, shape (I, J, K) (FLAIR, or the ADC map with ``bright=False``).
    share : MRImage
        The footprint's share of each voxel, 0..1, same grid.
    brain : MRImage
        Brain mask, same grid.
    exclude : MRImage, optional
        Voxels left out of the background (the scan's own lesions), same grid.
    bright : bool
        The lesion is brighter than its background (FLAIR) or darker (ADC).
    shell_mm : (float, float)
        Inner and outer distance of the background shell from the footprint, mm.
    min_shell_voxels : int
        Fewer background voxels than this give an unknown reading (nan).

    Returns
    -------
    FootprintReading
        nan signal and SE when the footprint is empty or the background too small.
    """
    s = np.asarray(share.data, np.float64)
    support = s > 0
    if not support.any():
        return FootprintReading(math.nan, math.nan)
    spacing = tuple(float(v) for v in image.spacing_mm)
    box = _box_around(support, shell_mm[1], spacing)
    data = np.asarray(image.data, np.float64)[box]
    inside = (np.asarray(brain.data)[box] > 0) & np.isfinite(data)
    if exclude is not None:
        inside &= ~(np.asarray(exclude.data)[box] > 0)
    distance = ndi.distance_transform_edt(~support[box], sampling=tuple(spacing))
    shell = inside & (distance >= shell_mm[0]) & (distance <= shell_mm[1])
    around = data[shell]
    if around.size < min_shell_voxels:
        return FootprintReading(math.nan, math.nan)
    background = float(np.median(around))
    if not background > 0:
        return FootprintReading(math.nan, math.nan)
    sign = 1.0 if bright else -1.0
    excess = sign * (data / background - 1.0)
    _, spread, _ = robust_location_scale(excess[shell], n_trim_iterations=0)
    weights = np.where((np.asarray(brain.data)[box] > 0) & np.isfinite(data), s[box], 0.0)
    s2 = float(np.sum(weights * weights))
    if not s2 > 0:
        return FootprintReading(math.nan, math.nan)
    signal = float(np.sum(weights * np.nan_to_num(excess)) / s2)
    return FootprintReading(signal, spread / math.sqrt(s2))


def missed_lesions(lesion_share: MRImage, found: MRImage, *, min_share: float = 0.3) -> MRImage:
    """The part of ``lesion_share`` whose lesions ``found`` does not touch, same grid.

    ``lesion_share`` is the share of each voxel that another session's lesions fill
    (:func:`imaging.edit.mask_share_onto`); its lesions are the 26-connected voxels filled to at
    least ``min_share``. A lesion that touches ``found`` (this session's band, grown by one voxel)
    was seen here too, and its difference is the band's; the others were missed here.
    """
    share = np.asarray(lesion_share.data, np.float32)
    labels, count = ndi.label(share >= min_share, structure=_FULL)
    if count == 0:
        return lesion_share.with_data(np.zeros_like(share), sequence="OTHER")
    near = ndi.binary_dilation(np.asarray(found.data) > 0, structure=_FULL)
    seen = np.unique(labels[near & (labels > 0)])
    keep = (labels > 0) & ~np.isin(labels, seen)
    return lesion_share.with_data(np.where(keep, share, np.float32(0.0)), sequence="OTHER")


def partial_volume_masks(
    image: MRImage, mask: MRImage, brain: MRImage, *, low: float = 0.3, high: float = 0.7
) -> tuple[MRImage, MRImage]:
    """The lesion mask cut at the two ends of the partial-volume band, on the mask's grid.

    Returns
    -------
    inner : MRImage
        uint8: the lesion's voxels whose lesion fraction is at least ``high``.
    outer : MRImage
        uint8: the lesion's voxels and the voxels touching it (26-neighbours) whose fraction is at
        least ``low``.
    """
    fraction = lesion_fraction(image, mask, brain)
    lesion = np.asarray(mask.data) > 0
    ring = ndi.binary_dilation(lesion, structure=_FULL) & ~lesion & (np.asarray(brain.data) > 0)
    inner = lesion & (fraction >= high)
    outer = lesion | (ring & (fraction >= low))
    return (
        mask.with_data(inner.astype(np.uint8), sequence="OTHER"),
        mask.with_data(outer.astype(np.uint8), sequence="OTHER"),
    )


def probability_sd_voxels(probability: MRImage | None) -> float:
    """SD of the lesion voxel count implied by an engine's probabilities, ``sqrt(sum p (1 - p))``."""
    if probability is None:
        return 0.0
    p = np.clip(np.asarray(probability.data, np.float64), 0.0, 1.0)
    return float(math.sqrt(float(np.sum(p * (1.0 - p)))))


def _sd(draws: Sequence[float]) -> float:
    values = np.asarray([d for d in draws if math.isfinite(d)], np.float64)
    return float(np.std(values, ddof=1)) if values.size >= 2 else math.nan


def estimate(
    value: float,
    draws: Sequence[float],
    *,
    band: tuple[float, float] | None = None,
    band_weight: float = 1.0,
    other_sd: float = 0.0,
    z: float = 1.96,
    non_negative: bool = True,
    band_centred: bool = False,
    also_about: Sequence[float] = (),
) -> Estimate:
    """A value's interval from its perturbed draws, its partial-volume band and other SDs.

    Parameters
    ----------
    value : float
        The measurement.
    draws : sequence of float
        The same measurement on each perturbed re-segmentation (at least 2 finite).
    band : (float, float), optional
        The measurement with only the voxels above the band and with every voxel above it.
    band_weight : float
        Scale of the band's SD (``|band| / sqrt(12)``).
    other_sd : float
        Further independent SD (e.g. the engine's probability), same unit.
    z : float
        Normal quantile of the interval.
    non_negative : bool
        Clip the interval at 0 (volumes).
    band_centred : bool
        Also take in the interval about the band's midpoint: ``[min(value, mid) - z sd,
        max(value, mid) + z sd]``. The band says the truth lies anywhere between its cuts; when the
        value sits near one end of it (the DWI engine's threshold on the ADC of mixed voxels keeps
        mostly the voxels above the band's centre), an interval about the value alone leaves
        out the other end.
    also_about : sequence of float
        Further centres whose intervals (``+- z sd``) the interval also takes in, the same union
        as ``band_centred`` (:func:`change_estimate` with ``draws_centred``).

    Returns
    -------
    Estimate
        nan everywhere when ``value`` is not finite or fewer than 2 draws are.
    """
    spread = _sd(draws)
    if not math.isfinite(value) or not math.isfinite(spread):
        return Estimate(value, math.nan, math.nan, math.nan)
    band_sd = band_weight * abs(band[1] - band[0]) / math.sqrt(12.0) if band is not None else 0.0
    sd = math.sqrt(spread**2 + band_sd**2 + other_sd**2)
    centres = [value, *also_about]
    if band_centred and band is not None:
        centres.append((band[0] + band[1]) / 2.0)
    low, high = min(centres) - z * sd, max(centres) + z * sd
    if non_negative:
        low, high = max(low, 0.0), max(high, 0.0)
    return Estimate(value, sd, low, high)


def change_label(low: float, high: float) -> str:
    """``increase`` when the change's interval lies above 0, ``decrease`` below, else within noise."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    if low > 0:
        return "increase"
    if high < 0:
        return "decrease"
    return WITHIN


def change_estimate(
    before: float,
    after: float,
    draws_before: Sequence[float],
    draws_after: Sequence[float],
    *,
    band_before: tuple[float, float] | None = None,
    band_after: tuple[float, float] | None = None,
    band_weight: float = 1.0,
    other_sd: float = 0.0,
    z: float = 1.96,
    reach: tuple[float, float] = (0.0, 0.0),
    draws_centred: bool = False,
) -> Estimate:
    """The change ``after - before`` with its interval and label.

    ``draws_before[d]`` and ``draws_after[d]`` come from the same draw (shared template jitter), so
    the SD of the change is that of the paired differences. The band of the change is the change
    measured at the band's two cuts (the partial-volume ambiguity shared by the two sessions
    cancels).

    ``reach`` is how much further down and up the change may lie, ``(down, up)``, each >= 0, for
    an ambiguity that is either there or not rather than spread: the lesion tissue one session
    still reads where only the other found a lesion (a lesion at the resolution limit is found on
    one scan and missed on the next; :func:`hidden_restricted_ml` for the DWI), or the change a
    reading shows on the other session's lesion footprint. These ranges are added to the interval
    whole, not as an SD.

    ``draws_centred`` also takes in the interval about the paired draws' mean change: ``[min(c,
    m) - z sd, max(c, m) + z sd]`` for the change ``c`` and the draws' mean ``m``. Each draw
    resamples its image; when that alone moves a reading, and by different amounts in the two
    sessions (an image already resampled, another slice thickness), the change measured on the
    images and the change the draws see differ by what the sampling did, and the truth may lie at
    either (as ``estimate(band_centred=True)`` for a band).
    """
    paired = [
        a - b
        for b, a in zip(draws_before, draws_after, strict=False)
        if math.isfinite(a) and math.isfinite(b)
    ]
    band = None
    if band_before is not None and band_after is not None:
        band = (band_after[0] - band_before[0], band_after[1] - band_before[1])
    found = estimate(
        after - before,
        paired,
        band=band,
        band_weight=band_weight,
        other_sd=other_sd,
        z=z,
        non_negative=False,
        also_about=(float(np.mean(paired)),) if draws_centred and paired else (),
    )
    low, high = found.low - max(reach[0], 0.0), found.high + max(reach[1], 0.0)
    return replace(found, low=low, high=high, label=change_label(low, high))


def label_volumes_mm3(
    labels: NDArray[np.integer[Any]],
    masks: Sequence[NDArray[Any]],
    spacing_mm: tuple[float, float, float],
    *,
    reach_mm: float = 3.0,
) -> NDArray[np.float64]:
    """The volume each mask gives each labelled lesion, shape (len(masks), n_labels + 1), mm3.

    A mask voxel counts for the nearest labelled lesion within ``reach_mm`` (a perturbed lesion is
    the same lesion a little larger, smaller or shifted); voxels farther from every lesion count for
    none (column 0 stays 0). A boolean mask counts its voxels whole; a float mask is a lesion
    fraction (0..1) and each voxel counts for its fraction.
    """
    count = int(labels.max(initial=0))
    out = np.zeros((len(masks), count + 1), np.float64)
    if count == 0 or not masks:
        return out
    # only voxels within reach of a lesion count: the distance map runs on the lesions' bounding
    # box grown by the reach (lesions are sparse; the whole grid costs seconds per call)
    box = _box_around(labels > 0, reach_mm, spacing_mm)
    near = labels[box]
    distance, nearest = ndi.distance_transform_edt(
        near == 0, sampling=spacing_mm, return_indices=True
    )
    owner = np.where(distance <= reach_mm, near[tuple(nearest)], 0)
    voxel_mm3 = float(np.prod(spacing_mm))
    for d, mask in enumerate(masks):
        values = np.asarray(mask)[box]
        some = values > 0
        # a boolean mask counts its voxels whole, a fraction each voxel for its share
        weights = np.ones(int(some.sum())) if values.dtype == np.bool_ else values[some]
        counts = np.bincount(
            owner[some].ravel(), weights=weights.astype(np.float64), minlength=count + 1
        )
        out[d] = counts[: count + 1] * voxel_mm3
    out[:, 0] = 0.0
    return out
