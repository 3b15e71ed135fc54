"""Rigid and affine registration (SimpleITK, Mattes mutual information) and resampling.

Transforms are 4x4 matrices in RAS+ millimetres that map a point of the **fixed** image's world to the
corresponding point of the **moving** image's world (ITK's convention): resampling the moving image onto
the fixed grid looks up ``moving(T @ x_fixed)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage as ndi

from imaging.image import MRImage
from imaging.sitk_bridge import LPS_RAS, grid_to_sitk, to_sitk

__all__ = [
    "Registration",
    "RegistrationParams",
    "displacement_mm",
    "mattes_mi",
    "register",
    "resample",
    "working_grid",
]


@dataclass(frozen=True)
class RegistrationParams:
    """Settings of one registration (defaults: fast, robust rigid alignment of heads).

    Attributes
    ----------
    histogram_bins : int
        Bins of the Mattes mutual information.
    sampling_fraction : float
        Fraction of fixed-image voxels sampled per iteration (random, with ``seed``).
    shrink_factors, smoothing_sigmas_mm : tuple
        The multi-resolution pyramid (coarse to fine).
    iterations : int
        Gradient-descent iterations per level.
    learning_rate : float
        Step of the regular-step gradient descent (in physical units after scaling).
    min_step : float
        Convergence: the smallest step.
    seed : int
        Seed of the metric sampling, so that results are repeatable.
    threads : int
        Threads of the metric. ITK sums the metric's per-thread shares in an order that changes
        from run to run, and the optimiser amplifies the rounding: with more than one thread the
        same pair of images gives a slightly different transform each run (SimpleITK's
        *Reproducibility* notes). One thread (the default) makes every fit bit-reproducible; an
        analysis still uses every core through its other filters and its parallel draws.
    working_spacing_mm : float or None
        When set, both images (and masks) are first resampled, with anti-aliasing, onto isotropic
        grids of this spacing (never finer than the images): the fit is then independent of the
        acquisition's resolution and several times faster on sub-millimetre clinical scans. The
        transform, in world millimetres, applies unchanged to the full-resolution images.
    """

    histogram_bins: int = 32
    sampling_fraction: float = 0.25
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: int = 120
    learning_rate: float = 2.0
    min_step: float = 1e-4
    seed: int = 20230314
    threads: int = 1
    working_spacing_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class Registration:
    """A fitted transform and how well it fits.

    Attributes
    ----------
    matrix : ndarray of shape (4, 4)
        RAS+ mm: fixed-world point -> moving-world point.
    kind : {"rigid", "affine"}
    metric : float
        Final Mattes mutual information (more negative = better aligned).
    quality : dict
        Further figures (e.g. ``mask_dice`` of the two masks after alignment, iterations, stop reason).
    """

    matrix: NDArray[np.float64]
    kind: str
    metric: float
    quality: dict[str, Any] = field(default_factory=dict)

    def inverse(self) -> Registration:
        """The transform in the other direction (moving world -> fixed world)."""
        inverse = np.asarray(np.linalg.inv(self.matrix), dtype=np.float64)
        return Registration(inverse, self.kind, self.metric, dict(self.quality))

    def then(self, other: Registration) -> Registration:
        """Compose: first this transform (A: x -> A x), then ``other`` (B), giving x -> B A x."""
        return Registration(other.matrix @ self.matrix, "composed", float("nan"), {})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the matrix as nested lists, and the quality figures."""
        return {
            "matrix_ras_mm": np.round(self.matrix, 6).tolist(),
            "kind": self.kind,
            "metric_mattes_mi": self.metric,
            **self.quality,
        }


