"""Smooth random fields and seeded random streams."""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent, reproducible random stream for one purpose.

    Parameters
    ----------
    seed : int
        The case seed.
    *keys : str or int
        Names of the purpose (e.g. ``"pose", 3``); each combination gives its own stream, so
        adding a new consumer does not shift the numbers drawn by the others.

    Returns
    -------
    numpy.random.Generator
        PCG64 generator.
    """
    key = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=key))


def smooth_noise(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    sigma_vox: float,
    step: int = 1,
) -> np.ndarray:
    """Gaussian random field with unit standard deviation and correlation length ``sigma_vox``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    shape : tuple of int
        Output shape (3D).
    sigma_vox : float
        Gaussian smoothing width in output voxels.
    step : int, optional
        Generate on a grid coarser by this factor and interpolate (faster for large fields).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``, zero mean, unit standard deviation (approximately).
    """
    coarse = tuple(int(np.ceil(n / step)) + 2 for n in shape)
    white = rng.standard_normal(coarse).astype(np.float32)
    field = ndimage.gaussian_filter(white, sigma_vox / step, mode="wrap")
    if step > 1:
        field = ndimage.zoom(field, step, order=1)
    field = field[tuple(slice(0, n) for n in shape)]
    field -= field.mean()
    field /= field.std() + 1e-12
    return np.ascontiguousarray(field, dtype=np.float32)
