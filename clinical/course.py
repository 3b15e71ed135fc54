"""The clinical course in time: schedules expanded to dated administrations, events and labs placed on
the calendar, drug-on and drug-off periods, cumulative doses, and the index date that ``day`` counts
from in every output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from clinical.errors import ClinicalError, ClinicalFileError, Problem
from clinical.record import ClinicalRecord, ExposureRow, Patient
from clinical.schedule import expand
from clinical.tables import When
from clinical.units import DOSE_UNITS, body_surface_area_m2

__all__ = [
    "Administration",
    "ClinicalCourse",
    "DatedEvent",
    "DatedLab",
    "ExposureState",
    "IndexDate",
    "Period",
    "choose_index_date",
    "place_in_time",
]

#: Label infusion times of IV daratumumab: first, second, and later infusions, hours.
DARATUMUMAB_IV_INFUSION_H = (7.0, 4.0, 3.0)


@dataclass(frozen=True)
class Administration:
    """One dated administration (or a held one: ``given`` False).

    Attributes
    ----------
    at : datetime
        Start of the administration (09:00 when the file gives a date only).
    dose, dose_unit : float, str
        The dose as prescribed (e.g. 16, ``mg/kg``).
    dose_mg : float
        The absolute dose, mg (mg/kg x weight_kg; mg/m2 x Mosteller body surface area).
    duration_h : float or None
        Infusion time, hours (None = not an infusion, or not known).
    interval_days : int
        Scheduled spacing to the next administration of the same run (0 = single).
    """

    drug: str
    drug_label: str
    at: datetime
    dose: float
    dose_unit: str
    dose_mg: float
    route: str
    duration_h: float | None
    given: bool
    interval_days: int
    cycle: int | None
    cycle_day: int | None
    regimen: str
    schedule: str
    source: str
    duration_assumed: bool = False


@dataclass(frozen=True)
class DatedEvent:
    """An event of events.csv, placed on the calendar."""

    at: datetime
    kind: str
    label: str
    drug: str
    note: str
    source: str


@dataclass(frozen=True)
class DatedLab:
    """A laboratory value of labs.csv, placed on the calendar (``value_mg_l`` for mass units)."""

    at: datetime
    specimen: str
    analyte: str
    value: float
    unit: str
    value_mg_l: float | None
    note: str
    source: str


@dataclass(frozen=True)
class Period:
    """A drug-on or drug-off period of one drug; ``start`` and ``end`` are inclusive dates."""

    drug: str
    state: str  # "on" or "off"
    start: date
    end: date


@dataclass(frozen=True)
class ExposureState:
    """One drug's exposure at a date: days since its last dose, cumulative dose, on or off."""

    days_since_last_dose: int | None
    cumulative_dose_mg: float
    on_drug: bool


@dataclass(frozen=True)
class IndexDate:
    """The date ``day`` 0 falls on, and the rule that chose it (e.g. ``first MRI``)."""

    on: date
    rule: str

    def day(self, moment: date | datetime) -> int:
        """Whole days from the index date to ``moment`` (negative before it)."""
        when = moment.date() if isinstance(moment, datetime) else moment
        return (when - self.on).days

    def day_fraction(self, moment: datetime) -> float:
        """Days from 00:00 of the index date to ``moment``, with the time of day as a fraction."""
        start = datetime.combine(self.on, datetime.min.time())
        return (moment - start) / timedelta(days=1)


@dataclass
class ClinicalCourse:
    """A case's clinical record placed in time (see :func:`place_in_time`)."""

    patient: Patient
    administrations: list[Administration]
    events: list[DatedEvent]
    labs: list[DatedLab]
    day0: date | None
    horizon: date | None
    notes: list[str] = field(default_factory=list)

    @property
    def drugs(self) -> list[str]:
        """Drugs with at least one administration, in order of first administration."""
        return list(dict.fromkeys(a.drug for a in self.administrations))

    def given(self, drug: str | None = None) -> list[Administration]:
        """Given administrations (of ``drug``, or all), in time order."""
        return [a for a in self.administrations if a.given and drug in (None, a.drug)]

    def first_dose(self) -> datetime | None:
        """The first given administration of any drug."""
        given = self.given()
        return given[0].at if given else None

    def exposure_at(self, drug: str, when: date) -> ExposureState:
        """Exposure to ``drug`` on the date ``when`` (administrations that day count as before)."""
        before = [a for a in self.given(drug) if a.at.date() <= when]
        on = any(p.start <= when <= p.end for p in self.periods(drug) if p.state == "on")
        if not before:
            return ExposureState(None, 0.0, on)
        return ExposureState((when - before[-1].at.date()).days, sum(a.dose_mg for a in before), on)

    def periods(self, drug: str, until: date | None = None) -> list[Period]:
        """Drug-on and drug-off periods of ``drug`` from its first administration to ``until``.

        Administrations belong to one on-period while each follows the one before within its
        scheduled interval (at least one day): lenalidomide on days 1-21 of a 28-day cycle gives
        21 days on, 7 off; weekly dexamethasone or daratumumab gives one period from the first to the
        last dose. After the last on-period, off runs to ``until`` (default: the course's horizon).
        """
        given = self.given(drug)
        if not given:
            return []
        until = until or self.horizon
        runs: list[list[Administration]] = [[given[0]]]
        for earlier, later in pairwise(given):
            gap = (later.at.date() - earlier.at.date()).days
            if gap <= max(earlier.interval_days, 1):
                runs[-1].append(later)
            else:
                runs.append([later])
        out: list[Period] = []
        for number, run in enumerate(runs):
            start, end = run[0].at.date(), run[-1].at.date()
            out.append(Period(drug, "on", start, end))
            following = runs[number + 1][0].at.date() if number + 1 < len(runs) else None
            off_end = following - timedelta(days=1) if following else until
            if off_end is not None and off_end > end:
                out.append(Period(drug, "off", end + timedelta(days=1), off_end))
        return out

    def age_years_at(self, when: date) -> float | None:
        """The patient's age at ``when`` (from birth_date, or age_years at day 0 plus elapsed time)."""
        if self.patient.birth_date is not None:
            return (when - self.patient.birth_date).days / 365.25
        if self.patient.age_years is not None:
            elapsed = (when - self.day0).days / 365.25 if self.day0 else 0.0
            return self.patient.age_years + elapsed
        return None


