"""Test-retest pairs of synthetic MS FLAIRs: one truth scanned twice (uncertainty calibration, issue 16).

The rendering follows :mod:`synthetic.ms_flair` (MNI152 2009a anatomy deformed per patient, lesions
shaped by a real expert mask, the same contrast ranges), split into what belongs to the patient and
what belongs to one scan:

* the TRUTH (``truth_seed``): the deformation of the anatomy, the tissue contrast (GM / WM, CSF /
  WM, lesion / tissue, each lesion +-10 %), the tissue texture, the protocol (1 mm 3D or 2D with
  3-4 mm slices; noise SD; coarse quantisation; signal scale) and the lesion fraction map;
* each SCAN (``scan_seed``): the head pose (a rigid rotation of +-3 degrees about each axis and a
  translation of +-3 mm of the head in the scanner), the slice plan (a tilt of the grid in the
  scanner of +-6 degrees about x and +-2 degrees about y and z, and an offset of the grid, hence
  of the thick-slice blocks, by a random fraction of a voxel along each axis), a new residual bias
  field (SD 0-5 %, correlation 40 mm), a new white noise realisation and a receiver gain of
  0.9-1.1.

Geometry. The truth lives on the 1 mm render grid of the mask (``grid_affine``: render voxel ->
patient world, mm). Scan ``s`` has a head pose ``H_s`` (patient world -> scanner world of that
scan) and a grid ``A_s`` (scan voxel -> scanner world; rotation times spacing, 1 x 1 x slice mm).
The NIfTI written for the scan carries ``A_s``: the two sessions of a pair have different worlds,
as two real sessions do, and the analysis must register them. A scan voxel is the mean of
``round(slice_mm)`` samples 1 mm apart along its slice axis (the thick-slice profile), each sampled
with trilinear interpolation from the render grid.

Lesion change. The lesion fraction ``f`` of the first scan is the expert mask smoothed by a Gaussian
of 0.5 mm and pulled through the deformation, as in :func:`synthetic.ms_flair.make_ms_flair`.
Its boundary is moved by a signed offset ``t`` (mm, > 0 grows): every voxel's fraction is read
as the profile of a blurred edge, ``f = Phi(-phi / sigma)`` with ``sigma = 0.5 mm`` and ``phi`` the
signed distance to the edge (negative inside), so ``f_t = Phi(Phi^-1(f) + t / sigma)``; voxels off
the partial-volume band (``f < 1e-4`` or ``f > 1 - 1e-4``) extend ``phi`` by their Euclidean distance
to the band. ``t`` is found by bisection so that the total continuous volume (sum of the fraction
over the 1 mm grid) is ``(1 + change)`` times the first. A change of 0 keeps ``f`` exactly.

Truth per lesion: the 26-connected components of ``f >= 0.5`` of the first scan; each voxel within
4 mm of a component belongs to the nearest one (voxels farther from every component, the faint
tails of sub-threshold specks, are counted as ``unassigned``); a lesion's continuous volume in each
scan is the sum of that scan's fraction over its voxels. Its centroid (fraction-weighted, first
scan) is given in patient world and in each scan's world (the first scan's is the analysis'
baseline world).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from scipy import special

from imaging.image import MRImage
from imaging.sequence import SequenceClass
from synthetic.anatomy import load_template
from synthetic.fields import rng_for, smooth_noise
from synthetic.ms_flair import _deformation, rotation_xyz

__all__ = [
    "EDGE_SIGMA_MM",
    "RetestPair",
    "RetestScan",
    "RetestTruth",
    "changed_fraction",
    "lesion_owner",
    "lesion_truth",
    "make_pair",
    "make_truth",
    "render_scan",
    "write_pair",
]

#: Width (mm) of the Gaussian edge of the lesion fraction (the expert mask's smoothing).
EDGE_SIGMA_MM = 0.5
#: The partial-volume band of the fraction: ``EPS < f < 1 - EPS``.
_EPS = 1e-4
#: Largest boundary offset (mm) the bisection tries, either way.
MAX_OFFSET_MM = 4.0
#: Voxels farther than this (mm) from every first-scan lesion are not any lesion's.
ASSIGN_MM = 4.0
#: Default scan field of view (render grid voxels): the render grid itself.
DEFAULT_SHAPE = (182, 218, 182)


@dataclass(frozen=True)
class RetestTruth:
    """One patient's anatomy, contrast and protocol on the 1 mm render grid.

    Attributes
    ----------
    grid_affine : ndarray, shape (4, 4)
        Render voxel -> patient world (mm); the mask's affine.
    tissue_level : ndarray of float32, shape (I, J, K)
        FLAIR signal of the tissue relative to white matter (texture included), 0 outside the brain.
    lesion_level : ndarray of float32, shape (I, J, K)
        FLAIR signal of lesion (relative to white matter) at each voxel: the level of the nearest
        first-scan lesion, so that grown rims take their lesion's level.
    brain : ndarray of bool, shape (I, J, K)
        The deformed anatomy's brain.
    fraction : ndarray of float32, shape (I, J, K)
        Lesion fraction (0-1) of the first scan.
    edge_score : ndarray of float32, shape (I, J, K)
        ``Phi^-1(fraction)`` extended off the partial-volume band by distance (``-phi / sigma``,
        see the module docstring); very negative far from lesions.
    to_mni : ndarray, shape (4, 4)
        Affine part of the deformation (patient world -> MNI world).
    settings : dict
        The contrast and protocol drawn for this truth.
    tissue_fractions : dict of str to ndarray of float32, shape (I, J, K)
        ``"gm"``, ``"wm"`` and ``"csf"`` fractions of each render voxel (0 outside the brain), for
        other contrasts than FLAIR (:mod:`synthetic.test_retest_dwi`).
    """

    grid_affine: NDArray[np.float64]
    tissue_level: NDArray[np.float32]
    lesion_level: NDArray[np.float32]
    brain: NDArray[np.bool_]
    fraction: NDArray[np.float32]
    edge_score: NDArray[np.float32]
    to_mni: NDArray[np.float64]
    settings: dict[str, Any] = field(default_factory=dict)
    tissue_fractions: dict[str, NDArray[np.float32]] = field(default_factory=dict)

    @property
    def voxel_ml(self) -> float:
        """Volume of one render voxel (mL)."""
        return float(abs(np.linalg.det(self.grid_affine[:3, :3]))) / 1000.0

    def volume_ml(self, fraction: NDArray[np.floating[Any]] | None = None) -> float:
        """Continuous lesion volume (mL): the sum of ``fraction`` (default the first scan's)."""
        f = self.fraction if fraction is None else fraction
        return float(np.sum(f, dtype=np.float64)) * self.voxel_ml


@dataclass(frozen=True)
class RetestScan:
    """One scan of a truth.

    Attributes
    ----------
    flair : MRImage
        The FLAIR (float32 holding integers) on the scan grid; its affine is the scan grid in the
        scanner world of this scan.
    brain : MRImage
        uint8 brain mask on the scan grid (brain fraction of the voxel >= 0.5).
    head_pose : ndarray, shape (4, 4)
        Rigid map patient world -> scanner world of this scan (mm).
    settings : dict
        The pose, slice plan, bias, gain and field-of-view check of this scan.
    """

    flair: MRImage
    brain: MRImage
    head_pose: NDArray[np.float64]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetestPair:
    """A truth scanned twice, the second time with its lesion volume changed by ``change``.

    Attributes
    ----------
    truth : RetestTruth
    change : float
        Relative change of the continuous lesion volume (0.25 = +25 %).
    offset_mm : float
        Boundary offset that gives it (mm, > 0 grows).
    scans : tuple of RetestScan
        The two scans.
    volume_ml : tuple of float
        True continuous lesion volume of each scan (mL).
    lesions : list of dict
        Per-lesion truth (see :func:`lesion_truth`).
    unassigned_ml : tuple of float
        Continuous volume of each scan that belongs to no first-scan lesion (mL).
    scan_seeds : tuple of int
    """

    truth: RetestTruth
    change: float
    offset_mm: float
    scans: tuple[RetestScan, RetestScan]
    volume_ml: tuple[float, float]
    lesions: list[dict[str, Any]]
    unassigned_ml: tuple[float, float]
    scan_seeds: tuple[int, int]

    def record(self) -> dict[str, Any]:
        """JSON-ready truth of the pair (what ``truth.json`` holds)."""
        v1, v2 = self.volume_ml
        return {
            "change": self.change,
            "offset_mm": self.offset_mm,
            "volume_ml": [v1, v2],
            "change_ml": v2 - v1,
            "binary_volume_ml": [float(s.settings["binary_volume_ml"]) for s in self.scans],
            "unassigned_ml": list(self.unassigned_ml),
            "truth_settings": self.truth.settings,
            "to_mni": self.truth.to_mni.tolist(),
            "scan_seeds": list(self.scan_seeds),
            "scans": [
                {
                    "session_id": f"ses-0{i + 1}",
                    "affine": s.flair.affine.tolist(),
                    "head_pose": s.head_pose.tolist(),
                    **s.settings,
                }
                for i, s in enumerate(self.scans)
            ],
            "lesions": self.lesions,
        }


# ------------------------------------------------------------------------------------ the truth
def _points(affine: NDArray[Any], ijk: NDArray[np.float32]) -> NDArray[np.float32]:
    """``affine`` applied to a (3, ...) array of points."""
    out = np.einsum("ij,j...->i...", affine[:3, :3].astype(np.float32), ijk)
    return np.asarray(out + affine[:3, 3, None, None, None].astype(np.float32), dtype=np.float32)


def _sample(volume: NDArray[Any], points: NDArray[np.float32]) -> NDArray[np.float32]:
    """Trilinear samples of ``volume`` at voxel coordinates ``points`` (3, ...), 0 outside."""
    flat = points.reshape(3, -1)
    values = ndi.map_coordinates(volume, flat, order=1, mode="constant", cval=0.0)
    return np.asarray(values.reshape(points.shape[1:]), dtype=np.float32)


def _edge_score(
    fraction: NDArray[np.float32], spacing_mm: tuple[float, ...]
) -> NDArray[np.float32]:
    """``Phi^-1(f)`` on the partial-volume band, extended off it by distance / sigma (see module)."""
    limit = float(special.ndtri(1.0 - _EPS))
    clipped = np.clip(fraction.astype(np.float64), _EPS, 1.0 - _EPS)
    score = special.ndtri(clipped).astype(np.float32)
    lesion = fraction > _EPS
    if not lesion.any():
        return np.full(fraction.shape, -1e3, np.float32)
    # only a box around the lesions matters (a margin past the largest offset and the edge)
    margin = int(np.ceil(MAX_OFFSET_MM + 10 * EDGE_SIGMA_MM)) + 2
    lo = np.maximum(np.argwhere(lesion).min(axis=0) - margin, 0)
    hi = np.minimum(np.argwhere(lesion).max(axis=0) + margin + 1, fraction.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    out = np.full(fraction.shape, -1e3, np.float32)
    inner = score[box]
    outside = ~lesion[box]
    distance = ndi.distance_transform_edt(outside, sampling=spacing_mm)
    inner[outside] = -limit - distance[outside] / EDGE_SIGMA_MM
    core = fraction[box] >= 1.0 - _EPS
    if core.any():
        depth = ndi.distance_transform_edt(core, sampling=spacing_mm)
        inner[core] = limit + depth[core] / EDGE_SIGMA_MM
    out[box] = inner
    return out


def make_truth(
    lesion_mask: NDArray[np.bool_] | None,
    mask_affine: NDArray[np.float64],
    *,
    truth_seed: int,
    slice_mm: float | None = None,
    coarse: bool | None = None,
    grid_shape: tuple[int, int, int] | None = None,
) -> RetestTruth:
    """Draw one patient: anatomy, contrast, protocol and lesion fraction (see the module docstring).

    Parameters
    ----------
    lesion_mask : ndarray of bool, shape (I, J, K), or None
        An expert lesion mask on a 1 mm grid in MNI space; None for a lesion-free patient.
    mask_affine : ndarray, shape (4, 4)
        Its voxel -> MNI matrix; also the render grid (voxel -> patient world, mm).
    truth_seed : int
        Seed of everything that belongs to the patient and the protocol.
    slice_mm : float, optional
        Slice thickness of the protocol (1 = 3D); None draws 1 (one in four), 3 or 4 mm.
    coarse : bool, optional
        Coarse quantisation (about 150 levels over the brain); None draws it (one in four).
    grid_shape : tuple of int, optional
        Render grid shape when ``lesion_mask`` is None (default 182 x 218 x 182).

    Returns
    -------
    RetestTruth
    """
    if lesion_mask is not None:
        shape3 = (int(lesion_mask.shape[0]), int(lesion_mask.shape[1]), int(lesion_mask.shape[2]))
    else:
        shape3 = grid_shape or DEFAULT_SHAPE
    affine = np.asarray(mask_affine, dtype=np.float64)
    rng = rng_for(truth_seed, "test_retest", "anatomy")
    # the deformation as in make_ms_flair: patient world -> MNI = affine part + smooth residual
    rot = rotation_xyz(np.deg2rad(rng.uniform(-4, 4, 3)))
    to_mni = np.eye(4)
    to_mni[:3, :3] = rot @ np.diag(rng.uniform(0.93, 1.07, 3))
    to_mni[:3, 3] = rng.uniform(-3, 3, 3)
    displacement = _deformation(rng, shape3, amplitude_mm=float(rng.uniform(1.0, 2.5)))
    ijk = np.indices(shape3, dtype=np.float32)
    mni = _points(to_mni @ affine, ijk) + displacement
    del ijk
    t1, gm, wm, template_affine = load_template()
    brain_t = ndi.binary_fill_holes((t1 > 0) | (gm + wm > 0.5)).astype(np.float32)
    src = _points(np.linalg.inv(template_affine), mni)
    tissue = {name: _sample(vol, src) for name, vol in (("gm", gm), ("wm", wm), ("brain", brain_t))}
    del src
    brain = tissue["brain"] >= 0.5
    csf = np.clip(tissue["brain"] - tissue["gm"] - tissue["wm"], 0.0, 1.0)
    if lesion_mask is not None and lesion_mask.any():
        soft = ndi.gaussian_filter(lesion_mask.astype(np.float32), EDGE_SIGMA_MM)
        fraction = _sample(soft, _points(np.linalg.inv(affine), mni))
        fraction = np.where(brain, np.clip(fraction, 0.0, 1.0), 0.0).astype(np.float32)
    else:
        fraction = np.zeros(shape3, np.float32)
    del mni
    # contrast and protocol
    crng = rng_for(truth_seed, "test_retest", "contrast")
    settings: dict[str, Any] = {
        "gm_over_wm": float(crng.uniform(0.95, 1.35)),
        "csf_over_wm": float(crng.uniform(0.05, 0.3)),
        "lesion_over_tissue": float(crng.uniform(1.2, 1.6)),
        "texture_sd": float(crng.uniform(0.03, 0.08)),
        "noise_sd": float(crng.uniform(0.02, 0.06)),
        "wm_level": float(crng.uniform(200, 2000)),
    }
    drawn_slice = float(crng.choice([1.0, 3.0, 4.0], p=[0.25, 0.375, 0.375]))
    drawn_coarse = bool(crng.uniform() < 0.25)
    settings["slice_mm"] = drawn_slice if slice_mm is None else float(slice_mm)
    settings["coarse"] = drawn_coarse if coarse is None else bool(coarse)
    g, c = settings["gm_over_wm"], settings["csf_over_wm"]
    tissue_level = tissue["wm"] + tissue["gm"] * g + csf * c
    texture = smooth_noise(rng_for(truth_seed, "test_retest", "texture"), shape3, 1.5, step=1)
    tissue_level *= 1.0 + settings["texture_sd"] * texture
    tissue_level = np.where(brain, tissue_level, 0.0).astype(np.float32)
    # per-lesion levels, spread to every voxel from the nearest lesion (grown rims keep them)
    labels, n = ndi.label(fraction > 0.05, structure=np.ones((3, 3, 3)))
    per_lesion = rng_for(truth_seed, "test_retest", "lesions").uniform(0.9, 1.1, n + 1)
    if n > 0:
        nearest = ndi.distance_transform_edt(
            labels == 0, return_distances=False, return_indices=True
        )
        labels = labels[tuple(nearest)]
    base = settings["lesion_over_tissue"] * max(1.0, g)
    lesion_level = (base * per_lesion[labels]).astype(np.float32)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    return RetestTruth(
        grid_affine=affine,
        tissue_level=tissue_level,
        lesion_level=lesion_level,
        brain=brain,
        fraction=fraction,
        edge_score=_edge_score(fraction, spacing),
        to_mni=to_mni,
        settings=settings,
        tissue_fractions={
            name: np.where(brain, part, 0.0).astype(np.float32)
            for name, part in (("gm", tissue["gm"]), ("wm", tissue["wm"]), ("csf", csf))
        },
    )


def changed_fraction(
    truth: RetestTruth, change: float, *, rtol: float = 1e-6
) -> tuple[NDArray[np.float32], float]:
    """The lesion fraction whose continuous volume is ``(1 + change)`` times the first scan's.

    Parameters
    ----------
    truth : RetestTruth
    change : float
        Relative volume change (> -1); 0 returns the first scan's fraction itself.
    rtol : float
        Relative volume tolerance of the bisection.

    Returns
    -------
    fraction : ndarray of float32, shape (I, J, K)
    offset_mm : float
        The boundary offset found (mm; > 0 grows).

    Raises
    ------
    ValueError
        When the truth has no lesion and ``change`` is not 0, or no offset within
        +-``MAX_OFFSET_MM`` reaches the target.
    """
    if change == 0:
        return truth.fraction, 0.0
    volume = truth.volume_ml()
    if volume <= 0:
        raise ValueError("a lesion-free truth cannot change its lesion volume")
    if change <= -1:
        raise ValueError(f"change must be > -1, got {change}")
    target = (1.0 + change) * volume
    region = truth.brain & (truth.edge_score > -(MAX_OFFSET_MM / EDGE_SIGMA_MM + 40.0))
    scores = truth.edge_score[region].astype(np.float64)

    def volume_at(offset_mm: float) -> float:
        values = special.ndtr(scores + offset_mm / EDGE_SIGMA_MM)
        return float(values.sum()) * truth.voxel_ml

    lo, hi = -MAX_OFFSET_MM, MAX_OFFSET_MM
    if not volume_at(lo) <= target <= volume_at(hi):
        raise ValueError(
            f"no boundary offset within +-{MAX_OFFSET_MM} mm changes {volume:.3f} mL by {change:+.0%}"
        )
    offset = 0.0
    for _ in range(100):
        offset = 0.5 * (lo + hi)
        current = volume_at(offset)
        if abs(current - target) <= rtol * target:
            break
        if current < target:
            lo = offset
        else:
            hi = offset
    fraction = np.zeros(truth.fraction.shape, np.float32)
    fraction[region] = special.ndtr(scores + offset / EDGE_SIGMA_MM).astype(np.float32)
    return fraction, float(offset)


# ----------------------------------------------------------------------------------- one scan
def render_scan(
    truth: RetestTruth,
    fraction: NDArray[np.float32],
    *,
    scan_seed: int,
    fov_shape: tuple[int, int] | None = None,
) -> RetestScan:
    """Scan ``truth`` with lesion ``fraction`` once: new pose, slice plan, bias and noise.

    Parameters
    ----------
    truth : RetestTruth
    fraction : ndarray of float32, shape (I, J, K)
        The lesion fraction of this scan (on the render grid).
    scan_seed : int
        Seed of everything that belongs to the scan.
    fov_shape : tuple of int, optional
        In-plane matrix (voxels of 1 mm); default the render grid's first two axes. The number of
        slices covers the render grid's third axis.

    Returns
    -------
    RetestScan
    """
    shape = truth.fraction.shape
    factor = max(1, round(float(truth.settings["slice_mm"])))
    prng = rng_for(scan_seed, "test_retest", "pose")
    head_angles_deg = prng.uniform(-3, 3, 3)
    head_shift_mm = prng.uniform(-3, 3, 3)
    tilt_deg = np.array([prng.uniform(-6, 6), prng.uniform(-2, 2), prng.uniform(-2, 2)])
    offset_vox = prng.uniform(-0.5, 0.5, 3)
    gain = float(prng.uniform(0.9, 1.1))
    bias_sd = float(prng.uniform(0.0, 0.05))
    pose = np.eye(4)
    pose[:3, :3] = rotation_xyz(np.deg2rad(head_angles_deg))
    pose[:3, 3] = head_shift_mm
    # the scan grid: the render grid's axes, tilted, 1 x 1 x slice mm, centred on the head
    in_plane = fov_shape or (shape[0], shape[1])
    n_slices = int(np.ceil(shape[2] / factor))
    n = np.array([in_plane[0], in_plane[1], n_slices])
    direction = rotation_xyz(np.deg2rad(tilt_deg)) @ truth.grid_affine[:3, :3]
    direction = direction @ np.diag([1.0, 1.0, float(factor)])
    centre = pose @ truth.grid_affine @ np.array([*((np.array(shape) - 1) / 2.0), 1.0])
    affine = np.eye(4)
    affine[:3, :3] = direction
    affine[:3, 3] = centre[:3] - direction @ ((n - 1) / 2.0 + offset_vox)
    # scan voxel -> render voxel
    to_render = np.linalg.inv(truth.grid_affine) @ np.linalg.inv(pose) @ affine
    bias = np.exp(bias_sd * smooth_noise(rng_for(scan_seed, "test_retest", "bias"), shape, 40.0, 4))
    image = (1.0 - fraction) * truth.tissue_level + fraction * truth.lesion_level
    image = np.where(truth.brain, image * bias, 0.0).astype(np.float32)
    brain_f = truth.brain.astype(np.float32)
    shape_scan = (int(n[0]), int(n[1]), int(n[2]))
    acquired = np.zeros(shape_scan, np.float32)
    brain_acq = np.zeros(shape_scan, np.float32)
    chunk = max(1, 24 // factor)
    for k0 in range(0, shape_scan[2], chunk):
        k1 = min(k0 + chunk, shape_scan[2])
        ijk = np.mgrid[0 : shape_scan[0], 0 : shape_scan[1], k0:k1].astype(np.float32)
        for s in range(factor):
            ijk_s = ijk.copy()
            ijk_s[2] += (s + 0.5) / factor - 0.5
            points = _points(to_render, ijk_s)
            acquired[:, :, k0:k1] += _sample(image, points)
            brain_acq[:, :, k0:k1] += _sample(brain_f, points)
    acquired /= factor
    inside = brain_acq / factor >= 0.5
    nrng = rng_for(scan_seed, "test_retest", "noise")
    noise = nrng.normal(0.0, float(truth.settings["noise_sd"]), shape_scan).astype(np.float32)
    level = float(truth.settings["wm_level"]) * gain
    data = np.where(inside, acquired + noise, 0.0) * level
    if truth.settings["coarse"]:
        step = float(np.percentile(data[inside], 99.5)) / 150.0
        data = np.round(data / step) * step
    data = np.round(np.clip(data, 0, None)).astype(np.float32)
    # how much of the brain the field of view holds (every 3rd brain voxel of the render grid)
    brain_ijk = np.argwhere(truth.brain)[::3].T.astype(np.float64)
    in_scan = np.linalg.inv(to_render) @ np.vstack([brain_ijk, np.ones(brain_ijk.shape[1])])
    within = np.all((in_scan[:3] >= -0.5) & (in_scan[:3] <= (n - 0.5)[:, None]), axis=0)
    settings = {
        "head_rotation_deg": head_angles_deg.tolist(),
        "head_translation_mm": head_shift_mm.tolist(),
        "grid_tilt_deg": tilt_deg.tolist(),
        "grid_offset_vox": offset_vox.tolist(),
        "gain": gain,
        "bias_sd": bias_sd,
        "brain_in_fov": float(within.mean()) if within.size else 1.0,
        "binary_volume_ml": float(np.count_nonzero(fraction >= 0.5)) * truth.voxel_ml,
    }
    return RetestScan(
        flair=MRImage(data, affine, sequence=SequenceClass.FLAIR),
        brain=MRImage(inside.astype(np.uint8), affine),
        head_pose=pose,
        settings=settings,
    )


# ----------------------------------------------------------------------------- per-lesion truth
def lesion_owner(truth: RetestTruth) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The truth's lesions on its 1 mm grid, numbered as :func:`lesion_truth` numbers them.

    Returns
    -------
    components : ndarray of int, shape (I, J, K)
        The 26-connected components of the first scan's ``f >= 0.5``, numbered 1, 2, ... by
        decreasing continuous volume (0 elsewhere).
    owner : ndarray of int, shape (I, J, K)
        For every voxel within ``ASSIGN_MM`` of a component, the number of the nearest one (0
        elsewhere): the voxels whose lesion tissue counts as that lesion's in either scan.
    """
    f1 = truth.fraction
    components, n = ndi.label(f1 >= 0.5, structure=np.ones((3, 3, 3)))
    if n == 0:
        return components.astype(np.int64), components.astype(np.int64)
    spacing = tuple(float(s) for s in np.linalg.norm(truth.grid_affine[:3, :3], axis=0))
    distance, nearest = ndi.distance_transform_edt(
        components == 0, sampling=spacing, return_indices=True
    )
    owner = components[tuple(nearest)]
    owner[distance > ASSIGN_MM] = 0
    volume = ndi.sum_labels(f1, owner, np.arange(1, n + 1))
    number = np.zeros(n + 1, np.int64)
    number[np.argsort(-volume, kind="stable") + 1] = np.arange(1, n + 1)
    return number[components], number[owner]


def lesion_truth(
    truth: RetestTruth,
    fraction2: NDArray[np.float32],
    poses: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """Per-lesion truth of a pair (see the module docstring).

    Parameters
    ----------
    truth : RetestTruth
    fraction2 : ndarray of float32, shape (I, J, K)
        The second scan's lesion fraction.
    poses : tuple of ndarray, shape (4, 4)
        The head pose of each scan (patient world -> that scan's world).

    Returns
    -------
    lesions : list of dict
        One per 26-connected component of the first scan's ``f >= 0.5``, largest first
        (:func:`lesion_owner`): ``lesion`` (1, 2, ...), ``volume_ml`` [scan 1, scan 2]
        (continuous), ``change_ml``, ``binary_volume_ml`` [scan 1, scan 2] (its voxels with
        ``f >= 0.5``, 1 mm), ``voxels_1mm`` (component size),
        ``centroid_patient_mm``, ``centroid_ses01_mm``, ``centroid_ses02_mm`` (x, y, z),
        ``merged_in_ses02`` (its scan-2 component holds another lesion) and ``gone_in_ses02`` (no
        voxel >= 0.5 left).
    unassigned_ml : tuple of float
        Continuous volume of each scan that is no lesion's (mL).
    """
    f1 = truth.fraction
    components, owner = lesion_owner(truth)
    n = int(components.max())
    if n == 0:
        return [], (truth.volume_ml(f1), truth.volume_ml(fraction2))
    index = np.arange(1, n + 1)
    vol1 = ndi.sum_labels(f1, owner, index) * truth.voxel_ml
    vol2 = ndi.sum_labels(fraction2, owner, index) * truth.voxel_ml
    binary1 = ndi.sum_labels(f1 >= 0.5, owner, index) * truth.voxel_ml
    binary2 = ndi.sum_labels(fraction2 >= 0.5, owner, index) * truth.voxel_ml
    size = ndi.sum_labels(np.ones_like(f1), components, index)
    centres = np.array(ndi.center_of_mass(f1, owner, index), dtype=np.float64).reshape(n, 3)
    patient = centres @ truth.grid_affine[:3, :3].T + truth.grid_affine[:3, 3]
    worlds = [patient @ p[:3, :3].T + p[:3, 3] for p in poses]
    components2, _ = ndi.label(fraction2 >= 0.5, structure=np.ones((3, 3, 3)))
    # the scan-2 component of each lesion: the most common one under its first-scan voxels
    home = np.zeros(n + 1, np.int64)
    pairs = np.stack([components[components > 0], components2[components > 0]])
    pairs = pairs[:, pairs[1] > 0]
    if pairs.size:
        keys, counts = np.unique(pairs, axis=1, return_counts=True)
        for k in range(1, n + 1):
            mine = keys[0] == k
            if mine.any():
                home[k] = keys[1][mine][np.argmax(counts[mine])]
    shared = np.bincount(home[1:], minlength=int(home.max()) + 1)
    lesions = [
        {
            "lesion": k + 1,
            "volume_ml": [float(vol1[k]), float(vol2[k])],
            "change_ml": float(vol2[k] - vol1[k]),
            "binary_volume_ml": [float(binary1[k]), float(binary2[k])],
            "voxels_1mm": int(size[k]),
            "centroid_patient_mm": patient[k].tolist(),
            "centroid_ses01_mm": worlds[0][k].tolist(),
            "centroid_ses02_mm": worlds[1][k].tolist(),
            "merged_in_ses02": bool(home[k + 1] > 0 and shared[home[k + 1]] > 1),
            "gone_in_ses02": bool(home[k + 1] == 0),
        }
        for k in range(n)
    ]
    total = (truth.volume_ml(f1), truth.volume_ml(fraction2))
    assigned = (float(vol1.sum()), float(vol2.sum()))
    return lesions, (total[0] - assigned[0], total[1] - assigned[1])


# ---------------------------------------------------------------------------------------- pairs
def make_pair(
    truth: RetestTruth,
    change: float,
    *,
    scan_seeds: tuple[int, int],
    fov_shape: tuple[int, int] | None = None,
) -> RetestPair:
    """Scan ``truth`` twice, the second time with the lesion volume changed by ``change``.

    Parameters
    ----------
    truth : RetestTruth
    change : float
        Relative change of the continuous lesion volume (0.25 = +25 %, -0.1 = -10 %); must be 0
        for a lesion-free truth.
    scan_seeds : tuple of int
        Seed of each scan (two different seeds: two different scans).
    fov_shape : tuple of int, optional
        In-plane matrix of both scans (see :func:`render_scan`).

    Returns
    -------
    RetestPair
    """
    fraction2, offset_mm = changed_fraction(truth, change)
    scans = (
        render_scan(truth, truth.fraction, scan_seed=scan_seeds[0], fov_shape=fov_shape),
        render_scan(truth, fraction2, scan_seed=scan_seeds[1], fov_shape=fov_shape),
    )
    lesions, unassigned = lesion_truth(truth, fraction2, (scans[0].head_pose, scans[1].head_pose))
    return RetestPair(
        truth=truth,
        change=float(change),
        offset_mm=offset_mm,
        scans=scans,
        volume_ml=(truth.volume_ml(), truth.volume_ml(fraction2)),
        lesions=lesions,
        unassigned_ml=unassigned,
        scan_seeds=(int(scan_seeds[0]), int(scan_seeds[1])),
    )


def write_pair(
    pair: RetestPair,
    case_dir: Path,
    *,
    dates: tuple[str, str] = ("2024-01-10", "2024-07-10"),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``pair`` as a two-session BIDS-like NIfTI case, with ``truth.json`` at its root.

    ``case_dir/ses-0N/anat/sub-<name>_ses-0N_FLAIR.nii.gz`` (int16, sform = qform = the scan's
    affine), ``case_dir/sessions.tsv`` and ``case_dir/truth.json`` (:meth:`RetestPair.record` plus
    ``extra``). ``<name>`` is the folder's name, which should be letters and digits only.

    Returns
    -------
    Path
        ``case_dir``.
    """
    name = case_dir.name
    case_dir.mkdir(parents=True, exist_ok=True)
    rows = ["session_id\tacq_time"]
    for i, (scan, when) in enumerate(zip(pair.scans, dates, strict=True)):
        session = f"ses-0{i + 1}"
        anat = case_dir / session / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        data = np.asarray(scan.flair.data)
        dtype = np.int16 if float(data.max(initial=0.0)) <= np.iinfo(np.int16).max else np.float32
        image = nib.Nifti1Image(data.astype(dtype), scan.flair.affine)
        image.header.set_xyzt_units("mm", "sec")
        image.set_sform(scan.flair.affine, code=1)
        image.set_qform(scan.flair.affine, code=1)
        nib.save(image, anat / f"sub-{name}_{session}_FLAIR.nii.gz")
        rows.append(f"{session}\t{when}")
    (case_dir / "sessions.tsv").write_text("\n".join(rows) + "\n")
    record = {"pair": name, **(extra or {}), **pair.record()}
    (case_dir / "truth.json").write_text(json.dumps(record, indent=1) + "\n")
    return case_dir
