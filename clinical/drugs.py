"""The drugs leukotrack knows by name: their WHO ATC codes, and generous single-dose bounds that
catch unit slips (g written for mg, mg for ug) in exposures.csv.

Any other drug is accepted as written: it is shown and modelled like a known one, only without a code
(FHIR ``medicationCodeableConcept.text`` alone) and without a dose bound beyond
:data:`ANY_DRUG_MAX_DOSE_MG`. A name close to a known one (``daratumumb``) is named in a warning, as a
likely misspelling, by :func:`close_known_names` (difflib's ratio, the standard library's fuzzy match).
"""

from __future__ import annotations

import difflib

__all__ = [
    "ANY_DRUG_MAX_DOSE_MG",
    "ATC_CODES",
    "MAX_SINGLE_DOSE_MG",
    "atc_code",
    "close_known_names",
    "is_known",
    "max_single_dose_mg",
]

#: WHO ATC codes of drugs met in this field (checked against the WHO ATC index, 2024).
ATC_CODES = {
    "daratumumab": "L01FC01",
    "lenalidomide": "L04AX04",
    "thalidomide": "L04AX02",
    "pomalidomide": "L04AX06",
    "dexamethasone": "H02AB02",
    "bortezomib": "L01XG01",
    "carfilzomib": "L01XG02",
    "methotrexate": "L01BA01",
    "cytarabine": "L01BC01",
}

#: Upper bound of a plausible single administration, mg (absolute, after mg/kg or mg/m2): about
#: three times the largest labelled single dose, so that only unit slips and typing errors trip it
#: (daratumumab 16 mg/kg IV or 1800 mg SC; lenalidomide 25 mg; thalidomide up to 400 mg;
#: pomalidomide 4 mg; dexamethasone 40 mg pulses; bortezomib 1.3 mg/m2; carfilzomib 70 mg/m2;
#: high-dose methotrexate up to 12 g/m2; high-dose cytarabine 3 g/m2).
MAX_SINGLE_DOSE_MG = {
    "daratumumab": 6000.0,
    "lenalidomide": 100.0,
    "thalidomide": 1200.0,
    "pomalidomide": 20.0,
    "dexamethasone": 200.0,
    "bortezomib": 10.0,
    "carfilzomib": 500.0,
    "methotrexate": 75000.0,
    "cytarabine": 20000.0,
}
#: Bound of a single administration of a drug not in :data:`MAX_SINGLE_DOSE_MG`, mg.
ANY_DRUG_MAX_DOSE_MG = 100000.0
#: difflib ratio from which an unknown name is reported as a likely misspelling of a known one.
CLOSE_NAME_RATIO = 0.8


def _base(drug: str) -> str:
    """The first word of a normalised drug name (``daratumumab sc`` -> ``daratumumab``)."""
    return drug.split(" ", 1)[0] if drug else drug


def is_known(drug: str) -> bool:
    """True when the normalised name, or its first word (``daratumumab sc``), has an ATC code."""
    return drug in ATC_CODES or _base(drug) in ATC_CODES


def atc_code(drug: str) -> str | None:
    """The ATC code of a normalised drug name (exact name only), or None for any other drug.

    >>> atc_code("daratumumab"), atc_code("fluorouracil")
    ('L01FC01', None)
    """
    return ATC_CODES.get(drug)


def max_single_dose_mg(drug: str) -> float:
    """The plausibility bound of one administration of ``drug``, mg."""
    return MAX_SINGLE_DOSE_MG.get(drug, MAX_SINGLE_DOSE_MG.get(_base(drug), ANY_DRUG_MAX_DOSE_MG))


def close_known_names(drug: str) -> list[str]:
    """Known names close to an unknown normalised name (likely misspellings), best first.

    >>> close_known_names("daratumumb"), close_known_names("fluorouracil")
    (['daratumumab'], [])
    """
    if is_known(drug):
        return []
    names = list(ATC_CODES)
    found = difflib.get_close_matches(drug, names, n=3, cutoff=CLOSE_NAME_RATIO)
    found += difflib.get_close_matches(_base(drug), names, n=3, cutoff=CLOSE_NAME_RATIO)
    return list(dict.fromkeys(found))