def _problem(source: str, column: str, message: str, paths: dict[str, Path]) -> Problem:
    name, line = source.rsplit(":", 1)
    return Problem(paths.get(name, Path(name)), int(line), column, message)


def _dose_mg(row: ExposureRow, patient: Patient) -> float:
    if row.unit == "mg/kg":
        assert patient.weight_kg is not None  # checked when the file was read
        return row.dose * patient.weight_kg
    if row.unit == "mg/m2":
        assert patient.weight_kg is not None and patient.height_cm is not None
        return row.dose * body_surface_area_m2(patient.weight_kg, patient.height_cm)
    return row.dose * DOSE_UNITS[row.unit]


def place_in_time(
    record: ClinicalRecord,
    *,
    first_mri: date | None = None,
    horizon: date | None = None,
    folder: Path | None = None,
) -> ClinicalCourse:
    """Expand the schedules and place every item of ``record`` on the calendar.

    Parameters
    ----------
    record : ClinicalRecord
        The checked clinical files.
    first_mri : date, optional
        The first MRI; day numbers in the files count from it unless patient.csv sets ``day0_date``.
    horizon : date, optional
        The last date of interest (e.g. the last MRI); open-ended regimens without an end date or a
        ``drug_stop`` event run up to it, or to the latest dated item of the files.
    folder : Path, optional
        The case folder, to name the files in error messages.

    Raises
    ------
    ClinicalFileError
        A day number with no date to count from; a held row that matches no scheduled dose; an
        end before its start.
    """
    paths = {name: (folder or Path()) / name for name in record.files}
    day0 = record.patient.day0_date or first_mri
    problems: list[Problem] = []

    def at(when: When, source: str, column: str) -> datetime:
        if when.at is None and day0 is None:
            problems.append(
                _problem(
                    source,
                    column,
                    "a day number needs a date to count from: add day0_date to patient.csv "
                    "(the case has no MRI)",
                    paths,
                )
            )
            return datetime(1970, 1, 1)
        return when.resolve(day0)

    events = sorted(
        (
            DatedEvent(at(e.when, e.source, "date"), e.kind, e.label, e.drug, e.note, e.source)
            for e in record.events
        ),
        key=lambda e: e.at,
    )
    labs = sorted(
        (
            DatedLab(
                at(x.when, x.source, "date"),
                x.specimen,
                x.analyte,
                x.value,
                x.unit,
                x.value_mg_l,
                x.note,
                x.source,
            )
            for x in record.labs
        ),
        key=lambda x: x.at,
    )
    starts = {row.source: at(row.start, row.source, "start") for row in record.exposures}
    ends = {
        row.source: at(row.end, row.source, "end").date()
        for row in record.exposures
        if row.end is not None
    }
    if problems:
        raise ClinicalFileError(problems)
    dated = [*starts.values(), *(e.at for e in events), *(x.at for x in labs)]
    last = max([d.date() for d in dated] + list(ends.values()), default=None)
    horizon = horizon or last
    if horizon is not None and last is not None:
        horizon = max(horizon, last)

    notes: list[str] = []
    administrations: list[Administration] = []
    for row in (r for r in record.exposures if not r.held):
        start = starts[row.source]
        stops = [
            e.at.date()
            for e in events
            if e.kind == "drug_stop" and e.drug in ("", row.drug) and e.at.date() > start.date()
        ]
        stop = min(stops, default=None)
        end = ends.get(row.source)
        if end is None and row.schedule.open_ended:
            if stop is not None:
                end = stop - timedelta(days=1)
            else:
                end = horizon
                notes.append(
                    f"{row.drug} ({row.source}): open-ended schedule with no end date or drug_stop "
                    f"event, expanded up to {end.isoformat() if end else '?'}"
                )
        try:
            scheduled = expand(row.schedule, start, end)
        except ValueError as error:
            problems.append(_problem(row.source, "end", str(error), paths))
            continue
        if stop is not None:
            scheduled = [s for s in scheduled if s.at.date() < stop]
        dose_mg = _dose_mg(row, record.patient)
        for s in scheduled:
            administrations.append(
                Administration(
                    drug=row.drug,
                    drug_label=row.drug_label,
                    at=s.at,
                    dose=row.dose,
                    dose_unit=row.unit,
                    dose_mg=dose_mg,
                    route=row.route,
                    duration_h=row.duration_h,
                    given=True,
                    interval_days=s.interval_days,
                    cycle=s.cycle,
                    cycle_day=s.cycle_day,
                    regimen=row.regimen,
                    schedule=row.schedule.text,
                    source=row.source,
                )
            )
    administrations.sort(key=lambda a: (a.at, a.drug))
    for row in (r for r in record.exposures if r.held):
        first = starts[row.source].date()
        last_held = ends.get(row.source, first)
        hits = [
            i
            for i, a in enumerate(administrations)
            if a.drug == row.drug and a.given and first <= a.at.date() <= last_held
        ]
        if not hits:
            problems.append(
                _problem(
                    row.source,
                    "start",
                    f"no scheduled {row.drug} administration on {first.isoformat()}"
                    + (f" to {last_held.isoformat()}" if last_held != first else "")
                    + " to hold; check the date",
                    paths,
                )
            )
        for i in hits:
            a = administrations[i]
            administrations[i] = Administration(
                **{**a.__dict__, "given": False, "source": f"{a.source}, held {row.source}"}
            )
    if problems:
        raise ClinicalFileError(problems)
    administrations = _infusion_times(administrations)
    return ClinicalCourse(record.patient, administrations, events, labs, day0, horizon, notes)


