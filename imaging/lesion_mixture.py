"""FLAIR lesions as the hyperintense outlier class of a per-image Gaussian mixture of the tissues.

The second FLAIR lesion method (the first, a local-contrast method, is :mod:`imaging.segment`). In
the manner of SAMSEG and LST-LGA it learns the contrast of each image instead of using fixed z
thresholds:

1. **Mixture.** Inside the brain, the (lightly smoothed) FLAIR intensity is modelled as a mixture of
   four Gaussians: CSF, grey matter (GM), white matter (WM) and lesion. The registered template priors
   are the spatially varying mixing weights of the tissues (CSF = brain - GM - WM), flattened a
   little so that every tissue may occur anywhere. The lesion's weight is a small floor plus the
   lesion-frequency prior (:mod:`imaging.lesion_prior`) times a gain, zero outside the region where
   white-matter lesions may lie (white matter and its rim, or where the lesion prior is not
   negligible, deeper than a few mm inside the brain); the floor is removed where the GM prior is
   0.5 or more and the prior part damped by the GM prior (bright cortex is the main confounder on
   FLAIR). Means and standard deviations are fitted by expectation-maximisation on a fixed random
   subsample of brain voxels (deterministic; the weights stay the priors). The lesion class is
   constrained to a mean at least ``lesion_min_over_tissue`` times the brightest of the GM mean, the
   WM mean and a grey-matter ceiling (90th percentile of the intensities where the GM prior is >= 0.5:
   an affine-registered GM prior is blurred, so the GM class mixes in white matter and underestimates
   the cortex), and a standard deviation at least that of WM. It is an *outlier* class: voxels
   brighter than its mean are scored as if at its mean, so the lesion posterior rises monotonically
   with intensity.
2. **Intensity non-uniformity.** After a first fit, the intensity of the voxels the model calls white
   matter is smoothed (normalised convolution, ``bias_sigma_mm``) into a slowly varying level; the
   image is divided by it (relative to the WM mean) and the mixture is fitted again.
3. **Posterior.** The lesion posterior of every brain voxel is the ``probability`` output. Lesion
   cores are the voxels with posterior >= ``posterior_threshold``, in components of at least
   ``min_core_volume_mm3`` (texture blobs of bright cortex are smaller).
4. **Partial-volume boundary.** The truth definition is "lesion fraction >= 0.5". Around each core
   (up to ``boundary_reach_voxels``), a voxel is lesion when its intensity is at least halfway
   (``boundary_fraction``) from the local normal-tissue level (normalised convolution of the voxels
   the model calls GM or WM) to the lesion's own level (90th percentile of its core, at least the
   lesion mean). Parts not connected to a core are dropped.
5. Lesions smaller than ``min_lesion_volume_mm3`` are removed.

Limits: intensities only (FLAIR alone); partial volume with CSF (a lesion voxel half in a ventricle)
reads as normal tissue; the priors come from an affine template fit, so a misplaced fit misplaces the
lesion weight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.errors import GeometryError, ImagingError
from imaging.filters import gaussian_mm, local_mean
from imaging.image import MRImage, check_same_grid
from imaging.morphology import bounding_box, distance_inside_mm, remove_small_components
from imaging.normalize import derived_image
from imaging.units import mm3_to_ml

__all__ = [
    "MixtureError",
    "MixtureLesionParams",
    "MixtureLesionResult",
    "segment_flair_mixture",
]

_FULL = np.ones((3, 3, 3), dtype=bool)
#: Class order of the mixture.
CLASSES = ("csf", "gm", "wm", "lesion")
_CSF, _GM, _WM, _LES = range(4)


class MixtureError(ImagingError):
    """The mixture model cannot be fitted to this image (e.g. too few brain voxels)."""


@dataclass(frozen=True)
class MixtureLesionParams:
    """Parameters of :func:`segment_flair_mixture` (units in the names).

    Attributes
    ----------
    sample_voxels : int
        Brain voxels drawn (fixed seed) to fit the mixture on.
    em_iterations : int
        Expectation-maximisation iterations per fit.
    smooth_mm : float
        Gaussian smoothing (sigma, mm) of the FLAIR before the fit (noise).
    prior_flatten : float
        Tissue weights are ``(1 - prior_flatten) x prior + prior_flatten / 3``.
    lesion_weight_gain : float
        Lesion mixing weight = gain x lesion frequency + floor (inside the lesion region).
    lesion_weight_floor : float
        See ``lesion_weight_gain`` (the weight where the lesion prior is 0 or absent).
    lesion_weight_max : float
        Upper bound of the lesion mixing weight.
    lesion_min_over_tissue : float
        The lesion mean is at least this times the brightest of: the GM mean, the WM mean and the
        grey-matter ceiling.
    gm_ceiling_percentile : float
        The grey-matter ceiling is this percentile of the intensities where the GM prior is at least
        0.5 (the affine-registered GM prior is blurred, so the GM class mean mixes in white matter
        and underestimates bright cortex).
    wm_prior_min : float
        White-matter prior at which the lesion region starts.
    wm_dilation_mm : float
        That white matter is widened by this distance, mm.
    region_prior_min : float
        Voxels with a lesion frequency at least this are also in the lesion region.
    edge_distance_mm : float
        Lesion voxels lie deeper than this inside the brain mask, mm.
    gm_damping : float
        The floor of the lesion weight is multiplied by ``1 - gm_damping x GM prior`` (clipped to
        0..1: no lesion weight in the cortex ribbon where no lesion prior is).
    prior_gm_damping : float
        The lesion-prior part of the weight is multiplied by ``1 - prior_gm_damping x GM prior``.
    bias_sigma_mm : float
        Smoothing of the white-matter level for the non-uniformity correction, mm (0 = none).
    posterior_threshold : float
        Lesion posterior of a lesion core voxel.
    boundary_fraction : float
        Partial-volume cut between the local tissue level (0) and the lesion level (1).
    background_sigma_mm : float
        Smoothing (mm) of the local normal-tissue level used by the boundary.
    boundary_reach_voxels : int
        The boundary may move this many voxels (26-neighbourhood steps) beyond a lesion core.
    level_percentile : float
        A lesion's own level is this percentile of the intensities of its core.
    level_floor_lesion_mean : bool
        The lesion level is at least the fitted lesion mean.
    min_lesion_volume_mm3 : float
        Smallest lesion (26-connected component) kept, mm3.
    min_core_volume_mm3 : float
        Smallest lesion core (posterior above the threshold) a lesion grows from, mm3.
    seed : int
        Seed of the voxel subsample.
    """

    sample_voxels: int = 200_000
    em_iterations: int = 25
    smooth_mm: float = 0.7
    prior_flatten: float = 0.1
    lesion_weight_gain: float = 2.0
    lesion_weight_floor: float = 0.01
    lesion_weight_max: float = 0.4
    lesion_min_over_tissue: float = 1.2
    gm_ceiling_percentile: float = 90.0
    wm_prior_min: float = 0.3
    wm_dilation_mm: float = 2.0
    region_prior_min: float = 0.01
    edge_distance_mm: float = 4.0
    gm_damping: float = 2.0
    prior_gm_damping: float = 1.0
    bias_sigma_mm: float = 20.0
    posterior_threshold: float = 0.5
    boundary_fraction: float = 0.5
    background_sigma_mm: float = 4.0
    boundary_reach_voxels: int = 2
    level_percentile: float = 90.0
    level_floor_lesion_mean: bool = True
    min_lesion_volume_mm3: float = 10.0
    min_core_volume_mm3: float = 20.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a flat dict, to record with a result."""
        return asdict(self)


