"""Simulated acquisition: a model contrast seen through one slice stack of the scanner.

Steps for each series: partial-volume averaging of the 1 mm model over every voxel footprint under
the session's head pose, the point-spread blur of the sequence (EPI is blurrier), a smooth
multiplicative receive-coil bias field, Rician noise, and quantisation to the stored integers.
The scanner's ADC map is computed from the stored b=0 and b=1000 images like a scanner does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthetic.geometry import SliceGrid, resample_footprint


@dataclass(frozen=True)
class AcquisitionSpec:
    """Sampling and noise of one series type.

    Attributes
    ----------
    n_inplane, n_through : int
        Footprint sub-samples per in-plane axis and across the slice (see
        :func:`synthetic.geometry.footprint_offsets`).
    psf_sigma_vox : tuple of float
        Extra Gaussian blur (i, j) in voxels after sampling (EPI T2* blurring).
    scale : float
        Stored value per unit model signal.
    noise_sigma : float
        Standard deviation of each Gaussian noise channel, in stored units.
    """

    n_inplane: int
    n_through: int
    psf_sigma_vox: tuple[float, float]
    scale: float
    noise_sigma: float


FLAIR_ACQ = AcquisitionSpec(1, 5, (0.35, 0.35), scale=1150.0, noise_sigma=7.5)
DWI_B0_ACQ = AcquisitionSpec(2, 5, (0.45, 0.65), scale=1250.0, noise_sigma=10.0)
DWI_B1000_ACQ = AcquisitionSpec(2, 5, (0.45, 0.65), scale=1250.0, noise_sigma=6.5)
LOCALIZER_ACQ = AcquisitionSpec(2, 3, (0.3, 0.3), scale=6000.0, noise_sigma=9.0)


def sample_grid(
    volumes: list[np.ndarray],
    model_affine: np.ndarray,
    grid: SliceGrid,
    pose: np.ndarray,
    spec: AcquisitionSpec,
) -> list[np.ndarray]:
    """Footprint-averaged model volumes on an acquisition grid (no blur, no noise).

    Parameters
    ----------
    volumes : list of numpy.ndarray
        Model-grid volumes (signal or fractions).
    model_affine : numpy.ndarray
        Model grid affine (voxel -> template RAS mm).
    grid : SliceGrid
        The acquisition grid.
    pose : numpy.ndarray
        4x4 head pose, template RAS -> scanner RAS.
    spec : AcquisitionSpec
        Sampling density.

    Returns
    -------
    list of numpy.ndarray
        float32 arrays of shape ``grid.shape`` ``(columns, rows, slices)``.
    """
    thickness_vox = grid.slice_thickness / grid.spacing_between_slices
    if grid.n_slices == 1:
        thickness_vox = 1.0
    return resample_footprint(
        volumes,
        model_affine,
        grid.affine_ras(),
        grid.shape,
        pose,
        spec.n_inplane,
        spec.n_through,
        thickness_vox,
    )


def bias_field(rng: np.random.Generator, grid: SliceGrid, amplitude: float = 0.12) -> np.ndarray:
    """Smooth multiplicative receive bias on a grid, fixed to the scanner (not the head).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source (coil-sensitivity shape).
    grid : SliceGrid
        Acquisition grid.
    amplitude : float, optional
        Half range of the field within a 90 mm radius of the isocentre (0.12 = +-12 %).

    Returns
    -------
    numpy.ndarray
        float32 array of ``grid.shape``, values around 1.
    """
    aff = grid.affine_ras()
    idx = np.indices(grid.shape, dtype=np.float32).reshape(3, -1)
    xyz = (aff[:3, :3] @ idx + aff[:3, 3:4]) / 90.0
    coef = rng.normal(0.0, 1.0, 9)
    x, y, z = xyz
    poly = (
        coef[0] * x
        + coef[1] * y
        + coef[2] * z
        + 0.6 * coef[3] * x * y
        + 0.6 * coef[4] * y * z
        + 0.6 * coef[5] * x * z
        + 0.5 * coef[6] * (x * x - y * y)
        + 0.5 * coef[7] * (z * z)
        - 0.4 * abs(coef[8]) * (x * x + y * y + z * z)
    )
    inside = (x * x + y * y + z * z) < 1.0
    lo, hi = np.percentile(poly[inside], [2, 98]) if inside.any() else (-1.0, 1.0)
    poly = (poly - 0.5 * (lo + hi)) / max(0.5 * (hi - lo), 1e-6)
    field = 1.0 + amplitude * np.tanh(poly)
    return field.reshape(grid.shape).astype(np.float32)


def acquire(
    signal: np.ndarray,
    bias: np.ndarray,
    spec: AcquisitionSpec,
    rng: np.random.Generator,
    max_value: int = 4095,
) -> np.ndarray:
    """Blur, bias, add Rician noise and quantise a sampled signal.

    Parameters
    ----------
    signal : numpy.ndarray
        Footprint-averaged model signal on the grid, shape (I, J, K).
    bias : numpy.ndarray
        Multiplicative bias field, same shape.
    spec : AcquisitionSpec
        Blur, scale and noise.
    rng : numpy.random.Generator
        Noise source.
    max_value : int, optional
        Largest storable value (12-bit by default).

    Returns
    -------
    numpy.ndarray
        uint16 stored pixel values, shape (I, J, K).
    """
    blurred = ndimage.gaussian_filter(
        signal, sigma=(spec.psf_sigma_vox[0], spec.psf_sigma_vox[1], 0.0), mode="constant"
    )
    clean = blurred * bias * spec.scale
    n1 = rng.standard_normal(clean.shape).astype(np.float32) * spec.noise_sigma
    n2 = rng.standard_normal(clean.shape).astype(np.float32) * spec.noise_sigma
    mag = np.sqrt((clean + n1) ** 2 + n2**2)
    return np.clip(np.rint(mag), 0, max_value).astype(np.uint16)


def scanner_adc(
    b0: np.ndarray, b1000: np.ndarray, b_value: float = 1000.0, noise_floor: float = 60.0
) -> np.ndarray:
    """The scanner's ADC map ``ln(S0 / Sb) / b`` from the stored images, in um2/s.

    Parameters
    ----------
    b0, b1000 : numpy.ndarray
        Stored b=0 and b=1000 images (same grid).
    b_value : float, optional
        Diffusion weighting in s/mm2.
    noise_floor : float, optional
        Voxels whose b=0 value is below this are set to 0 (background), as scanners do.

    Returns
    -------
    numpy.ndarray
        uint16 ADC in um2/s (1e-6 mm2/s), clipped to [0, 4095].
    """
    s0 = b0.astype(np.float64)
    sb = np.maximum(b1000.astype(np.float64), 1.0)
    adc = np.log(np.maximum(s0, 1.0) / sb) / b_value * 1e6
    adc = np.where(s0 < noise_floor, 0.0, adc)
    return np.clip(np.rint(adc), 0, 4095).astype(np.uint16)