def _infusion_times(administrations: list[Administration]) -> list[Administration]:
    """Fill in the label infusion times of IV daratumumab (7, 4, then 3 h) where none is given."""
    out = []
    count = 0
    for a in administrations:
        if a.drug.startswith("daratumumab") and a.route == "IV" and a.given:
            if a.duration_h is None:
                hours = DARATUMUMAB_IV_INFUSION_H[min(count, 2)]
                a = Administration(**{**a.__dict__, "duration_h": hours, "duration_assumed": True})
            count += 1
        out.append(a)
    return out


def choose_index_date(
    course: ClinicalCourse | None, *, first_mri: date | None, override: str | None = None
) -> IndexDate:
    """The index date (day 0 of every output), chosen once per case.

    The rule is ``override`` (e.g. from the command line), else ``index_date`` in patient.csv, else
    the first MRI, else the first dose, else the earliest dated item. Rules: ``first_mri``,
    ``first_dose``, ``symptom_onset``, ``admission``, ``drug_stop`` (the first such event), or a
    date (YYYY-MM-DD).

    Raises
    ------
    ClinicalError
        When the rule names something the case does not have (e.g. symptom onset with no such event).
    """
    patient = course.patient if course else Patient()
    rule = (
        override
        or patient.index_rule
        or (patient.index_date.isoformat() if patient.index_date else None)
    )
    if rule is None:
        if first_mri is not None:
            return IndexDate(first_mri, "first MRI")
        if course is not None and course.first_dose() is not None:
            return IndexDate(course.first_dose().date(), "first dose")  # type: ignore[union-attr]
        dated = [e.at for e in course.events] + [x.at for x in course.labs] if course else []
        if dated:
            return IndexDate(min(dated).date(), "earliest dated item")
        raise ClinicalError("no date to count days from: the case has no MRI and no dated items")
    rule = rule.strip().lower()
    if rule == "first_mri":
        if first_mri is None:
            raise ClinicalError(
                "index_date first_mri, but the case has no MRI; choose another rule"
            )
        return IndexDate(first_mri, "first MRI")
    if rule == "first_dose":
        first = course.first_dose() if course else None
        if first is None:
            raise ClinicalError("index_date first_dose, but exposures.csv gives no administration")
        return IndexDate(first.date(), "first dose")
    if rule in ("symptom_onset", "admission", "drug_stop"):
        hits = [e.at for e in course.events if e.kind == rule] if course else []
        if not hits:
            raise ClinicalError(f"index_date {rule}, but events.csv has no {rule} event")
        return IndexDate(min(hits).date(), rule.replace("_", " "))
    try:
        return IndexDate(date.fromisoformat(rule), "given date")
    except ValueError:
        raise ClinicalError(
            f"index date {rule!r}: use first_mri, first_dose, symptom_onset, admission, drug_stop "
            "or a date (YYYY-MM-DD)"
        ) from None
