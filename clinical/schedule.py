"""Dosing schedules as clinicians write them, expanded to dated administrations.

A schedule is one or more phases separated by ``;`` or ``then``; each phase is one of

========================================  ==================================================
``once`` (or an empty cell)               a single administration at the start
``daily``, ``weekly``                     every 1 or 7 days
``every N days`` / ``every N weeks``      also written ``qNd`` / ``qNw`` (``q2w``, ``q28d``)
``days 1-21 of 28``                       cycles of 28 days, dosed on days 1 to 21 of each;
                                          day lists combine ranges and single days:
                                          ``days 1,8,15,22 of 28``, ``days 1-4,9-12 of 28``
========================================  ==================================================

followed by an optional count: ``x8`` (administrations, or cycles for a cycle phase), also written
``x 8``, ``for 8 doses`` or ``for 6 cycles``. Phases follow one another without a gap (the next phase
starts one interval after the last administration of the one before, or at the end of the last
cycle). Only the last phase may be open (no count): it then runs up to the regimen's end date.

Example: daratumumab 16 mg/kg IV ``weekly x8; every 2 weeks x8; every 4 weeks`` (the label
schedule); lenalidomide 25 mg PO ``days 1-21 of 28``.

Written by hand because no maintained Python package parses regimen text; the grammar is small and
every phrase of it is in the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = [
    "MAX_ADMINISTRATIONS",
    "MAX_INTERVAL_DAYS",
    "Phase",
    "Schedule",
    "Scheduled",
    "expand",
    "parse_schedule",
]

#: Most administrations one line of exposures.csv may expand to (27 years of a daily drug): a
#: ``daily x100000000`` is a typing error, not a regimen, and would exhaust memory.
MAX_ADMINISTRATIONS = 10000
#: Longest interval or cycle length of a phase, days (ten years).
MAX_INTERVAL_DAYS = 3653


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule.

    Attributes
    ----------
    interval_days : int
        Days between administrations (``every``), or the cycle length (``cycle``).
    cycle_days : tuple of int
        Dosing days within a cycle, 1-based (empty for ``once`` and ``every``).
    count : int or None
        Number of administrations (``once``, ``every``) or cycles (``cycle``); None = open.
    """

    kind: str  # "once", "every" or "cycle"
    interval_days: int
    cycle_days: tuple[int, ...] = ()
    count: int | None = None
    text: str = ""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: its phases in order, and the text it came from."""

    phases: tuple[Phase, ...]
    text: str

    @property
    def open_ended(self) -> bool:
        """True when the last phase has no count (it needs an end date)."""
        return self.phases[-1].count is None


@dataclass(frozen=True)
class Scheduled:
    """One administration produced by :func:`expand`.

    ``cycle`` and ``cycle_day`` (1-based) are set for cycle phases, counted over the whole regimen;
    ``interval_days`` is the scheduled spacing to the next administration of the same phase (1 within
    the dosing days of a cycle).
    """

    at: datetime
    phase: int
    interval_days: int
    cycle: int | None = None
    cycle_day: int | None = None


_COUNT = re.compile(
    r"\s*(?:(?:x|×)\s*(\d+)|for\s+(\d+)\s*(?:doses?|administrations?|cycles?|times?))"
    r"(?:\s*(?:doses?|cycles?))?\s*$"
)
_EVERY = re.compile(r"^every\s+(\d+)\s*(day|days|week|weeks|d|w)$|^q\s*(\d+)\s*(d|w)$|^q(d)$")
_CYCLE = re.compile(
    r"^(?:days?|d)\s*([\d\s,\-–]+?)\s*(?:of|every|q)\s*(\d+)(?:\s*(?:-?\s*days?|d))?"
    r"(?:\s*cycles?)?$"
)


def _int(digits: str, what: str, limit: int) -> int:
    """A whole number of at most ``limit``, read from a phase (ValueError beyond it)."""
    if len(digits) > 9 or int(digits) > limit:
        raise ValueError(f"{what} {digits[:12]} is above the limit of {limit}; check the schedule")
    return int(digits)


def _day_list(text: str) -> tuple[int, ...]:
    days: set[int] = set()
    for part in re.split(r"\s*,\s*", text.strip()):
        if not part:
            continue
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 1:
            days.add(_int(bounds[0], "day", MAX_INTERVAL_DAYS))
        elif len(bounds) == 2:
            low = _int(bounds[0], "day", MAX_INTERVAL_DAYS)
            high = _int(bounds[1], "day", MAX_INTERVAL_DAYS)
            if high < low:
                raise ValueError(f"day range {part!r} runs backwards")
            days.update(range(low, high + 1))
        else:
            raise ValueError(f"day range {part!r} is not like 1-21")
    return tuple(sorted(days))


def _phase(text: str) -> Phase:
    spoken = text.strip().lower()
    count: int | None = None
    match = _COUNT.search(spoken)
    if match:
        count = _int(match.group(1) or match.group(2), "count", MAX_ADMINISTRATIONS)
        if count < 1:
            raise ValueError(f"{text!r}: a count must be at least 1")
        spoken = spoken[: match.start()].strip()
    if spoken in ("", "once", "single", "single dose"):
        if count not in (None, 1):
            raise ValueError(f"{text!r}: 'once' cannot have a count")
        return Phase("once", 0, (), 1, text.strip())
    if spoken == "daily":
        return Phase("every", 1, (), count, text.strip())
    if spoken == "weekly":
        return Phase("every", 7, (), count, text.strip())
    match = _EVERY.match(spoken)
    if match:
        if match.group(5):  # "qd"
            return Phase("every", 1, (), count, text.strip())
        unit = match.group(2) or match.group(4)
        interval = _int(match.group(1) or match.group(3), "interval", MAX_INTERVAL_DAYS) * (
            7 if unit.startswith("w") else 1
        )
        if interval > MAX_INTERVAL_DAYS:
            raise ValueError(
                f"{text.strip()!r}: an interval above {MAX_INTERVAL_DAYS} days; check the schedule"
            )
        if interval < 1:
            raise ValueError(f"{text!r}: the interval must be at least one day")
        return Phase("every", interval, (), count, text.strip())
    match = _CYCLE.match(spoken)
    if match:
        length = _int(match.group(2), "cycle length", MAX_INTERVAL_DAYS)
        days = _day_list(match.group(1))
        if not days or days[0] < 1 or days[-1] > length:
            raise ValueError(f"{text!r}: dosing days must lie within the {length}-day cycle")
        return Phase("cycle", length, days, count, text.strip())
    raise ValueError(
        f"{text!r} is not a schedule phase; write e.g. 'once', 'daily', 'weekly x8', "
        "'every 2 weeks x8', 'q4w', 'days 1-21 of 28 x6'"
    )


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule (grammar in the module docstring).

    >>> [(p.kind, p.interval_days, p.count) for p in parse_schedule("weekly x8; q2w x8; q4w").phases]
    [('every', 7, 8), ('every', 14, 8), ('every', 28, None)]
    >>> parse_schedule("days 1-21 of 28").phases[0].cycle_days[-1]
    21

    Raises
    ------
    ValueError
        When a phase does not parse, or an open phase is not the last one.
    """
    parts = re.split(r"\s*(?:;|\bthen\b)\s*", text.strip(), flags=re.IGNORECASE)
    parts = [p for p in parts if p.strip()] or ["once"]
    phases = tuple(_phase(p) for p in parts)
    for phase in phases[:-1]:
        if phase.count is None:
            raise ValueError(
                f"phase {phase.text!r} has no count but is not the last; add one, e.g. 'x8'"
            )
    return Schedule(phases, text.strip())