def _matrix_from_sitk(transform: sitk.Transform) -> NDArray[np.float64]:
    """A SimpleITK affine-family transform (LPS, with centre) as a 4x4 RAS matrix."""
    concrete: Any = transform.Downcast()
    if isinstance(concrete, sitk.CompositeTransform):
        if concrete.GetNumberOfTransforms() != 1:
            raise ValueError("expected a single affine-family transform")
        concrete = concrete.GetNthTransform(0).Downcast()
    matrix = np.asarray(concrete.GetMatrix(), dtype=np.float64).reshape(3, 3)
    center = np.asarray(concrete.GetCenter(), dtype=np.float64)
    translation = np.asarray(concrete.GetTranslation(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = translation + center - matrix @ center
    return LPS_RAS @ lps @ LPS_RAS


def _sitk_from_matrix(matrix: NDArray[np.float64]) -> sitk.AffineTransform:
    lps = LPS_RAS @ matrix @ LPS_RAS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(lps[:3, :3].ravel()))
    transform.SetTranslation(tuple(lps[:3, 3]))
    return transform


def register(
    fixed: MRImage,
    moving: MRImage,
    *,
    kind: Literal["rigid", "similarity", "affine"] = "rigid",
    fixed_mask: MRImage | None = None,
    moving_mask: MRImage | None = None,
    initial: NDArray[np.float64] | None = None,
    params: RegistrationParams | None = None,
) -> Registration:
    """Align ``moving`` to ``fixed`` by maximising Mattes mutual information.

    Parameters
    ----------
    fixed, moving : MRImage
        3-D images (the first volume of a 4-D image is used). Any contrasts.
    kind : {"rigid", "similarity", "affine"}
        6, 7 (rigid plus one isotropic scale) or 12 degrees of freedom.
    fixed_mask, moving_mask : MRImage, optional
        Binary masks on each image's grid: only voxels inside count (e.g. the brain).
    initial : ndarray of shape (4, 4), optional
        Starting transform (fixed world -> moving world); by default the centres of mass (of the masks
        when given) are aligned.
    params : RegistrationParams, optional

    Returns
    -------
    Registration
        Deterministic for given inputs and ``params.seed``.
    """
    params = params or RegistrationParams()
    if params.working_spacing_mm is not None:
        spacing = params.working_spacing_mm
        fixed, moving = working_grid(fixed, spacing), working_grid(moving, spacing)
        fixed_mask = _mask_on(fixed_mask, fixed) if fixed_mask is not None else None
        moving_mask = _mask_on(moving_mask, moving) if moving_mask is not None else None
    fixed_sitk = to_sitk(fixed)
    moving_sitk = to_sitk(moving)
    rigid = sitk.Euler3DTransform()
    scale = 1.0
    if initial is not None:
        start = _sitk_from_matrix(initial)
        if kind in ("rigid", "similarity"):
            u, singular, vt = np.linalg.svd(np.asarray(start.GetMatrix()).reshape(3, 3))
            rigid.SetMatrix(tuple((u @ vt).ravel()))  # the nearest rotation
            rigid.SetTranslation(start.GetTranslation())
            scale = float(np.cbrt(np.prod(singular)))
    else:
        centre_fixed = to_sitk(fixed_mask) if fixed_mask is not None else fixed_sitk
        centre_moving = to_sitk(moving_mask) if moving_mask is not None else moving_sitk
        rigid = sitk.CenteredTransformInitializer(
            centre_fixed, centre_moving, rigid, sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    if kind == "rigid":
        transform, metric, stop, iterations = _run(
            fixed_sitk, moving_sitk, rigid, fixed_mask, moving_mask, params
        )
    elif kind == "similarity":
        transform, metric, stop, iterations = _run(
            fixed_sitk, moving_sitk, _similarity(rigid, scale), fixed_mask, moving_mask, params
        )
    else:
        if initial is None:  # rigid first, then free scale and shear
            fitted, *_ = _run(fixed_sitk, moving_sitk, rigid, fixed_mask, moving_mask, params)
            start = _sitk_from_matrix(_matrix_from_sitk(fitted))
        transform, metric, stop, iterations = _run(
            fixed_sitk, moving_sitk, start, fixed_mask, moving_mask, params
        )
    matrix = _matrix_from_sitk(transform)
    quality: dict[str, Any] = {"stop": stop, "iterations": iterations}
    if fixed_mask is not None and moving_mask is not None:
        warped = resample(moving_mask, fixed_mask, matrix, interpolation="nearest")
        a = np.asarray(fixed_mask.data) > 0
        b = np.asarray(warped.data) > 0
        quality["mask_dice"] = round(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)), 4)
    return Registration(matrix, kind, metric, quality)


def _similarity(rigid: Any, scale: float) -> sitk.Similarity3DTransform:
    """A similarity transform with ``rigid``'s rotation, centre and translation and ``scale``."""
    similarity = sitk.Similarity3DTransform()
    similarity.SetCenter(rigid.GetCenter())
    similarity.SetMatrix(rigid.GetMatrix())
    similarity.SetTranslation(rigid.GetTranslation())
    similarity.SetScale(scale)
    return similarity


def working_grid(image: MRImage, spacing_mm: float) -> MRImage:
    """``image`` (its first volume) on an isotropic grid of ``spacing_mm`` covering the same field.

    The grid keeps the image's axis directions and outer corner; axes already coarser than
    ``spacing_mm`` keep their spacing. Before the (linear) resampling, each axis is smoothed by a
    Gaussian of sigma ``0.5 * sqrt(f**2 - 1)`` voxels (``f`` the shrink factor), the usual
    anti-aliasing rule, so that thin structures are averaged rather than sampled.
    """
    source = image.volume(0) if image.n_volumes > 1 else image
    spacing = np.asarray(source.spacing_mm, dtype=np.float64)
    target = np.maximum(spacing, spacing_mm)
    if np.allclose(target, spacing):
        return source
    factor = target / spacing
    shape = np.maximum(np.ceil(np.asarray(source.spatial_shape) / factor).astype(int), 1)
    directions = source.affine[:3, :3] / spacing
    affine = np.eye(4)
    affine[:3, :3] = directions * target
    corner = source.affine[:3, 3] - directions @ (spacing / 2)
    affine[:3, 3] = corner + directions @ (target / 2)
    sigmas = 0.5 * np.sqrt(np.maximum(factor**2 - 1.0, 0.0))
    smooth = ndi.gaussian_filter(np.asarray(source.data, dtype=np.float32), sigmas)
    grid = MRImage(np.zeros(tuple(int(n) for n in shape), np.float32), affine)
    return resample(source.with_data(smooth), grid)


