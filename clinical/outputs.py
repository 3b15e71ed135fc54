"""The clinical tables of a case's outputs (DESIGN.md §3.3): the clinical rows of ``timeline.tsv``,
``pk.tsv`` and ``csf.tsv``, and the exposure columns that ``sessions.tsv`` carries per MRI.

Every ``day`` counts from one :class:`~clinical.course.IndexDate`, chosen once per case.
"""

from __future__ import annotations

import bisect
import math
import re
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from clinical.course import ClinicalCourse, IndexDate
from clinical.csf import csf_indices
from clinical.pk import Dose, PkCovariates, curve

__all__ = [
    "CSF_COLUMNS",
    "PK_COLUMNS",
    "PK_STEP_H",
    "TIMELINE_COLUMNS",
    "csf_rows",
    "drug_column",
    "exposure_columns",
    "pk_covariates",
    "pk_rows",
    "timeline_rows",
]

TIMELINE_COLUMNS = [
    "case_id",
    "kind",
    "item",
    "date",
    "day",
    "end_date",
    "end_day",
    "value",
    "unit",
    "route",
    "cumulative_dose_mg",
    "detail",
    "source",
]
PK_COLUMNS = [
    "case_id",
    "drug",
    "kind",
    "datetime",
    "day",
    "concentration_mg_l",
    "specimen",
    "days_since_last_dose",
    "model",
    "label",
    "source",
]
CSF_COLUMNS = [
    "case_id",
    "sample_date",
    "day",
    "measure",
    "value",
    "unit",
    "upper_limit",
    "reference",
    "abnormal",
    "reading",
    "csf_mg_l",
    "serum_mg_l",
    "drug",
    "days_since_last_dose",
    "age_years",
]
#: Time step of the modelled PK curve, hours.
PK_STEP_H = 6.0
#: The modelled curve runs this long past the last dose or the last date of interest, days.
PK_TAIL_DAYS = 28
#: ... but ends at most this long after the last dose, days (the typical-patient level is then far
#: below 1 mg/L; a dose dated decades before the MRI would otherwise make a curve of millions of rows).
PK_MAX_DAYS_AFTER_LAST_DOSE = 365
#: Most points of one modelled curve; a longer course is sampled more coarsely than PK_STEP_H.
PK_MAX_POINTS = 20000


def drug_column(drug: str) -> str:
    """A drug name as a column prefix.

    >>> drug_column("Daratumumab SC")
    'daratumumab_sc'
    """
    return re.sub(r"[^a-z0-9]+", "_", drug.lower()).strip("_")


def exposure_columns(course: ClinicalCourse, when: date) -> dict[str, Any]:
    """Per drug, at an MRI date: days since the last dose, cumulative dose (mg), on drug (0/1)."""
    out: dict[str, Any] = {}
    for drug in course.drugs:
        state = course.exposure_at(drug, when)
        prefix = drug_column(drug)
        out[f"{prefix}_days_since_last_dose"] = (
            "" if state.days_since_last_dose is None else state.days_since_last_dose
        )
        out[f"{prefix}_cumulative_dose_mg"] = round(state.cumulative_dose_mg, 3)
        out[f"{prefix}_on"] = int(state.on_drug)
    return out


def timeline_rows(course: ClinicalCourse, index: IndexDate, case_id: str) -> list[dict[str, Any]]:
    """Administrations (given and held), drug-on/off periods, events and labs, one row each."""
    rows: list[dict[str, Any]] = []
    cumulative: dict[str, float] = {}
    for a in course.administrations:
        if a.given:
            cumulative[a.drug] = cumulative.get(a.drug, 0.0) + a.dose_mg
        detail = f"{a.dose:g} {a.dose_unit}"
        if a.duration_h:
            detail += f", {a.duration_h:g} h infusion" + (
                " (label time)" if a.duration_assumed else ""
            )
        if a.cycle is not None:
            detail += f", C{a.cycle}D{a.cycle_day}"
        if a.regimen:
            detail += f", {a.regimen}"
        rows.append(
            {
                "kind": "administration" if a.given else "held",
                "item": a.drug,
                "date": a.at.date().isoformat(),
                "day": index.day(a.at),
                "value": round(a.dose_mg, 3),
                "unit": "mg",
                "route": a.route,
                "cumulative_dose_mg": round(cumulative.get(a.drug, 0.0), 3),
                "detail": detail,
                "source": a.source,
            }
        )
    for drug in course.drugs:
        for period in course.periods(drug):
            rows.append(
                {
                    "kind": f"drug_{period.state}",
                    "item": drug,
                    "date": period.start.isoformat(),
                    "day": index.day(period.start),
                    "end_date": period.end.isoformat(),
                    "end_day": index.day(period.end),
                    "detail": f"{(period.end - period.start).days + 1} days {period.state}",
                }
            )
    for e in course.events:
        rows.append(
            {
                "kind": "event",
                "item": e.kind,
                "date": e.at.date().isoformat(),
                "day": index.day(e.at),
                "detail": "; ".join(x for x in (e.label, e.drug, e.note) if x),
                "source": e.source,
            }
        )
    for x in course.labs:
        rows.append(
            {
                "kind": "lab",
                "item": f"{x.specimen} {x.analyte}",
                "date": x.at.date().isoformat(),
                "day": index.day(x.at),
                "value": x.value,
                "unit": x.unit,
                "detail": x.note,
                "source": x.source,
            }
        )
    return [{"case_id": case_id, **row} for row in rows]