@dataclass(frozen=True)
class MixtureLesionResult:
    """FLAIR lesions of one image by the mixture model, on the FLAIR grid.

    Attributes
    ----------
    lesion_mask : MRImage
        uint8 lesion mask (1 = lesion), shape (I, J, K).
    probability : MRImage
        float32 lesion posterior 0..1 (0 outside the brain), shape (I, J, K).
    means : dict of str to float
        Fitted class means (``csf``, ``gm``, ``wm``, ``lesion``), in units of the FLAIR's brain
        median.
    sds : dict of str to float
        Fitted class standard deviations, same units.
    params : MixtureLesionParams
        The parameters used.
    """

    lesion_mask: MRImage
    probability: MRImage
    means: dict[str, float] = field(default_factory=dict)
    sds: dict[str, float] = field(default_factory=dict)
    params: MixtureLesionParams = field(default_factory=MixtureLesionParams)

    @property
    def volume_ml(self) -> float:
        """Total lesion volume, mL."""
        voxels = float(np.count_nonzero(self.lesion_mask.data))
        return mm3_to_ml(voxels * self.lesion_mask.voxel_volume_mm3)

    @property
    def n_lesions(self) -> int:
        """Number of 26-connected lesions."""
        return int(ndi.label(np.asarray(self.lesion_mask.data) > 0, structure=_FULL)[1])


