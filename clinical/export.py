"""Exposures in the standards' shapes: a FHIR R4 Bundle of MedicationAdministration resources and an
SDTM-like EX (Exposure) table (research/exposure-and-biomarkers.md §5).

Mapping of one administration (leukotrack -> SDTM EX -> FHIR R4 MedicationAdministration):

=====================  ==========================  ===========================================
drug                   EXTRT                       medicationCodeableConcept (text, ATC code)
dose, dose unit        EXDOSE, EXDOSU (as written) dosage.text; dosage.dose in mg (UCUM)
route                  EXROUTE (CDISC terms)       dosage.route (SNOMED CT)
date                   EXSTDTC, EXENDTC            effectiveDateTime (a date)
schedule text          EXDOSRGM, EXDOSFRQ          dosage.text
regimen                EXCAT                       category.text
held dose              (not in EX: EX is exposure  status ``not-done``, statusReason "held"
                       that happened)
=====================  ==========================  ===========================================

Dates are written as dates only: the files rarely give a time of day and FHIR requires a time zone
with any time. Study days (EXSTDY) count as SDTM does, from the first dose as day 1, with no day 0;
leukotrack's own ``day`` (from the index date, with day 0) is in the other outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clinical.course import Administration, ClinicalCourse
from clinical.drugs import ATC_CODES, atc_code

__all__ = ["ATC_CODES", "EX_COLUMNS", "fhir_bundle", "sdtm_ex_rows"]

_SNOMED_ROUTES = {
    "IV": ("47625008", "Intravenous route"),
    "SC": ("34206005", "Subcutaneous route"),
    "PO": ("26643006", "Oral route"),
    "IT": ("72607000", "Intrathecal route"),
    "IM": ("78421000", "Intramuscular route"),
}
_CDISC_ROUTES = {
    "IV": "INTRAVENOUS",
    "SC": "SUBCUTANEOUS",
    "PO": "ORAL",
    "IT": "INTRATHECAL",
    "IM": "INTRAMUSCULAR",
}
_FREQUENCIES = {0: "ONCE", 1: "QD", 7: "QW", 14: "Q2W", 21: "Q3W", 28: "Q4W", 56: "Q8W"}
#: Columns of the EX table, in order.
EX_COLUMNS = [
    "STUDYID",
    "DOMAIN",
    "USUBJID",
    "EXSEQ",
    "EXTRT",
    "EXCAT",
    "EXDOSE",
    "EXDOSU",
    "EXDOSFRQ",
    "EXDOSRGM",
    "EXROUTE",
    "EXSTDTC",
    "EXENDTC",
    "EXSTDY",
    "EXENDY",
]


def _dose_text(a: Administration) -> str:
    text = f"{a.dose:g} {a.dose_unit} {a.route}"
    if a.dose_unit != "mg":
        text += f" ({a.dose_mg:.1f} mg)"
    if a.duration_h:
        text += f" over {a.duration_h:g} h" + (
            " (label time, assumed)" if a.duration_assumed else ""
        )
    if a.cycle is not None:
        text += f", cycle {a.cycle} day {a.cycle_day}"
    if a.schedule:
        text += f"; schedule: {a.schedule}"
    return text


def _frequency(a: Administration) -> str:
    """CDISC frequency term; cycle phases (e.g. days 1-21 of 28) leave it to EXDOSRGM."""
    if a.cycle is not None:
        return ""
    return _FREQUENCIES.get(a.interval_days, f"EVERY {a.interval_days} DAYS")


def _study_day(first: datetime, a: Administration) -> int:
    days = (a.at.date() - first.date()).days
    return days + 1 if days >= 0 else days


def sdtm_ex_rows(
    course: ClinicalCourse, subject: str, study: str = "LEUKOTRACK"
) -> list[dict[str, Any]]:
    """One SDTM EX record per given administration (held doses are not exposure)."""
    rows: list[dict[str, Any]] = []
    given = course.given()
    if not given:
        return rows
    first = given[0].at
    for number, a in enumerate(given, start=1):
        day = _study_day(first, a)
        rows.append(
            {
                "STUDYID": study,
                "DOMAIN": "EX",
                "USUBJID": f"{study}-{subject}",
                "EXSEQ": number,
                "EXTRT": a.drug.upper(),
                "EXCAT": a.regimen,
                "EXDOSE": a.dose,
                "EXDOSU": a.dose_unit,
                "EXDOSFRQ": _frequency(a),
                "EXDOSRGM": a.schedule,
                "EXROUTE": _CDISC_ROUTES[a.route],
                "EXSTDTC": a.at.date().isoformat(),
                "EXENDTC": a.at.date().isoformat(),
                "EXSTDY": day,
                "EXENDY": day,
            }
        )
    return rows


def _medication_administration(a: Administration, number: int, subject: str) -> dict[str, Any]:
    code = atc_code(a.drug)  # None for a drug outside the code table: shown by name only
    coding = [{"system": "http://www.whocc.no/atc", "code": code, "display": a.drug}]
    route_code, route_name = _SNOMED_ROUTES[a.route]
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": f"{subject}-admin-{number}",
        "status": "completed" if a.given else "not-done",
        "medicationCodeableConcept": {
            "text": a.drug_label,
            **({"coding": coding} if code is not None else {}),
        },
        "subject": {"reference": f"Patient/{subject}"},
        "effectiveDateTime": a.at.date().isoformat(),
        "dosage": {
            "text": _dose_text(a),
            "route": {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": route_code, "display": route_name}
                ],
                "text": a.route,
            },
            "dose": {
                "value": round(a.dose_mg, 4),
                "unit": "mg",
                "system": "http://unitsofmeasure.org",
                "code": "mg",
            },
        },
        "note": [{"text": f"source {a.source}"}],
    }
    if a.regimen:
        resource["category"] = {"text": a.regimen}
    if not a.given:
        resource["statusReason"] = [{"text": "held"}]
    return resource


def fhir_bundle(course: ClinicalCourse, subject: str) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle: the (pseudonymous) Patient and one MedicationAdministration
    per administration, given (``completed``) or held (``not-done``)."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:leukotrack:Patient/{subject}",
            "resource": {"resourceType": "Patient", "id": subject},
        }
    ]
    for number, a in enumerate(course.administrations, start=1):
        resource = _medication_administration(a, number, subject)
        entries.append(
            {
                "fullUrl": f"urn:leukotrack:MedicationAdministration/{resource['id']}",
                "resource": resource,
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