def pk_covariates(course: ClinicalCourse) -> PkCovariates:
    """Weight, sex and IgG-myeloma type from patient.csv; albumin from the first serum albumin
    on or before the first dose (else the first one measured), g/L."""
    albumin = [
        x for x in course.labs if x.specimen in ("serum", "plasma") and x.analyte == "albumin"
    ]
    first = course.first_dose()
    baseline = [x for x in albumin if first is not None and x.at <= first]
    chosen = baseline[-1] if baseline else (albumin[0] if albumin else None)
    albumin_g_l = None if chosen is None or chosen.value_mg_l is None else chosen.value_mg_l / 1e3
    return PkCovariates(
        weight_kg=course.patient.weight_kg,
        albumin_g_l=albumin_g_l,
        igg_myeloma=course.patient.igg_myeloma,
        sex=course.patient.sex,
    )


def pk_rows(
    course: ClinicalCourse, index: IndexDate, case_id: str, *, until: date | None = None
) -> list[dict[str, Any]]:
    """The modelled daratumumab curve every :data:`PK_STEP_H` hours, and the measured levels.

    The curve ends :data:`PK_TAIL_DAYS` after the last dose, measured level or ``until``, but at
    most :data:`PK_MAX_DAYS_AFTER_LAST_DOSE` after the last dose; a course longer than
    :data:`PK_MAX_POINTS` steps is sampled at a multiple of :data:`PK_STEP_H`.

    Only daratumumab has a model (IV: Xu 2020; SC: Luo 2021); lenalidomide and dexamethasone have
    no accumulation between doses and appear as exposure periods in the timeline instead.
    """
    rows: list[dict[str, Any]] = []
    for drug in course.drugs:
        if not drug.startswith("daratumumab"):
            continue
        given = [a for a in course.given(drug) if a.route in ("IV", "SC")]
        if not given:
            continue
        origin = given[0].at
        doses = [
            Dose(
                (a.at - origin) / timedelta(hours=1),
                a.dose_mg,
                a.route,
                (a.duration_h or 0.0) if a.route == "IV" else 0.0,
            )
            for a in given
        ]
        measured = [x for x in course.labs if x.analyte == drug and x.value_mg_l is not None]
        last = max(
            [given[-1].at.date(), *(x.at.date() for x in measured)]
            + ([until] if until else [])
            + ([course.horizon] if course.horizon else [])
        )
        end = min(
            datetime.combine(last, datetime.min.time()) + timedelta(days=PK_TAIL_DAYS),
            given[-1].at + timedelta(days=PK_MAX_DAYS_AFTER_LAST_DOSE),
        )
        span_h = (end - origin) / timedelta(hours=1)
        step_h = max(PK_STEP_H, math.ceil(span_h / PK_MAX_POINTS / PK_STEP_H) * PK_STEP_H)
        times = np.arange(0.0, span_h + 1e-9, step_h)
        result = curve(doses, times, pk_covariates(course))
        assumed = ", ".join(result.assumed) or "none"
        label = f"{result.label}; covariates assumed at the model reference: {assumed}"
        dose_times = [a.at for a in given]  # in time order
        for hours, value in zip(times, result.concentration_ug_ml, strict=True):
            moment = origin + timedelta(hours=float(hours))
            last_dose = given[: bisect.bisect_right(dose_times, moment)]
            rows.append(
                {
                    "drug": drug,
                    "kind": "model",
                    "datetime": moment.isoformat(timespec="minutes"),
                    "day": round(index.day_fraction(moment), 4),
                    "concentration_mg_l": round(float(value), 3),
                    "specimen": "serum",
                    "days_since_last_dose": round(
                        (moment - last_dose[-1].at) / timedelta(days=1), 3
                    ),
                    "model": result.model,
                    "label": label,
                }
            )
        for x in measured:
            before = given[: bisect.bisect_right(dose_times, x.at)]
            rows.append(
                {
                    "drug": drug,
                    "kind": "measured",
                    "datetime": x.at.isoformat(timespec="minutes"),
                    "day": round(index.day_fraction(x.at), 4),
                    "concentration_mg_l": x.value_mg_l,
                    "specimen": x.specimen,
                    "days_since_last_dose": (
                        round((x.at - before[-1].at) / timedelta(days=1), 3) if before else ""
                    ),
                    "label": "measured",
                    "source": x.source,
                }
            )
    return [{"case_id": case_id, **row} for row in rows]


def csf_rows(course: ClinicalCourse, index: IndexDate, case_id: str) -> list[dict[str, Any]]:
    """csf.tsv: every quotient and index of the paired serum/CSF samples."""
    rows = []
    for item in csf_indices(course):
        since: Any = ""
        if item.drug:
            state = course.exposure_at(item.drug, item.sample_date)
            since = "" if state.days_since_last_dose is None else state.days_since_last_dose
        rows.append(
            {
                "case_id": case_id,
                "sample_date": item.sample_date.isoformat(),
                "day": index.day(item.sample_date),
                "measure": item.measure,
                "value": round(item.value, 4),
                "unit": item.unit,
                "upper_limit": "" if item.upper_limit is None else round(item.upper_limit, 4),
                "reference": item.reference,
                "abnormal": "" if item.abnormal is None else int(item.abnormal),
                "reading": item.reading,
                "csf_mg_l": item.csf_mg_l,
                "serum_mg_l": item.serum_mg_l,
                "drug": item.drug,
                "days_since_last_dose": since,
                "age_years": "" if item.age_years is None else round(item.age_years, 1),
            }
        )
    return rows