# --------------------------------------------------------------------------------------- helpers
def _check(flair: MRImage, **others: MRImage | None) -> None:
    if flair.data.ndim != 3:
        raise GeometryError(f"segment one 3-D FLAIR volume, got shape {flair.shape}")
    check_same_grid(flair, **others)


def _box(brain: NDArray[np.bool_], margin: int = 2) -> tuple[slice, slice, slice]:
    if not brain.any():
        raise MixtureError("the brain mask is empty; give a brain mask on the FLAIR grid")
    return bounding_box(brain, margin)


def _level(
    image: NDArray[Any],
    sample: NDArray[np.bool_],
    fallback: float,
    sigma_mm: float,
    spacing: tuple[float, ...],
) -> NDArray[np.float32]:
    """The local level of a tissue sample (:func:`imaging.filters.local_mean`)."""
    return local_mean(image, sample, fallback, sigma_mm, spacing, min_weight=0.02)


def _normal_pdf(x: NDArray[Any], mean: float, sd: float) -> NDArray[np.float64]:
    return np.asarray(np.exp(-0.5 * ((x - mean) / sd) ** 2) / sd, dtype=np.float64)


def _likelihoods(x: NDArray[Any], means: NDArray[Any], sds: NDArray[Any]) -> NDArray[np.float64]:
    """Per-class densities, shape (N, 4); the lesion class is one-sided (x above its mean scores
    as its mean)."""
    out = np.empty((x.size, 4), dtype=np.float64)
    for k in range(4):
        xk = np.minimum(x, means[k]) if k == _LES else x
        out[:, k] = _normal_pdf(xk, float(means[k]), float(sds[k]))
    return out


def _posterior(
    x: NDArray[Any], weights: NDArray[Any], means: NDArray[Any], sds: NDArray[Any]
) -> NDArray[np.float64]:
    joint = weights * _likelihoods(x, means, sds)
    total = joint.sum(axis=1, keepdims=True)
    return np.asarray(
        np.divide(joint, total, out=np.full_like(joint, 0.25), where=total > 1e-300),
        dtype=np.float64,
    )


def _constrain(
    means: NDArray[Any],
    sds: NDArray[Any],
    params: MixtureLesionParams,
    sd_floor: float,
    ceiling: float,
) -> None:
    sds[:] = np.maximum(sds, sd_floor)
    brightest = max(means[_GM], means[_WM], ceiling)
    means[_LES] = max(means[_LES], params.lesion_min_over_tissue * brightest)
    sds[_LES] = max(sds[_LES], sds[_WM])


