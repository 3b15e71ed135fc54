"""The clinical files of a case: reading and checking ``patient.csv``, ``exposures.csv``,
``events.csv`` and ``labs.csv`` at the case root (formats in the README, section "Clinical files").

All four are optional. A file with any problem rejects the whole record (:class:`ClinicalFileError`
lists every problem with its line), so nothing is ever derived from half a file.

What is readable but unlikely is kept and named in :attr:`ClinicalRecord.warnings` (each as
``file:line (column): what``), for the caller to show and to put into provenance.json: drugs without
a code (and the known names close to a misspelt one), doses above a generous bound per drug
(:mod:`clinical.drugs`), weights, heights and ages outside the human range, dates before
:data:`EARLIEST_PLAUSIBLE_DATE`, more than :data:`FUTURE_MARGIN_DAYS` days after today or before the
birth date, and files read in the Windows-1252 fallback encoding.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from clinical.drugs import close_known_names, is_known, max_single_dose_mg
from clinical.errors import ClinicalFileError, Problem
from clinical.schedule import Schedule, parse_schedule
from clinical.tables import Row, When, parse_number, parse_when, read_table, shown
from clinical.units import (
    CONCENTRATION_TO_MG_L,
    DOSE_UNITS,
    body_surface_area_m2,
    concentration_to_mg_l,
    normalise_unit,
)

__all__ = [
    "CLINICAL_FILES",
    "EVENT_KINDS",
    "INDEX_RULES",
    "ROUTES",
    "SPECIMENS",
    "ClinicalRecord",
    "Event",
    "ExposureRow",
    "Lab",
    "Patient",
    "has_clinical_files",
    "load_clinical",
    "plausibility_warnings",
]

T = TypeVar("T")

#: The clinical files a case folder may hold, at its root.
CLINICAL_FILES = ("patient.csv", "exposures.csv", "events.csv", "labs.csv")
#: Routes of administration (SDTM EXROUTE / FHIR dosage.route, see clinical.export).
ROUTES = ("IV", "SC", "PO", "IT", "IM")
#: Event kinds of events.csv.
EVENT_KINDS = (
    "symptom_onset",
    "admission",
    "discharge",
    "drug_stop",
    "csf_tap",
    "relapse",
    "transplant",
    "other",
)
#: Specimens of labs.csv (plasma is paired with CSF like serum).
SPECIMENS = ("serum", "plasma", "csf", "blood", "urine")
#: What ``index_date`` in patient.csv may name (or an ISO date).
INDEX_RULES = ("first_mri", "first_dose", "symptom_onset", "drug_stop", "admission")

#: Calendar dates before this are reported as implausible (a typing error in the year).
EARLIEST_PLAUSIBLE_DATE = date(1900, 1, 1)
#: Dates more than this many days after today are reported as implausible.
FUTURE_MARGIN_DAYS = 366
#: Plausible ranges of patient.csv values (an adult or a child; outside: a unit or typing slip).
PLAUSIBLE_WEIGHT_KG = (2.0, 350.0)
PLAUSIBLE_HEIGHT_CM = (40.0, 250.0)
PLAUSIBLE_AGE_YEARS = (0.0, 120.0)

PATIENT_COLUMNS = (
    "age_years",
    "birth_date",
    "sex",
    "weight_kg",
    "height_cm",
    "myeloma_type",
    "index_date",
    "day0_date",
    "note",
)
EXPOSURE_REQUIRED = ("drug", "dose", "unit", "route", "start")
EXPOSURE_OPTIONAL = ("end", "schedule", "status", "duration_h", "regimen", "note")
EVENT_REQUIRED = ("date", "kind")
EVENT_OPTIONAL = ("label", "drug", "note")
LAB_REQUIRED = ("date", "specimen", "analyte", "value", "unit")
LAB_OPTIONAL = ("note",)


def drug_key(name: str) -> str:
    """The normalised drug name used to match rows, events and labs (lower case, single spaces).

    >>> drug_key("  Daratumumab ")
    'daratumumab'
    """
    return " ".join(name.strip().lower().split())


def analyte_key(name: str) -> str:
    """The normalised analyte name (lower case, ``_`` for spaces and hyphens).

    >>> analyte_key("M-protein"), analyte_key("IgG")
    ('m_protein', 'igg')
    """
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass(frozen=True)
class Patient:
    """patient.csv: one row of covariates and settings; every field optional."""

    age_years: float | None = None
    birth_date: date | None = None
    sex: str | None = None  # "F" or "M"
    weight_kg: float | None = None
    height_cm: float | None = None
    myeloma_type: str | None = None
    index_rule: str | None = None  # one of INDEX_RULES, or None
    index_date: date | None = None  # an explicit index date
    day0_date: date | None = None
    note: str = ""
    source: str = "patient.csv"  # file:line of the row, once read

    @property
    def igg_myeloma(self) -> bool | None:
        """True for an IgG myeloma, False for another type, None when not given."""
        if not self.myeloma_type:
            return None
        return self.myeloma_type.strip().lower().startswith("igg")


@dataclass(frozen=True)
class ExposureRow:
    """One line of exposures.csv: a single administration or a regimen with a schedule."""

    drug: str
    drug_label: str
    dose: float
    unit: str  # normalised: mg, g, ug, mg/kg, mg/m2
    route: str
    start: When
    end: When | None
    schedule: Schedule
    held: bool
    duration_h: float | None
    regimen: str
    note: str
    source: str


@dataclass(frozen=True)
class Event:
    """One line of events.csv."""

    when: When
    kind: str
    label: str
    drug: str  # normalised drug name, '' = every drug (drug_stop) or none
    note: str
    source: str


@dataclass(frozen=True)
class Lab:
    """One line of labs.csv; mass concentrations are also given in mg/L (``value_mg_l``)."""

    when: When
    specimen: str
    analyte: str
    value: float
    unit: str
    value_mg_l: float | None
    note: str
    source: str


@dataclass(frozen=True)
class ClinicalRecord:
    """Everything the clinical files of one case say, checked but not yet placed in time."""

    patient: Patient = field(default_factory=Patient)
    exposures: tuple[ExposureRow, ...] = ()
    events: tuple[Event, ...] = ()
    labs: tuple[Lab, ...] = ()
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def drugs(self) -> list[str]:
        """The drugs of the exposures, in order of first appearance."""
        return list(dict.fromkeys(row.drug for row in self.exposures))

    @property
    def uses_day_numbers(self) -> bool:
        """True when any date in the files is written as a day number."""
        whens = [r.start for r in self.exposures] + [r.end for r in self.exposures if r.end]
        whens += [e.when for e in self.events] + [lab.when for lab in self.labs]
        return any(w.at is None for w in whens)


def has_clinical_files(case_dir: Path) -> bool:
    """True when the case folder holds at least one of :data:`CLINICAL_FILES` at its root."""
    return any((Path(case_dir) / name).is_file() for name in CLINICAL_FILES)


# --------------------------------------------------------------------------------------- cells
def _number(
    row: Row, column: str, problems: list[Problem], *, positive: bool = False
) -> float | None:
    text = row.get(column)
    if not text:
        return None
    try:
        value = parse_number(text, decimal_comma=row.decimal_comma)
    except ValueError as error:
        problems.append(row.problem(column, f"{error}; write a plain number, e.g. 78.6"))
        return None
    if positive and not value > 0:
        problems.append(row.problem(column, f"{shown(text)} must be greater than 0"))
        return None
    return value


def _when(row: Row, column: str, problems: list[Problem], *, required: bool) -> When | None:
    text = row.get(column)
    if not text:
        if required:
            problems.append(row.problem(column, "empty; write a date (YYYY-MM-DD) or a day number"))
        return None
    try:
        return parse_when(text)
    except ValueError as error:
        problems.append(row.problem(column, str(error)))
        return None


def _date(row: Row, column: str, problems: list[Problem]) -> date | None:
    when = _when(row, column, problems, required=False)
    if when is None:
        return None
    if when.at is None:
        problems.append(row.problem(column, "must be a calendar date (YYYY-MM-DD)"))
        return None
    return when.at.date()


def _choice(row: Row, column: str, allowed: tuple[str, ...], problems: list[Problem]) -> str:
    text = row.get(column)
    for option in allowed:
        if text.lower() == option.lower():
            return option
    problems.append(row.problem(column, f"{shown(text)} is not one of {', '.join(allowed)}"))
    return ""


# --------------------------------------------------------------------------------------- files
def _read_patient(path: Path, problems: list[Problem], warnings: list[str]) -> Patient:
    rows, header = read_table(path, (), PATIENT_COLUMNS, warnings)
    problems.extend(header)
    if not rows:
        return Patient()
    if len(rows) > 1:
        problems.append(rows[1].problem(None, "patient.csv holds one row (one patient per case)"))
    row = rows[0]
    sex = row.get("sex").upper()[:1] or None
    if sex not in (None, "F", "M"):
        problems.append(row.problem("sex", f"{shown(row.get('sex'))}: write F or M"))
        sex = None
    index_text = row.get("index_date")
    index_rule: str | None = None
    index_date: date | None = None
    if index_text.lower() in INDEX_RULES:
        index_rule = index_text.lower()
    elif index_text:
        try:
            written = parse_when(index_text)
        except ValueError:
            written = When()
        if written.at is None:
            problems.append(
                row.problem(
                    "index_date",
                    f"{shown(index_text)}: write one of {', '.join(INDEX_RULES)} or a date (YYYY-MM-DD)",
                )
            )
        else:
            index_date = written.at.date()
    return Patient(
        age_years=_number(row, "age_years", problems, positive=True),
        birth_date=_date(row, "birth_date", problems),
        sex=sex,
        weight_kg=_number(row, "weight_kg", problems, positive=True),
        height_cm=_number(row, "height_cm", problems, positive=True),
        myeloma_type=row.get("myeloma_type") or None,
        index_rule=index_rule,
        index_date=index_date,
        day0_date=_date(row, "day0_date", problems),
        note=row.get("note"),
        source=row.source,
    )


def _read_exposures(
    path: Path, patient: Patient, problems: list[Problem], warnings: list[str]
) -> list[ExposureRow]:
    rows, header = read_table(path, EXPOSURE_REQUIRED, EXPOSURE_OPTIONAL, warnings)
    problems.extend(header)
    out = []
    for row in rows:
        before = len(problems)
        drug_label = row.get("drug")
        if not drug_label:
            problems.append(row.problem("drug", "empty; name the drug, e.g. daratumumab"))
        dose = _number(row, "dose", problems, positive=True)
        if dose is None and not row.get("dose"):
            problems.append(row.problem("dose", "empty; write the dose as a number"))
        unit = normalise_unit(row.get("unit"))
        if unit not in DOSE_UNITS:
            problems.append(
                row.problem(
                    "unit", f"{shown(row.get('unit'))}: write one of {', '.join(DOSE_UNITS)}"
                )
            )
        elif unit == "mg/kg" and patient.weight_kg is None:
            problems.append(row.problem("unit", "a mg/kg dose needs weight_kg in patient.csv"))
        elif unit == "mg/m2" and (patient.weight_kg is None or patient.height_cm is None):
            problems.append(
                row.problem("unit", "a mg/m2 dose needs weight_kg and height_cm in patient.csv")
            )
        route = _choice(row, "route", ROUTES, problems)
        start = _when(row, "start", problems, required=True)
        end = _when(row, "end", problems, required=False)
        status = row.get("status").lower() or "given"
        if status not in ("given", "held"):
            problems.append(row.problem("status", f"{shown(status)}: write given or held"))
        schedule = None
        try:
            schedule = parse_schedule(row.get("schedule"))
        except ValueError as error:
            problems.append(row.problem("schedule", str(error)))
        if status == "held" and row.get("schedule") and row.get("schedule").lower() != "once":
            problems.append(
                row.problem("schedule", "a held row names the date(s) not given: leave it empty")
            )
        duration = _number(row, "duration_h", problems)
        if duration is not None and duration < 0:
            problems.append(row.problem("duration_h", "must not be negative"))
        if len(problems) > before or dose is None or start is None or schedule is None:
            continue
        out.append(
            ExposureRow(
                drug=drug_key(drug_label),
                drug_label=drug_label,
                dose=dose,
                unit=unit,
                route=route,
                start=start,
                end=end,
                schedule=schedule,
                held=status == "held",
                duration_h=duration,
                regimen=row.get("regimen"),
                note=row.get("note"),
                source=row.source,
            )
        )
    return out


def _read_events(path: Path, problems: list[Problem], warnings: list[str]) -> list[Event]:
    rows, header = read_table(path, EVENT_REQUIRED, EVENT_OPTIONAL, warnings)
    problems.extend(header)
    out = []
    for row in rows:
        before = len(problems)
        when = _when(row, "date", problems, required=True)
        kind = _choice(row, "kind", EVENT_KINDS, problems)
        if len(problems) > before or when is None:
            continue
        out.append(
            Event(
                when, kind, row.get("label"), drug_key(row.get("drug")), row.get("note"), row.source
            )
        )
    return out


def _read_labs(path: Path, problems: list[Problem], warnings: list[str]) -> list[Lab]:
    rows, header = read_table(path, LAB_REQUIRED, LAB_OPTIONAL, warnings)
    problems.extend(header)
    out = []
    for row in rows:
        before = len(problems)
        when = _when(row, "date", problems, required=True)
        specimen = _choice(row, "specimen", SPECIMENS, problems)
        analyte = analyte_key(row.get("analyte"))
        if not analyte:
            problems.append(row.problem("analyte", "empty; e.g. albumin, igg, daratumumab"))
        value = _number(row, "value", problems)
        if value is None and not row.get("value"):
            problems.append(row.problem("value", "empty; write the measured number"))
        elif value is not None and value < 0:
            problems.append(row.problem("value", "a concentration cannot be negative"))
        unit = row.get("unit")
        if not unit:
            problems.append(
                row.problem("unit", f"empty; e.g. {', '.join(sorted(CONCENTRATION_TO_MG_L))}")
            )
        if len(problems) > before or when is None or value is None:
            continue
        mass = normalise_unit(unit) in CONCENTRATION_TO_MG_L
        out.append(
            Lab(
                when=when,
                specimen=specimen,
                analyte=analyte,
                value=value,
                unit=unit,
                value_mg_l=concentration_to_mg_l(value, unit) if mass else None,
                note=row.get("note"),
                source=row.source,
            )
        )
    return out


def _check_drugs(record: ClinicalRecord, problems: list[Problem], paths: dict[str, Path]) -> None:
    drugs = set(record.drugs)
    for event in record.events:
        if event.drug and event.drug not in drugs:
            line = int(event.source.rsplit(":", 1)[1])
            problems.append(
                Problem(
                    paths["events.csv"],
                    line,
                    "drug",
                    f"{shown(event.drug)} is not in exposures.csv",
                )
            )


def load_clinical(case_dir: Path) -> ClinicalRecord | None:
    """Read and check the clinical files at the root of ``case_dir``.

    Returns
    -------
    ClinicalRecord or None
        None when the folder holds none of :data:`CLINICAL_FILES`.

    Raises
    ------
    ClinicalFileError
        Listing every problem found, each with its file, line and column.
    """
    case_dir = Path(case_dir)
    paths = {name: case_dir / name for name in CLINICAL_FILES if (case_dir / name).is_file()}
    if not paths:
        return None
    problems: list[Problem] = []
    warnings: list[str] = []

    def read(name: str, reader: Callable[[Path], T], empty: T) -> T:
        if name not in paths:
            return empty
        try:
            return reader(paths[name])
        except ClinicalFileError as error:  # unreadable as text: its problems join the others
            problems.extend(error.problems)
            return empty

    patient = read("patient.csv", lambda p: _read_patient(p, problems, warnings), Patient())
    no_exposures: list[ExposureRow] = []
    no_events: list[Event] = []
    no_labs: list[Lab] = []
    exposures = read(
        "exposures.csv", lambda p: _read_exposures(p, patient, problems, warnings), no_exposures
    )
    events = read("events.csv", lambda p: _read_events(p, problems, warnings), no_events)
    labs = read("labs.csv", lambda p: _read_labs(p, problems, warnings), no_labs)
    record = ClinicalRecord(patient, tuple(exposures), tuple(events), tuple(labs), tuple(paths))
    _check_drugs(record, problems, paths)
    if problems:
        raise ClinicalFileError(problems)
    return replace(record, warnings=tuple(warnings + plausibility_warnings(record)))


def _date_warning(when: When, source: str, column: str, born: date | None) -> str | None:
    if when.at is None:
        return None
    on = when.at.date()
    if on < EARLIEST_PLAUSIBLE_DATE:
        return f"{source} ({column}): {on.isoformat()} is before {EARLIEST_PLAUSIBLE_DATE.year}"
    if on > date.today() + timedelta(days=FUTURE_MARGIN_DAYS):
        return f"{source} ({column}): {on.isoformat()} is more than a year in the future"
    if born is not None and on < born:
        return f"{source} ({column}): {on.isoformat()} is before the birth date {born.isoformat()}"
    return None


def _range_warning(
    value: float | None, bounds: tuple[float, float], where: str, unit: str
) -> str | None:
    if value is None or bounds[0] <= value <= bounds[1]:
        return None
    return f"{where}: {value:g} {unit} is outside {bounds[0]:g}-{bounds[1]:g} {unit}"


def plausibility_warnings(record: ClinicalRecord) -> list[str]:
    """Readable but unlikely values of a checked record, each as ``file:line (column): what``.

    Nothing is changed: the values are used as written, and the caller records these warnings
    (provenance.json) and shows them.
    """
    out: list[str | None] = []
    patient = record.patient
    out.append(
        _range_warning(
            patient.weight_kg, PLAUSIBLE_WEIGHT_KG, f"{patient.source} (weight_kg)", "kg"
        )
    )
    out.append(
        _range_warning(
            patient.height_cm, PLAUSIBLE_HEIGHT_CM, f"{patient.source} (height_cm)", "cm"
        )
    )
    out.append(
        _range_warning(
            patient.age_years, PLAUSIBLE_AGE_YEARS, f"{patient.source} (age_years)", "years"
        )
    )
    born = patient.birth_date
    if born is not None:
        out.append(_date_warning(When(at=_at(born)), patient.source, "birth_date", None))
    for column, value in (("index_date", patient.index_date), ("day0_date", patient.day0_date)):
        if value is not None:
            out.append(_date_warning(When(at=_at(value)), patient.source, column, born))
    named: set[str] = set()
    for row in record.exposures:
        if row.drug not in named:
            named.add(row.drug)
            if not is_known(row.drug):
                close = close_known_names(row.drug)
                out.append(
                    f"{row.source} (drug): {shown(row.drug_label)} has no ATC code in leukotrack's "
                    "table; shown by name only"
                    + (f"; did you mean {' or '.join(close)}?" if close else "")
                )
        out.append(_date_warning(row.start, row.source, "start", born))
        if row.end is not None:
            out.append(_date_warning(row.end, row.source, "end", born))
        dose_mg = _dose_mg(row, patient)
        bound = max_single_dose_mg(row.drug)
        if dose_mg is not None and dose_mg > bound:
            out.append(
                f"{row.source} (dose): {row.dose:g} {row.unit} ({dose_mg:g} mg) per administration "
                f"is above {bound:g} mg, implausible for {row.drug}; check the dose and the unit"
            )
    for event in record.events:
        out.append(_date_warning(event.when, event.source, "date", born))
    for lab in record.labs:
        out.append(_date_warning(lab.when, lab.source, "date", born))
    return [w for w in out if w is not None]


def _at(on: date) -> datetime:
    return datetime.combine(on, datetime.min.time())


def _dose_mg(row: ExposureRow, patient: Patient) -> float | None:
    """One administration of ``row`` in mg (None when a body size it needs is missing)."""
    if row.unit == "mg/kg":
        return None if patient.weight_kg is None else row.dose * patient.weight_kg
    if row.unit == "mg/m2":
        if patient.weight_kg is None or patient.height_cm is None:
            return None
        return row.dose * body_surface_area_m2(patient.weight_kg, patient.height_cm)
    return row.dose * DOSE_UNITS[row.unit]
