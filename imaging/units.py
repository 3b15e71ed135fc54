"""Units: the one place where mm3 become mL and ADC maps are brought to um2/s.

ADC is reported in um2/s (= 1e-6 mm2/s): normal white matter about 700 at 1.5 T, cytotoxic lesions
about 350-400, CSF about 3000. Scanners and tools store it in um2/s (Siemens, GE integers), in
1e-3 mm2/s (values near 0.7, e.g. float NIfTI or rescaled DICOM) or in mm2/s (values near 0.0007). The
unit is detected from the median of the positive values and the decision is recorded, never silent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging.errors import AdcUnitError

__all__ = ["ADC_UNIT", "ADC_UNIT_RANGES", "adc_to_um2s", "detect_adc_scale", "mm3_to_ml"]

#: The unit every ADC in leukotrack is expressed in.
ADC_UNIT = "um2/s"
#: (name, factor to um2/s, plausible median of positive voxels in that unit: low, high).
ADC_UNIT_RANGES: tuple[tuple[str, float, float, float], ...] = (
    ("um2/s (1e-6 mm2/s)", 1.0, 200.0, 5000.0),
    ("1e-3 mm2/s", 1e3, 0.2, 5.0),
    ("mm2/s", 1e6, 2e-4, 5e-3),
)


def mm3_to_ml(volume_mm3: float) -> float:
    """Convert mm3 to mL (1 mL = 1000 mm3).

    >>> mm3_to_ml(2500.0)
    2.5
    """
    return float(volume_mm3) / 1000.0


def detect_adc_scale(values: NDArray[Any]) -> tuple[float, str]:
    """The factor that brings an ADC map to um2/s, and the name of the unit it was stored in.

    Parameters
    ----------
    values : ndarray
        ADC voxel values, any shape.

    Returns
    -------
    (float, str)
        Multiply the values by the factor to get um2/s.

    Raises
    ------
    AdcUnitError
        When the median of the positive values fits no known unit.

    Examples
    --------
    >>> detect_adc_scale(np.array([0.0, 0.7, 0.8, 3.0]))
    (1000.0, '1e-3 mm2/s')
    """
    positive = np.asarray(values)[np.asarray(values) > 0]
    if positive.size == 0:
        raise AdcUnitError(
            "the ADC map has no positive values; check that the right series was chosen"
        )
    median = float(np.median(positive))
    for name, factor, low, high in ADC_UNIT_RANGES:
        if low <= median <= high:
            return factor, name
    raise AdcUnitError(
        f"cannot tell the unit of this ADC map: the median of its positive values is {median:.4g}, "
        "which fits neither um2/s (200-5000), 1e-3 mm2/s (0.2-5) nor mm2/s (0.0002-0.005). Check the "
        "series, or convert it to um2/s before loading"
    )


def adc_to_um2s(values: NDArray[Any]) -> tuple[NDArray[np.float32], str]:
    """ADC values converted to um2/s (float32), and the unit they were found in."""
    factor, unit = detect_adc_scale(values)
    return (np.asarray(values, dtype=np.float32) * np.float32(factor)), unit