def _fit(
    x: NDArray[Any],
    weights: NDArray[Any],
    params: MixtureLesionParams,
    sd_floor: float,
    ceiling: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """EM for the class means and SDs on a sample (weights fixed: they are the priors)."""
    means = np.zeros(4)
    sds = np.zeros(4)
    for k in (_CSF, _GM, _WM):
        w = weights[:, k] ** 2
        means[k] = float(np.sum(w * x) / max(np.sum(w), 1e-12))
        sds[k] = float(np.sqrt(np.sum(w * (x - means[k]) ** 2) / max(np.sum(w), 1e-12)))
    means[_LES] = 1.4 * max(means[_GM], means[_WM])
    sds[_LES] = 2.0 * sds[_WM]
    _constrain(means, sds, params, sd_floor, ceiling)
    for _ in range(params.em_iterations):
        resp = _posterior(x, weights, means, sds)
        mass = resp.sum(axis=0)
        for k in range(4):
            if mass[k] < 10:
                continue
            means[k] = float(resp[:, k] @ x / mass[k])
            sds[k] = float(np.sqrt(resp[:, k] @ (x - means[k]) ** 2 / mass[k]))
        _constrain(means, sds, params, sd_floor, ceiling)
    return means, sds


def _ceiling(
    image: NDArray[Any], gm: NDArray[Any], brain: NDArray[np.bool_], params: MixtureLesionParams
) -> float:
    grey = brain & (gm >= 0.5)
    if int(grey.sum()) < 100:
        return 0.0
    return float(np.percentile(image[grey], params.gm_ceiling_percentile))


def _keep_connected(mask: NDArray[np.bool_], cores: NDArray[np.bool_]) -> NDArray[np.bool_]:
    parts, _ = ndi.label(mask | cores, structure=_FULL)
    seeded = np.unique(parts[cores])
    return np.asarray(np.isin(parts, seeded[seeded > 0]))


# ------------------------------------------------------------------------------------------ main
def segment_flair_mixture(
    flair: MRImage,
    brain_mask: MRImage,
    wm_prior: MRImage,
    gm_prior: MRImage,
    lesion_prior: MRImage | None = None,
    *,
    params: MixtureLesionParams | None = None,
) -> MixtureLesionResult:
    """Segment FLAIR-hyperintense white-matter lesions with a per-image Gaussian mixture.

    Method in the module docstring.

    Parameters
    ----------
    flair : MRImage
        3-D FLAIR, shape (I, J, K), ideally bias-corrected (N4) by the caller.
    brain_mask : MRImage
        Brain mask on the FLAIR grid (non-zero = brain).
    wm_prior, gm_prior : MRImage
        White- and grey-matter probabilities 0..1 on the FLAIR grid (the template's maps, registered).
    lesion_prior : MRImage, optional
        Lesion frequency 0..1 on the FLAIR grid (:func:`imaging.lesion_prior.lesion_prior_on`).
        Without it the lesion weight is ``lesion_weight_floor`` throughout the lesion region.
    params : MixtureLesionParams, optional
        Parameters (defaults: :class:`MixtureLesionParams`).

    Returns
    -------
    MixtureLesionResult
        uint8 lesion mask and float32 lesion posterior on the FLAIR grid, the fitted class means and
        SDs.

    Raises
    ------
    GeometryError
        If the inputs are not 3-D images on one grid.
    MixtureError
        If the brain mask is empty or holds too few voxels with signal to fit the mixture.
    """
    params = params or MixtureLesionParams()
    _check(
        flair,
        brain_mask=brain_mask,
        wm_prior=wm_prior,
        gm_prior=gm_prior,
        lesion_prior=lesion_prior,
    )
    spacing = flair.spacing_mm
    voxel_mm3 = flair.voxel_volume_mm3
    brain_full = np.asarray(brain_mask.data) > 0
    box = _box(brain_full)
    brain = brain_full[box]
    raw = np.asarray(flair.data, dtype=np.float32)[box]
    if int(brain.sum()) < 1000:
        raise MixtureError(
            f"the brain mask holds {int(brain.sum())} voxels; at least 1000 are needed to fit the "
            "tissue mixture (check the brain mask)"
        )
    scale = float(np.median(raw[brain]))
    if not np.isfinite(scale) or scale <= 0:
        raise MixtureError(
            "the FLAIR has no positive signal inside the brain mask (median <= 0); check that the "
            "brain mask belongs to this FLAIR"
        )
    image = gaussian_mm(
        np.where(brain, raw / np.float32(scale), np.float32(1.0)), params.smooth_mm, spacing
    )

    # mixing weights: tissue priors (flattened), lesion weight in the lesion region
    wm = np.clip(np.asarray(wm_prior.data, np.float32)[box], 0.0, 1.0)
    gm = np.clip(np.asarray(gm_prior.data, np.float32)[box], 0.0, 1.0)
    total = np.maximum(wm + gm, 1.0)
    wm, gm = wm / total, gm / total
    csf = 1.0 - wm - gm
    tissue = np.stack([csf, gm, wm], axis=-1)
    tissue = (1.0 - params.prior_flatten) * tissue + params.prior_flatten / 3.0
    deep = distance_inside_mm(brain, spacing) > params.edge_distance_mm
    core_wm = wm >= params.wm_prior_min
    region = (
        np.asarray(ndi.distance_transform_edt(~core_wm, sampling=spacing)) <= params.wm_dilation_mm
        if core_wm.any()
        else core_wm
    )
    frequency = (
        None
        if lesion_prior is None
        else np.clip(np.asarray(lesion_prior.data, np.float32)[box], 0.0, 1.0)
    )
    if frequency is not None:
        region = region | (frequency >= params.region_prior_min)
    region &= deep & brain
    lesion_w = params.lesion_weight_floor * np.clip(1.0 - params.gm_damping * gm, 0.0, 1.0)
    if frequency is not None:
        damping = np.clip(1.0 - params.prior_gm_damping * gm, 0.0, 1.0)
        lesion_w = lesion_w + params.lesion_weight_gain * frequency * damping
    lesion_w = np.clip(lesion_w, 0.0, params.lesion_weight_max)
    lesion_w = np.where(region, lesion_w, 0.0).astype(np.float32)
    weights = np.concatenate([tissue * (1.0 - lesion_w)[..., None], lesion_w[..., None]], axis=-1)

    idx = np.flatnonzero(brain.ravel())
    rng = np.random.default_rng(params.seed)
    sample = (
        idx
        if idx.size <= params.sample_voxels
        else rng.choice(idx, params.sample_voxels, replace=False)
    )
    sample.sort()
    w_flat = weights.reshape(-1, 4)
    # quantised images: no class narrower than about one intensity level
    levels = np.unique(raw[brain][:: max(1, idx.size // 50_000)])
    step = float(np.median(np.diff(levels))) / scale if levels.size > 1 else 0.0
    sd_floor = max(0.005, step)

    x_all = image.ravel()
    ceiling = _ceiling(image, gm, brain, params)
    means, sds = _fit(x_all[sample].astype(np.float64), w_flat[sample], params, sd_floor, ceiling)
    if params.bias_sigma_mm > 0:
        resp = _posterior(x_all[idx].astype(np.float64), w_flat[idx], means, sds)
        wm_flat = np.zeros(brain.size, bool)
        wm_flat[idx[resp[:, _WM] > 0.5]] = True
        is_wm = wm_flat.reshape(brain.shape)
        if int(is_wm.sum()) >= 100:
            level = _level(image, is_wm, float(means[_WM]), params.bias_sigma_mm, spacing)
            field_ = np.clip(level / np.float32(means[_WM]), 0.5, 2.0)
            image = np.where(brain, image / field_, image).astype(np.float32)
            x_all = image.ravel()
            ceiling = _ceiling(image, gm, brain, params)
    means, sds = _fit(x_all[sample].astype(np.float64), w_flat[sample], params, sd_floor, ceiling)

    resp = _posterior(x_all[idx].astype(np.float64), w_flat[idx], means, sds)
    prob_flat = np.zeros(brain.size, np.float32)
    prob_flat[idx] = resp[:, _LES]
    probability = prob_flat.reshape(brain.shape)
    normal_flat = np.zeros(brain.size, bool)
    normal_flat[idx] = (resp[:, _GM] + resp[:, _WM] >= 0.5) & (resp[:, _LES] < 0.1)
    normal = normal_flat.reshape(brain.shape)

    cores = (probability >= params.posterior_threshold) & region
    cores = remove_small_components(cores, voxel_mm3, params.min_core_volume_mm3)
    lesion = cores
    if cores.any() and params.boundary_fraction > 0:
        background = _level(image, normal, float(means[_WM]), params.background_sigma_mm, spacing)
        labels, n = ndi.label(cores, structure=_FULL)
        ids = np.arange(1, n + 1)
        peak = np.asarray(
            ndi.labeled_comprehension(
                image, labels, ids, lambda v: np.percentile(v, params.level_percentile), float, 0.0
            )
        )
        level = np.zeros(n + 1, np.float32)
        level[1:] = np.maximum(peak, means[_LES]) if params.level_floor_lesion_mean else peak
        _, nearest = ndi.distance_transform_edt(labels == 0, return_indices=True)
        owner = labels[tuple(nearest)]
        reach = region & ndi.binary_dilation(
            cores, structure=_FULL, iterations=params.boundary_reach_voxels
        )
        cut = background + np.float32(params.boundary_fraction) * (level[owner] - background)
        lesion = reach & (image >= cut)
        lesion = _keep_connected(lesion, cores & lesion)
    lesion = remove_small_components(lesion, voxel_mm3, params.min_lesion_volume_mm3)

    shape = flair.spatial_shape
    mask_full = np.zeros(shape, np.uint8)
    mask_full[box] = lesion.astype(np.uint8)
    prob_full = np.zeros(shape, np.float32)
    prob_full[box] = probability
    return MixtureLesionResult(
        lesion_mask=derived_image(flair, mask_full),
        probability=derived_image(flair, prob_full),
        means={name: float(v) for name, v in zip(CLASSES, means, strict=True)},
        sds={name: float(v) for name, v in zip(CLASSES, sds, strict=True)},
        params=params,
    )