def _mask_on(mask: MRImage, grid: MRImage) -> MRImage:
    """A binary mask resampled onto ``grid`` (partial volume >= 0.5)."""
    if mask.same_grid(grid):
        return mask
    fraction = resample(mask.with_data(np.asarray(mask.data, dtype=np.float32)), grid)
    return fraction.with_data((np.asarray(fraction.data) >= 0.5).astype(np.uint8))


def _mattes_method(
    params: RegistrationParams, fixed_mask: MRImage | None
) -> sitk.ImageRegistrationMethod:
    """The Mattes MI metric, its sampling and the linear interpolator: one set-up for registering
    (:func:`_run`) and for comparing fits (:func:`mattes_mi`), so their values share one scale."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(params.sampling_fraction, params.seed)
    method.SetNumberOfThreads(params.threads)
    method.SetNumberOfWorkUnits(params.threads)
    if fixed_mask is not None:
        method.SetMetricFixedMask(to_sitk(fixed_mask, dtype=np.uint8))
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _run(
    fixed: sitk.Image,
    moving: sitk.Image,
    start: sitk.Transform,
    fixed_mask: MRImage | None,
    moving_mask: MRImage | None,
    params: RegistrationParams,
) -> tuple[sitk.Transform, float, str, int]:
    method = _mattes_method(params, fixed_mask)
    if moving_mask is not None:
        method.SetMetricMovingMask(to_sitk(moving_mask, dtype=np.uint8))
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=params.learning_rate,
        minStep=params.min_step,
        numberOfIterations=params.iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(params.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(params.smoothing_sigmas_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(start, inPlace=False)
    transform = method.Execute(fixed, moving)
    return (
        transform,
        float(method.GetMetricValue()),
        method.GetOptimizerStopConditionDescription(),
        int(method.GetOptimizerIteration()),
    )


def mattes_mi(
    fixed: MRImage,
    moving: MRImage,
    matrix: NDArray[np.float64],
    *,
    fixed_mask: MRImage | None = None,
    params: RegistrationParams | None = None,
) -> float:
    """Mattes mutual information of ``moving`` through ``matrix`` against ``fixed`` (more negative
    = better), sampled as :func:`register` samples it: candidate transforms of the same pair of
    images compare on one scale."""
    method = _mattes_method(params or RegistrationParams(), fixed_mask)
    method.SetInitialTransform(_sitk_from_matrix(matrix))
    return float(method.MetricEvaluate(to_sitk(fixed), to_sitk(moving)))


def resample(
    moving: MRImage,
    reference: MRImage,
    matrix: NDArray[np.float64] | None = None,
    *,
    interpolation: Literal["linear", "nearest", "bspline"] = "linear",
    default: float = 0.0,
) -> MRImage:
    """``moving`` resampled onto ``reference``'s grid through ``matrix`` (fixed world -> moving world).

    4-D images are resampled volume by volume. The result keeps ``moving``'s sequence and metadata and
    is float32 (linear, bspline) or the input type (nearest).
    """
    interpolator = {
        "linear": sitk.sitkLinear,
        "nearest": sitk.sitkNearestNeighbor,
        "bspline": sitk.sitkBSpline,
    }[interpolation]
    transform = _sitk_from_matrix(np.eye(4) if matrix is None else matrix)
    grid = grid_to_sitk(reference)
    dtype = np.asarray(moving.data).dtype if interpolation == "nearest" else np.float32
    volumes = []
    for v in range(moving.n_volumes):
        source = to_sitk(moving.volume(v), dtype=dtype if dtype != np.bool_ else np.uint8)
        out = sitk.Resample(source, grid, transform, interpolator, default, source.GetPixelID())
        volumes.append(sitk.GetArrayFromImage(out).transpose(2, 1, 0))
    data = volumes[0] if len(volumes) == 1 else np.stack(volumes, axis=-1)
    return MRImage(
        np.ascontiguousarray(data),
        reference.affine,
        sequence=moving.sequence,
        bvals_s_mm2=moving.bvals_s_mm2,
        acquisition=moving.acquisition,
    )


def displacement_mm(
    estimated: NDArray[np.float64], true: NDArray[np.float64], points_mm: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Distance (mm) between where two transforms send each point; shape (N, 3) -> (N,)."""
    homogeneous = np.c_[points_mm, np.ones(len(points_mm))]
    return np.linalg.norm(
        (homogeneous @ estimated.T)[:, :3] - (homogeneous @ true.T)[:, :3], axis=1
    )
