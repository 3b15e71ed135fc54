"""Units of doses and laboratory values, brought to mg and mg/L.

Hand-written rather than through a unit library: the tool needs eight mass and mass-concentration
units and the two body-size doses (mg/kg, mg/m2), and every conversion must be visible in the tests.
"""

from __future__ import annotations

import math

__all__ = [
    "CONCENTRATION_TO_MG_L",
    "DOSE_UNITS",
    "body_surface_area_m2",
    "concentration_to_mg_l",
    "normalise_unit",
]

#: Mass-concentration units and their factor to mg/L (mg/L = ug/mL).
CONCENTRATION_TO_MG_L = {
    "g/l": 1000.0,
    "g/dl": 10000.0,
    "mg/ml": 1000.0,
    "mg/dl": 10.0,
    "mg/l": 1.0,
    "ug/ml": 1.0,
    "ug/l": 1e-3,
    "ng/ml": 1e-3,
}
#: Dose units accepted in exposures.csv; absolute ones with their factor to mg.
DOSE_UNITS = {"mg": 1.0, "g": 1000.0, "ug": 1e-3, "mg/kg": math.nan, "mg/m2": math.nan}


def normalise_unit(unit: str) -> str:
    """Lower-case a unit and spell micro as ``u``.

    >>> normalise_unit("µg/mL"), normalise_unit("mg/m²"), normalise_unit("mcg")
    ('ug/ml', 'mg/m2', 'ug')
    """
    text = unit.strip().lower().replace(" ", "")
    return text.replace("µ", "u").replace("μ", "u").replace("mcg", "ug").replace("²", "2")


def concentration_to_mg_l(value: float, unit: str) -> float:
    """Convert a mass concentration to mg/L.

    >>> concentration_to_mg_l(3.5, "g/dL")
    35000.0

    Raises
    ------
    ValueError
        When ``unit`` is not a mass concentration.
    """
    factor = CONCENTRATION_TO_MG_L.get(normalise_unit(unit))
    if factor is None:
        raise ValueError(
            f"unit {unit!r} is not a mass concentration; use one of "
            + ", ".join(sorted(CONCENTRATION_TO_MG_L))
        )
    return value * factor


def body_surface_area_m2(weight_kg: float, height_cm: float) -> float:
    """Body surface area by Mosteller: sqrt(height_cm x weight_kg / 3600), m2.

    >>> round(body_surface_area_m2(70.0, 170.0), 3)
    1.818
    """
    return math.sqrt(height_cm * weight_kg / 3600.0)
