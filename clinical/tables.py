"""Reading the clinical spreadsheets: CSV files with a header row, checked cell by cell.

Written on the standard :mod:`csv` module rather than pandas because every problem must point at its
line as the clinician sees it in a spreadsheet (header = line 1), and a pandas frame loses that.
Files saved by Excel are accepted as they come: UTF-8 with or without a byte-order mark, comma,
semicolon or tab as separator, and a decimal comma with the semicolon separator. Lines whose first
cell starts with ``#`` are comments; empty lines are skipped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from clinical.errors import Problem

__all__ = ["Row", "When", "parse_number", "parse_when", "read_table"]

#: A date without a time of day is taken at this time (administrations, samples, events).
DEFAULT_TIME = time(9, 0)


@dataclass(frozen=True)
class Row:
    """One data line of a clinical file: its 1-based line number and its cells by column name."""

    path: Path
    line: int
    cells: dict[str, str]
    decimal_comma: bool = False

    def get(self, column: str) -> str:
        """The stripped cell of ``column`` ('' when the column or the cell is empty)."""
        return (self.cells.get(column) or "").strip()

    def problem(self, column: str | None, message: str) -> Problem:
        """A :class:`Problem` located at this line and ``column``."""
        return Problem(self.path, self.line, column, message)

    @property
    def source(self) -> str:
        """``file:line``, recorded with everything derived from this row."""
        return f"{self.path.name}:{self.line}"


@dataclass(frozen=True)
class When:
    """A point in time as written: a calendar date (optionally with a time) or a day number.

    Day numbers count from the case's day-0 date (``day0_date`` in patient.csv, else the first MRI).
    """

    at: datetime | None = None
    day: float | None = None
    has_time: bool = False

    def resolve(self, day0: date | None) -> datetime:
        """The absolute date and time; day numbers need ``day0`` (a :class:`ValueError` otherwise)."""
        if self.at is not None:
            return self.at
        if day0 is None or self.day is None:
            raise ValueError("a day number needs a day-0 date")
        return datetime.combine(day0, DEFAULT_TIME) + timedelta(days=self.day)


_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y%m%d")
_DAY = re.compile(r"^(?:day\s*|d)?([+-]?\d+(?:\.\d+)?)$", re.IGNORECASE)


def parse_when(text: str) -> When:
    """Parse an ISO date (``2023-03-14``, optionally ``T09:30``) or a day number (``-60``, ``day 3``).

    >>> parse_when("2023-03-14").at
    datetime.datetime(2023, 3, 14, 9, 0)
    >>> parse_when("day -60").day
    -60.0

    Raises
    ------
    ValueError
        With a message saying which forms are accepted.
    """
    text = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        has_time = "H" in fmt
        return When(
            at=parsed if has_time else datetime.combine(parsed.date(), DEFAULT_TIME),
            has_time=has_time,
        )
    match = _DAY.match(text)
    if match:
        return When(day=float(match.group(1)))
    raise ValueError(
        f"{text!r} is neither a date (YYYY-MM-DD) nor a day number (e.g. -60 or day 3)"
    )


def parse_number(text: str, *, decimal_comma: bool = False) -> float:
    """Parse a number as a spreadsheet writes it (``1.5``; ``1,5`` in semicolon files).

    >>> parse_number("1,5", decimal_comma=True)
    1.5
    """
    cleaned = text.strip().replace("\u2009", "").replace(" ", "")
    if decimal_comma:
        cleaned = cleaned.replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def read_table(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[list[Row], list[Problem]]:
    """Read a clinical CSV file into rows; check its header.

    Parameters
    ----------
    path : Path
        The CSV file.
    required, optional : tuple of str
        Column names (matched case-insensitively, surrounding spaces ignored). Unknown columns are a
        problem (a typo would otherwise silently drop a value).

    Returns
    -------
    rows : list of Row
        The data lines (comments and empty lines skipped), column names normalised to lower case.
    problems : list of Problem
        Header problems (missing or unknown columns); empty when the header is right.
    """
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    header_line = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    delimiter = max((",", ";", "\t"), key=header_line.count) if header_line else ","
    decimal_comma = delimiter == ";"
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = [c for c in required if c not in header]
            unknown = [c for c in header if c and c not in required + optional]
            if missing:
                problems.append(
                    Problem(
                        path,
                        number,
                        None,
                        f"missing column(s) {', '.join(missing)}; "
                        f"the header needs {', '.join(required)}",
                    )
                )
            if unknown:
                problems.append(
                    Problem(
                        path,
                        number,
                        None,
                        f"unknown column(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(required + optional)}",
                    )
                )
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            problems.append(
                Problem(
                    path,
                    number,
                    None,
                    f"{len(cells)} cells but the header has "
                    f"{len(header)} columns (a separator inside a value? quote it)",
                )
            )
            continue
        rows.append(Row(path, number, dict(zip(header, cells, strict=False)), decimal_comma))
    if header is None:
        problems.append(
            Problem(path, 1, None, f"empty file; the header needs {', '.join(required)}")
        )
    return rows, problems
