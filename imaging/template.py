"""The MNI152 2009a template shipped inside the nilearn wheel, and its registration to a scan.

One affine registration of the template T1 to the baseline FLAIR (or b=0) gives the brain mask, the
white-matter prior, the hemispheres and the regions of :mod:`imaging.regions` on every grid of a case.
Nothing is downloaded: the files are read from the installed nilearn package.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.morphology import dilate_mm
from imaging.regions import hemisphere_labels, region_labels
from imaging.register import (
    Registration,
    RegistrationParams,
    mattes_mi,
    register,
    resample,
    working_grid,
)
from safeio import OutputError, write_bytes

__all__ = [
    "TEMPLATE_REGISTRATION",
    "TEMPLATE_SPACING_MM",
    "FitQualityLimits",
    "Template",
    "TemplateFit",
    "TemplateFitQuality",
    "assess_fit",
    "fit_template",
    "mni_template",
    "template_map",
]

#: Registration settings of the template fit: affine, at a 3 mm working resolution (the template is
#: itself smooth at 2 mm; the outline of the brain, which drives the fit, is tens of mm across).
TEMPLATE_REGISTRATION = RegistrationParams(
    shrink_factors=(2, 1),
    smoothing_sigmas_mm=(4.0, 2.0),
    learning_rate=1.0,
    iterations=150,
    sampling_fraction=0.1,
    min_step=0.01,
    working_spacing_mm=3.0,
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


#: Environment variable naming the folder of leukotrack's caches (default: ``$XDG_CACHE_HOME`` or
#: ``~/.cache``, then ``leukotrack``).
CACHE_ENV = "LEUKOTRACK_CACHE"
_MAPS = ("t1", "gm", "wm", "brain", "regions", "hemispheres")


def _cache_file(folder: Path) -> Path:
    """Where the 2 mm template is cached: the name holds a digest of everything it derives from
    (the template files' sizes and times, the regions' code, the spacing), so a change of any of
    them makes a new file."""
    root = os.environ.get(CACHE_ENV) or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "leukotrack"
    )
    digest = hashlib.sha256(f"v1 {TEMPLATE_SPACING_MM}".encode())
    for name in _FILES.values():
        stat = (folder / name).stat()
        digest.update(f"{name} {stat.st_size} {stat.st_mtime_ns}".encode())
    digest.update(Path(inspect.getfile(region_labels)).read_bytes())
    return Path(root) / f"mni152_{TEMPLATE_SPACING_MM}mm_{digest.hexdigest()[:16]}.npz"


def _read_cache(path: Path) -> Template | None:
    try:
        with np.load(path) as stored:
            affine = np.asarray(stored["affine"], dtype=np.float64)
            maps = {key: MRImage(np.asarray(stored[key]), affine) for key in _MAPS}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return Template(**maps)


def _write_cache(path: Path, template: Template) -> None:
    """Best effort and atomic (a read-only home or a full disk only costs the next process time)."""
    arrays = {key: np.asarray(getattr(template, key).data) for key in _MAPS}
    arrays["affine"] = template.t1.affine
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    with contextlib.suppress(OSError, OutputError):
        write_bytes(path, buffer.getvalue())


@lru_cache(maxsize=1)
def mni_template() -> Template:
    """Load the template once per process, at :data:`TEMPLATE_SPACING_MM`.

    Built from nilearn's 1 mm files (about 1.4 s of CPU) and cached in the user's cache folder
    (:data:`CACHE_ENV`), from where later processes read it in a few tens of milliseconds.
    ``brain`` is the fraction (0-1) of each 2 mm voxel inside the 1 mm brain outline
    (T1 > 0 or GM + WM > 0.5, holes filled), so that a warped brain thresholded at 0.5 keeps
    sub-voxel accuracy.
    """
    folder = _data_folder()
    cache = _cache_file(folder)
    cached = _read_cache(cache) if cache.is_file() else None
    if cached is not None:
        return cached
    template = _build_template(folder)
    _write_cache(cache, template)
    return template


def _build_template(folder: Path) -> Template:
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
class FitQualityLimits:
    """When a template fit is trusted (recorded with the results).

    Attributes
    ----------
    min_brain_dice : float
        Overlap (Dice) of the warped template brain with the image's own brain estimate. The
        estimate is over-inclusive on heads with skull (a right fit scores 0.91-0.95 on clinical
        FLAIR) and exact on skull-stripped images (0.95-0.97).
    scale_range : tuple of float
        Allowed per-axis scale of the scan-to-MNI transform (its singular values). The MNI152
        brain is about 1.1 times an average adult brain per axis; 0.8-1.35 spans a large adult head
        (0.8) to a small, atrophic one (1.35).
    max_anisotropy : float
        Largest over smallest scale: heads are not squashed by more than this.
    """

    min_brain_dice: float = 0.80
    scale_range: tuple[float, float] = (0.8, 1.35)
    max_anisotropy: float = 1.25

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready limits."""
        return asdict(self)


