"""Hemispheres and white-matter regions, defined in MNI152 space by landmark planes.

No lobar atlas ships offline with leukotrack's dependencies (nilearn, templateflow and others fetch
theirs at run time), so the lobes are delimited by planes through standard MNI landmarks, applied to
the template's white matter, and carried to each scan by the template registration. The boundaries are
approximate (a few millimetres to a centimetre at the sulci): adequate to say *frontal* or *parietal*
for confluent toxic white-matter disease, not for gyral anatomy.

Landmarks (MNI mm): central sulcus from (y -12, z 25) at the Sylvian fissure to (y -35, z 70) at the
vertex; Sylvian fissure / upper temporal border from (y 10, z -10) to (y -40, z 20), lateral to
|x| 28 (the insula); parieto-occipital boundary from (y -55, z 5) to (y -75, z 55); infratentorial
below the tentorium (z < -12 behind y -40) and the brainstem (|x| < 15, z < -15, y < -10); deep
(central) white matter and nuclei within |x| < 25, -30 < y < 25, -10 < z < 20.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

__all__ = ["Hemisphere", "Region", "hemisphere_labels", "region_labels"]


class Region(IntEnum):
    """Region labels (0 = outside the brain)."""

    FRONTAL = 1
    PARIETAL = 2
    OCCIPITAL = 3
    TEMPORAL = 4
    DEEP = 5
    INFRATENTORIAL = 6

    @property
    def column(self) -> str:
        """The name used in table columns, e.g. ``frontal``."""
        return self.name.lower()


class Hemisphere(IntEnum):
    """Hemisphere labels by the sign of MNI x (0 = outside the brain)."""

    LEFT = 1
    RIGHT = 2


def _central_sulcus_y(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return -12.0 - 0.5 * (z - 25.0)


def _sylvian_z(y: NDArray[np.float64]) -> NDArray[np.float64]:
    return -10.0 + 0.6 * (10.0 - y)


def _parieto_occipital_y(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return -55.0 - 0.4 * (z - 5.0)


def region_labels(xyz_mm: NDArray[np.float64]) -> NDArray[np.uint8]:
    """The :class:`Region` of MNI points, shape (..., 3) -> (...)."""
    x, y, z = xyz_mm[..., 0], xyz_mm[..., 1], xyz_mm[..., 2]
    labels = np.full(x.shape, Region.PARIETAL, dtype=np.uint8)
    labels[y > _central_sulcus_y(z)] = Region.FRONTAL
    labels[y < _parieto_occipital_y(z)] = Region.OCCIPITAL
    temporal = (z < _sylvian_z(y)) & (np.abs(x) > 28.0) & (y >= _parieto_occipital_y(z))
    labels[temporal] = Region.TEMPORAL
    deep = (np.abs(x) < 25.0) & (y > -30.0) & (y < 25.0) & (z > -10.0) & (z < 20.0)
    labels[deep] = Region.DEEP
    infratentorial = ((y < -40.0) & (z < -12.0)) | ((np.abs(x) < 15.0) & (z < -15.0) & (y < -10.0))
    labels[infratentorial] = Region.INFRATENTORIAL
    return labels


def hemisphere_labels(xyz_mm: NDArray[np.float64]) -> NDArray[np.uint8]:
    """:class:`Hemisphere` of MNI points: x < 0 left, x >= 0 right; shape (..., 3) -> (...)."""
    return np.where(xyz_mm[..., 0] < 0, Hemisphere.LEFT, Hemisphere.RIGHT).astype(np.uint8)
