"""CSF indices from paired serum and CSF samples, each with its reference and a plain reading.

A CSF sample is paired with the serum (or plasma) sample of the same analyte taken on the same date.
Definitions (DESIGN.md §4; research/exposure-and-biomarkers.md §1.5):

- albumin quotient Q_alb = CSF albumin / serum albumin; upper limit (4 + age/15) x 1e-3 (Reiber);
- IgG index = (CSF IgG / serum IgG) / Q_alb; reference below 0.7 (some laboratories 0.85);
- drug index = (CSF drug x serum albumin) / (CSF albumin x serum drug), for antibodies (``-mab``),
  read against the IgG reference: an IgG antibody that only crosses the barrier stays below it;
- M-protein index = (CSF M-protein / serum M-protein) / Q_alb; reference below 0.85;
- CSF/serum ratio of a drug, in %; IgG antibodies reach 0.1-0.2 % at steady state with an intact
  barrier (Chang et al., Fluids Barriers CNS 2018, doi 10.1186/s12987-018-0093-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from clinical.course import ClinicalCourse

__all__ = [
    "IGG_INDEX_UPPER",
    "M_PROTEIN_INDEX_UPPER",
    "CsfIndex",
    "albumin_quotient_upper_limit",
    "csf_indices",
]

#: IgG index: normal below this (DESIGN.md §4; some laboratories use 0.85).
IGG_INDEX_UPPER = 0.7
#: M-protein index: normal below this (the reference quoted in the CNS myeloma letter).
M_PROTEIN_INDEX_UPPER = 0.85
#: CSF/serum ratio of IgG antibodies at steady state with an intact barrier, % (Chang 2018).
MAB_CSF_SERUM_PERCENT = (0.1, 0.2)


def albumin_quotient_upper_limit(age_years: float) -> float:
    """Age-related upper limit of the albumin quotient, (4 + age/15) x 1e-3.

    >>> round(albumin_quotient_upper_limit(60.0) * 1e3, 3)
    8.0
    """
    return (4.0 + age_years / 15.0) * 1e-3


@dataclass(frozen=True)
class CsfIndex:
    """One quotient or index of one CSF sample date.

    Attributes
    ----------
    measure : str
        ``albumin_quotient``, ``igg_index``, ``m_protein_index``, ``<drug>_index``,
        ``<drug>_csf_serum_ratio`` or ``<analyte>_quotient``.
    value : float
        In ``unit``: ``1e-3`` for the albumin quotient, ``%`` for CSF/serum ratios, '' for indices.
    upper_limit : float or None
        The upper reference limit in the same unit (None where there is none).
    """

    sample_date: date
    measure: str
    value: float
    unit: str
    upper_limit: float | None
    reference: str
    abnormal: bool | None
    reading: str
    csf_mg_l: float
    serum_mg_l: float
    drug: str = ""
    age_years: float | None = None


def _pairs(course: ClinicalCourse) -> dict[date, dict[str, tuple[float, float]]]:
    """CSF and serum values (mg/L) of each analyte, by sample date."""
    by_day: dict[date, dict[str, tuple[float, float]]] = {}
    csf = [x for x in course.labs if x.specimen == "csf" and x.value_mg_l is not None]
    first_blood: dict[tuple[str, date], float | None] = {}  # the first serum/plasma value, in time
    for x in course.labs:
        if x.specimen in ("serum", "plasma") and x.value_mg_l is not None:
            first_blood.setdefault((x.analyte, x.at.date()), x.value_mg_l)
    for sample in csf:
        day = sample.at.date()
        serum = first_blood.get((sample.analyte, day))
        if serum and sample.value_mg_l is not None:
            by_day.setdefault(day, {})[sample.analyte] = (sample.value_mg_l, serum)
    return by_day


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def csf_indices(course: ClinicalCourse) -> list[CsfIndex]:
    """Every quotient and index the paired samples of ``course`` allow, by date then measure."""
    out: list[CsfIndex] = []
    drugs = set(course.drugs)
    for day, pairs in sorted(_pairs(course).items()):
        age = course.age_years_at(day)
        q_alb: float | None = None
        if "albumin" in pairs:
            csf, serum = pairs["albumin"]
            q_alb = csf / serum
            if age is not None:
                limit = albumin_quotient_upper_limit(age)
                high = q_alb > limit
                reading = (
                    f"Q_alb {q_alb * 1e3:.1f} x 1e-3 is {'above' if high else 'within'} the "
                    f"age-related limit {limit * 1e3:.1f} x 1e-3 (age {age:.0f}): "
                    + (
                        "blood-CSF barrier dysfunction"
                        if high
                        else "no sign of blood-CSF barrier dysfunction"
                    )
                )
                out.append(
                    CsfIndex(
                        day,
                        "albumin_quotient",
                        q_alb * 1e3,
                        "1e-3",
                        limit * 1e3,
                        "< (4 + age/15) x 1e-3",
                        high,
                        reading,
                        csf,
                        serum,
                        age_years=age,
                    )
                )
            else:
                out.append(
                    CsfIndex(
                        day,
                        "albumin_quotient",
                        q_alb * 1e3,
                        "1e-3",
                        None,
                        "< (4 + age/15) x 1e-3",
                        None,
                        f"Q_alb {q_alb * 1e3:.1f} x 1e-3; the age-related limit needs "
                        "age_years or birth_date in patient.csv",
                        csf,
                        serum,
                    )
                )
        for analyte, (c_mg_l, s_mg_l) in sorted(pairs.items()):
            if analyte == "albumin":
                continue
            quotient = c_mg_l / s_mg_l
            is_drug = analyte in drugs or analyte.endswith("mab")
            if is_drug:
                percent = quotient * 100
                typical_low, typical_high = MAB_CSF_SERUM_PERCENT
                reading = (
                    f"CSF {percent:.2f} % of serum (serum {1 / quotient:.0f} times higher)"
                    + (
                        f"; IgG antibodies reach {typical_low}-{typical_high} % with an intact barrier"
                        if analyte.endswith("mab")
                        else ""
                    )
                )
                out.append(
                    CsfIndex(
                        day,
                        f"{analyte}_csf_serum_ratio",
                        percent,
                        "%",
                        None,
                        f"{typical_low}-{typical_high} % for IgG antibodies"
                        if analyte.endswith("mab")
                        else "",
                        None,
                        reading,
                        c_mg_l,
                        s_mg_l,
                        drug=analyte,
                        age_years=age,
                    )
                )
            if q_alb is None:
                continue
            index = quotient / q_alb
            if analyte == "igg" or (is_drug and analyte.endswith("mab")):
                high = index >= IGG_INDEX_UPPER
                if analyte == "igg":
                    name = "igg_index"
                    reading = (
                        f"IgG index {_fmt(index)} (reference below {IGG_INDEX_UPPER}; some "
                        "laboratories 0.85): "
                        + (
                            "suggests IgG made within the CNS; read with care when the barrier "
                            "is disturbed"
                            if high
                            else "no sign of IgG made within the CNS"
                        )
                    )
                else:
                    name = f"{analyte}_index"
                    reading = (
                        f"{analyte} index {_fmt(index)} (IgG reference below {IGG_INDEX_UPPER}): "
                        + (
                            f"more {analyte} in CSF than passage across the barrier explains"
                            if high
                            else f"{analyte} in CSF is explained by passage across the "
                            + (
                                "disturbed "
                                if q_alb and age and q_alb > albumin_quotient_upper_limit(age)
                                else ""
                            )
                            + "blood-CSF barrier; no sign of selective accumulation"
                        )
                    )
                out.append(
                    CsfIndex(
                        day,
                        name,
                        index,
                        "",
                        IGG_INDEX_UPPER,
                        f"< {IGG_INDEX_UPPER}",
                        high,
                        reading,
                        c_mg_l,
                        s_mg_l,
                        drug=analyte if is_drug else "",
                        age_years=age,
                    )
                )
            elif analyte == "m_protein":
                high = index >= M_PROTEIN_INDEX_UPPER
                reading = (
                    f"M-protein index {_fmt(index)} (reference below {M_PROTEIN_INDEX_UPPER}): "
                    + (
                        "far more monoclonal protein in CSF than the barrier explains; suggests "
                        "production within the CNS, as in CNS myeloma"
                        if high
                        else "no sign of monoclonal protein made within the CNS"
                    )
                )
                out.append(
                    CsfIndex(
                        day,
                        "m_protein_index",
                        index,
                        "",
                        M_PROTEIN_INDEX_UPPER,
                        f"< {M_PROTEIN_INDEX_UPPER}",
                        high,
                        reading,
                        c_mg_l,
                        s_mg_l,
                        age_years=age,
                    )
                )
            elif not is_drug:
                out.append(
                    CsfIndex(
                        day,
                        f"{analyte}_quotient",
                        quotient * 1e3,
                        "1e-3",
                        None,
                        "",
                        None,
                        f"CSF/serum {analyte} quotient {quotient * 1e3:.2f} x 1e-3",
                        c_mg_l,
                        s_mg_l,
                        age_years=age,
                    )
                )
    return out