@dataclass(frozen=True)
class TemplateFitQuality:
    """How well one template fit agrees with the image.

    Attributes
    ----------
    brain_dice : float
        Dice of the warped template brain (fraction >= 0.5) with the image's brain estimate, on the
        3 mm working grid.
    scales : tuple of float
        Singular values of the scan-to-MNI matrix (1 = MNI size; 1.2 = a brain 1/1.2 of MNI).
    converged : bool
        Whether the optimiser stopped on its step criterion rather than its iteration limit.
    initialisation : str
        Which start gave this fit (``moments``, ``masked``, ``similarity``, ``rotated ...``).
    ok : bool
        All limits of :class:`FitQualityLimits` hold.
    problems : tuple of str
        Why not, in words (empty when ``ok``).
    tried : tuple of dict
        Every candidate fit tried, with its figures (the kept one among them).
    """

    brain_dice: float
    scales: tuple[float, float, float]
    converged: bool
    initialisation: str
    ok: bool
    problems: tuple[str, ...] = ()
    tried: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "brain_dice": round(self.brain_dice, 4),
            "scales": [round(v, 4) for v in self.scales],
            "converged": self.converged,
            "initialisation": self.initialisation,
            "ok": self.ok,
            "problems": list(self.problems),
            "tried": list(self.tried),
        }


@dataclass(frozen=True)
class TemplateFit:
    """The template registered to one reference scan: ``registration.matrix`` maps the scan's
    world to MNI (fixed = scan, moving = template). ``quality`` says whether it can be trusted;
    ``stripped`` whether the reference was skull-stripped before leukotrack saw it."""

    registration: Registration
    quality: TemplateFitQuality | None = None
    stripped: bool = False

    def prior(
        self, reference: MRImage, name: str, *, to_mni: NDArray[np.float64] | None = None
    ) -> MRImage:
        """A template map on ``reference``'s grid: ``"wm"``, ``"gm"`` (probabilities, linear),
        ``"brain"`` (uint8 mask: warped fraction >= 0.5), ``"regions"``, ``"hemispheres"`` (labels,
        nearest). ``to_mni`` replaces the fit's own scan-to-MNI matrix for
        grids of another session or sequence (compose their transforms first)."""
        return template_map(reference, name, self.registration.matrix if to_mni is None else to_mni)


def template_map(reference: MRImage, name: str, to_mni: NDArray[np.float64]) -> MRImage:
    """A map of the bundled template on ``reference``'s grid, through ``to_mni`` (reference world
    -> MNI, (4, 4)); ``name`` as in :meth:`TemplateFit.prior`. Re-measurement after a manual edit
    uses it with the matrices the analysis recorded.

    The label maps (``regions``, ``hemispheres``) are kept for the next call on the same grid and
    matrix (read-only arrays): a reader's corrections measure the same sessions again and again.
    """
    if name in ("regions", "hemispheres"):
        affine = np.asarray(reference.affine, np.float64)
        matrix = np.asarray(to_mni, np.float64)
        data = _label_map(reference.spatial_shape, affine.tobytes(), matrix.tobytes(), name)
        return MRImage(data, affine, sequence="OTHER")
    source: MRImage = getattr(mni_template(), name)
    warped = resample(source, reference, to_mni, interpolation="linear")
    if name == "brain":
        return warped.with_data((np.asarray(warped.data) >= 0.5).astype(np.uint8))
    return warped


@lru_cache(maxsize=16)
def _label_map(
    shape: tuple[int, int, int], affine: bytes, to_mni: bytes, name: str
) -> NDArray[np.integer]:
    grid = MRImage(np.zeros(shape, np.uint8), np.frombuffer(affine).reshape(4, 4))
    matrix = np.frombuffer(to_mni).reshape(4, 4)
    warped = resample(getattr(mni_template(), name), grid, matrix, interpolation="nearest")
    data = np.asarray(warped.data)
    data.setflags(write=False)
    return data