def expand(schedule: Schedule, start: datetime, end: date | None) -> list[Scheduled]:
    """Dated administrations of ``schedule`` from ``start`` up to ``end`` (inclusive).

    Parameters
    ----------
    schedule : Schedule
        The parsed schedule.
    start : datetime
        The first administration (day 1 of the first cycle).
    end : date or None
        Last day of the regimen, inclusive; None when every phase has a count.

    Returns
    -------
    list of Scheduled
        In time order.

    Raises
    ------
    ValueError
        When the schedule is open-ended and no end is given, the end precedes the start, or the
        schedule expands to more than :data:`MAX_ADMINISTRATIONS` administrations.

    Examples
    --------
    >>> from datetime import datetime
    >>> s = parse_schedule("days 1-2 of 7 x2")
    >>> [(a.at.day, a.cycle, a.cycle_day) for a in expand(s, datetime(2024, 1, 1, 9), None)]
    [(1, 1, 1), (2, 1, 2), (8, 2, 1), (9, 2, 2)]
    """
    if end is not None and end < start.date():
        raise ValueError(
            f"the end {end.isoformat()} is before the start {start.date().isoformat()}"
        )
    if schedule.open_ended and end is None:
        raise ValueError(
            f"the schedule {schedule.text!r} is open-ended: give an end date, a count (e.g. 'x8') "
            "or a drug_stop event"
        )
    out: list[Scheduled] = []

    def within(moment: datetime) -> bool:
        inside = end is None or moment.date() <= end
        if inside and len(out) >= MAX_ADMINISTRATIONS:
            raise ValueError(
                f"the schedule {schedule.text[:60]!r} expands to more than {MAX_ADMINISTRATIONS} "
                "administrations"
                + (f" up to {end.isoformat()}" if end is not None else "")
                + "; check the count, the interval and the end date"
            )
        return inside

    try:
        return _expand(schedule, start, within, out)
    except OverflowError:
        raise ValueError(
            f"the schedule {schedule.text[:60]!r} runs past the year 9999; check the count and "
            "the interval"
        ) from None


def _expand(
    schedule: Schedule, start: datetime, within: Callable[[datetime], bool], out: list[Scheduled]
) -> list[Scheduled]:
    """The loop of :func:`expand`, appending to ``out``; ``within`` says whether a moment is in."""
    cursor = start
    cycle = 0
    for index, phase in enumerate(schedule.phases):
        if phase.kind == "once":
            if within(cursor):
                out.append(Scheduled(cursor, index, 0))
            cursor = cursor + timedelta(days=1)
            continue
        if phase.kind == "every":
            k = 0
            while phase.count is None or k < phase.count:
                moment = cursor + timedelta(days=k * phase.interval_days)
                if not within(moment):
                    break
                out.append(Scheduled(moment, index, phase.interval_days))
                k += 1
            cursor = cursor + timedelta(days=(phase.count or k) * phase.interval_days)
            continue
        c = 0
        while phase.count is None or c < phase.count:
            cycle_start = cursor + timedelta(days=c * phase.interval_days)
            if not within(cycle_start):
                break
            cycle += 1
            for j, day in enumerate(phase.cycle_days):
                moment = cycle_start + timedelta(days=day - 1)
                if not within(moment):
                    break
                following = phase.cycle_days[j + 1] if j + 1 < len(phase.cycle_days) else None
                spacing = following - day if following is not None else 0
                out.append(Scheduled(moment, index, spacing, cycle, day))
            c += 1
        cursor = cursor + timedelta(days=(phase.count or c) * phase.interval_days)
    return out