def _brain_dice(matrix: NDArray[np.float64], brain: MRImage) -> float:
    """Dice of the template brain warped through ``matrix`` with ``brain`` (a working-grid mask)."""
    warped = np.asarray(resample(mni_template().brain, brain, matrix).data) >= 0.5
    own = np.asarray(brain.data) > 0
    return float(2 * (warped & own).sum() / max(warped.sum() + own.sum(), 1))


def assess_fit(
    registration: Registration,
    brain: MRImage,
    *,
    initialisation: str = "given",
    limits: FitQualityLimits | None = None,
) -> TemplateFitQuality:
    """Measure a template fit against the image's own brain estimate and the limits.

    Parameters
    ----------
    registration : Registration
        Scan world -> MNI.
    brain : MRImage
        The image's brain estimate (any grid; a 3 mm grid is used for the overlap).
    """
    limits = limits or FitQualityLimits()
    small = _mask_on_working(brain)
    dice = _brain_dice(registration.matrix, small)
    singular = np.linalg.svd(registration.matrix[:3, :3], compute_uv=False)
    scales = (float(singular[0]), float(singular[1]), float(singular[2]))
    stop = str(registration.quality.get("stop", ""))
    converged = "Maximum number of iterations" not in stop
    problems = []
    if dice < limits.min_brain_dice:
        problems.append(
            f"the warped template brain overlaps the image's brain by Dice {dice:.2f} "
            f"(< {limits.min_brain_dice})"
        )
    low, high = limits.scale_range
    if min(scales) < low or max(scales) > high:
        problems.append(
            "scan-to-template scales "
            + ", ".join(f"{v:.2f}" for v in scales)
            + f" outside the plausible head sizes {low}-{high}"
        )
    if max(scales) / min(scales) > limits.max_anisotropy:
        problems.append(f"the fit squashes the head by {max(scales) / min(scales):.2f}")
    return TemplateFitQuality(
        dice, scales, converged, initialisation, not problems, tuple(problems)
    )


def _mask_on_working(mask: MRImage) -> MRImage:
    spacing = TEMPLATE_REGISTRATION.working_spacing_mm or 3.0
    small = working_grid(mask.with_data(np.asarray(mask.data, dtype=np.float32)), spacing)
    return small.with_data((np.asarray(small.data) >= 0.5).astype(np.uint8))


def _rotation(axis: int, degrees: float) -> NDArray[np.float64]:
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    rotation = np.eye(4)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def _bind(
    run: Callable[[NDArray[np.float64]], Registration], start: NDArray[np.float64]
) -> Callable[[], Registration]:
    return lambda: run(start)


def _moments_start(brain: MRImage) -> NDArray[np.float64]:
    """Scan world -> MNI: centre of the image's brain onto the template brain's centre, and one
    isotropic scale from the two brain volumes."""
    template = mni_template()
    own = np.argwhere(np.asarray(brain.data) > 0)
    tb = np.asarray(template.brain.data) >= 0.5
    own_centre = brain.voxel_to_world_mm(own).mean(axis=0)
    template_centre = template.brain.voxel_to_world_mm(np.argwhere(tb)).mean(axis=0)
    own_ml = len(own) * brain.voxel_volume_mm3
    template_ml = float(tb.sum()) * template.brain.voxel_volume_mm3
    scale = float(np.clip(np.cbrt(template_ml / max(own_ml, 1.0)), 0.8, 1.35))
    start = np.eye(4)
    start[:3, :3] *= scale
    start[:3, 3] = template_centre - scale * own_centre
    return start


def fit_template(
    reference: MRImage,
    reference_brain: MRImage,
    *,
    params: RegistrationParams | None = None,
    limits: FitQualityLimits | None = None,
    stripped: bool = False,
) -> TemplateFit:
    """Register the template T1 to ``reference`` (affine, mutual information), check the fit and
    fall back to other starts when it is poor; the best candidate is kept and its quality recorded.

    The metric is evaluated within the image's brain estimate dilated by 10 mm, so that the
    outline of the brain (against skull and CSF, or against the zero background of a stripped
    image) drives the fit; the template side is unmasked. Candidates, in order, until one passes
    :class:`FitQualityLimits`: (1) centres of mass (moments) then rigid then affine; (2) both
    images masked to their brains (the former set-up); (3) a similarity fit (7 degrees of freedom)
    started from the brains' centres and volume ratio, then affine from it; (4) the same started
    rotated by +-15 degrees about the left-right and the superior-inferior axes. When no affine
    candidate passes but a similarity fit does, the similarity fit is kept (the constrained fit).

    Parameters
    ----------
    reference : MRImage
        The baseline FLAIR (bias-corrected), or a b=0 image when a case has no FLAIR.
    reference_brain : MRImage
        A brain mask on the reference grid (the intensity estimate of :mod:`imaging.brain`).
    params : RegistrationParams, optional
    limits : FitQualityLimits, optional
    stripped : bool
        Whether the reference was skull-stripped (recorded; the fit is the same).

    Returns
    -------
    TemplateFit
        With ``quality.ok`` False when even the best candidate fails the limits: the session
        should then be flagged, not silently measured.
    """
    template = mni_template()
    params = params or TEMPLATE_REGISTRATION
    limits = limits or FitQualityLimits()
    spacing = params.working_spacing_mm or 3.0
    fixed = working_grid(reference, spacing)
    fixed_params = replace(params, working_spacing_mm=None)
    brain = _mask_on_working(reference_brain)
    surround = brain.with_data(
        dilate_mm(np.asarray(brain.data) > 0, brain.spacing_mm, 10.0).astype(np.uint8)
    )
    template_brain = template.brain.with_data(
        (np.asarray(template.brain.data) >= 0.5).astype(np.uint8)
    )
    candidates: list[tuple[Registration, TemplateFitQuality]] = []

    def attempt(name: str, run: Callable[[], Registration]) -> TemplateFitQuality:
        fit = run()
        quality = assess_fit(fit, brain, initialisation=name, limits=limits)
        candidates.append((fit, quality))
        return quality

    def affine(start: NDArray[np.float64] | None = None, *, masked: bool = False) -> Registration:
        return register(
            fixed,
            template.t1,
            kind="affine",
            fixed_mask=brain if masked else surround,
            moving_mask=template_brain if masked else None,
            initial=start,
            params=fixed_params,
        )

    def similarity_then_affine(start: NDArray[np.float64]) -> Registration:
        similar = register(
            fixed,
            template.t1,
            kind="similarity",
            fixed_mask=surround,
            initial=start,
            params=fixed_params,
        )
        similar_quality = assess_fit(similar, brain, initialisation="similarity", limits=limits)
        candidates.append((similar, similar_quality))
        return affine(similar.matrix)

    plans: list[tuple[str, Callable[[], Registration]]] = [
        ("moments", affine),
        ("masked", lambda: affine(masked=True)),
    ]
    moments = _moments_start(brain)
    plans.append(("similarity+affine", lambda: similarity_then_affine(moments)))
    centre = (
        moments[:3, :3]
        @ brain.voxel_to_world_mm(np.argwhere(np.asarray(brain.data) > 0)).mean(axis=0)
        + moments[:3, 3]
    )
    for axis, label in ((0, "left-right"), (2, "superior-inferior")):
        for degrees in (15.0, -15.0):
            about = np.eye(4)
            about[:3, 3] = centre
            turned = about @ _rotation(axis, degrees) @ np.linalg.inv(about) @ moments
            plans.append(
                (f"rotated {degrees:+.0f} deg about {label}", _bind(similarity_then_affine, turned))
            )
    for name, run in plans:
        if attempt(name, run).ok:
            break
    # one yardstick for every candidate: the mutual information the fit maximises, on the same
    # samples of the same region (the overlap with the over-inclusive brain estimate would favour
    # templates blown up to the estimate's size); candidates that pass the limits come first
    scores = [
        mattes_mi(fixed, template.t1, fit.matrix, fixed_mask=surround, params=fixed_params)
        for fit, _ in candidates
    ]
    order = sorted(range(len(candidates)), key=lambda k: (not candidates[k][1].ok, scores[k]))
    best_fit, best = candidates[order[0]]
    tried = tuple(
        {
            "initialisation": q.initialisation,
            "brain_dice": round(q.brain_dice, 4),
            "scales": [round(v, 4) for v in q.scales],
            "mattes_mi": round(score, 5),
            "ok": q.ok,
        }
        for (_, q), score in zip(candidates, scores, strict=True)
    )
    quality = replace(best, tried=tried)
    registration = Registration(
        best_fit.matrix,
        best_fit.kind,
        best_fit.metric,
        {**best_fit.quality, "fit_quality": quality.to_dict(), "skull_stripped": stripped},
    )
    return TemplateFit(registration, quality, stripped)
