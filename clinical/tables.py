"""Reading the clinical spreadsheets: CSV files with a header row, checked cell by cell.

Written on the standard :mod:`csv` module rather than pandas because every problem must point at its
line as the clinician sees it in a spreadsheet (header = line 1), and a pandas frame loses that.
Files saved by Excel are accepted as they come: comma, semicolon or tab as separator, and a decimal
comma with the semicolon separator. Lines whose first cell starts with ``#`` are comments; empty lines
are skipped.

Encodings (:func:`decode_text`): a byte-order mark decides (UTF-8, UTF-16 or UTF-32, as Excel's
"CSV UTF-8" and "Unicode text" write them); without one the file must be UTF-8, else it is read as
Windows-1252 (the stated fallback: Excel's plain "CSV" on Western Windows; identical to latin-1 for
every printable latin-1 character), and a warning says so. Text that is neither (NUL bytes, bytes
Windows-1252 leaves undefined) is refused with the encoding to save as. Encodings are not guessed
statistically (e.g. charset-normalizer): on short files such guesses are unstable, and a wrong guess
silently changes names and units.

Limits: a file of at most :data:`MAX_FILE_BYTES`, cells of at most :data:`MAX_CELL_CHARS` characters
(Excel's own cell limit, so nothing a spreadsheet can write is refused).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from clinical.errors import ClinicalFileError, Problem
from safeio.text import FALLBACK_ENCODING, TextDecodeError
from safeio.text import decode_text as _decode

__all__ = [
    "MAX_CELL_CHARS",
    "MAX_DAY_NUMBER",
    "MAX_FILE_BYTES",
    "MAX_YEAR",
    "MIN_YEAR",
    "Row",
    "When",
    "decode_text",
    "parse_number",
    "parse_when",
    "read_table",
    "shown",
]

#: Largest clinical file read, bytes (a spreadsheet of a single patient is a few kB).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Longest cell, characters: Excel's limit of 32,767 characters per cell.
MAX_CELL_CHARS = 32767
#: Largest day number (days from day 0) accepted, about a century: beyond it, write a date.
MAX_DAY_NUMBER = 36525
#: Years a date may have: beyond them a date is a typing error (years from 1000 are accepted, and
#: the record warns before 1900, so that arithmetic on dates never leaves the calendar).
MIN_YEAR, MAX_YEAR = 1000, 2999
#: Byte-order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one).
_SAVE_AS = "save it from the spreadsheet as 'CSV UTF-8 (comma delimited)'"

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
_DAY = re.compile(r"^(?:day\s*|d)?([+-]?\d{1,9}(?:\.\d{1,9})?)$", re.IGNORECASE)
#: A plain decimal number: sign, digits, decimals, exponent (no inf, nan, 0x, 1_000).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")


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
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            raise ValueError(
                f"{shown(text)}: the year {parsed.year} is outside {MIN_YEAR}-{MAX_YEAR}; "
                "check the date"
            )
        has_time = "H" in fmt
        return When(
            at=parsed if has_time else datetime.combine(parsed.date(), DEFAULT_TIME),
            has_time=has_time,
        )
    match = _DAY.match(text)
    if match:
        day = float(match.group(1))
        if abs(day) > MAX_DAY_NUMBER:
            raise ValueError(
                f"{text!r}: a day number beyond {MAX_DAY_NUMBER} days (a century) from day 0; "
                "write a date (YYYY-MM-DD)"
            )
        return When(day=day)
    raise ValueError(
        f"{shown(text)} is neither a date (YYYY-MM-DD) nor a day number (e.g. -60 or day 3)"
    )


def parse_number(text: str, *, decimal_comma: bool = False) -> float:
    """Parse a number as a spreadsheet writes it (``1.5``; ``1,5`` in semicolon files).

    >>> parse_number("1,5", decimal_comma=True)
    1.5

    Raises
    ------
    ValueError
        For anything but a plain finite number (``inf``, ``nan``, ``1e999``, ``0x10``, ``12 mg``).
    """
    cleaned = text.strip().replace("\u2009", "").replace(" ", "")
    if decimal_comma:
        cleaned = cleaned.replace(",", ".")
    if not _NUMBER.fullmatch(cleaned):
        raise ValueError(f"{shown(text)} is not a number")
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError(f"{shown(text)} is too large a number")
    return value


def _printable(text: str) -> str:
    """``text`` without control characters (a header cell quoted in a message, unquoted)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def shown(text: str, limit: int = 40) -> str:
    """A cell quoted for a message, shortened to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def decode_text(data: bytes, path: Path) -> tuple[str, str]:
    """The text of a clinical file and the encoding it was read with (:func:`safeio.text.decode_text`).

    Raises
    ------
    ClinicalFileError
        When the bytes are not text in any accepted encoding; the message says what to save as.
    """
    try:
        return _decode(data)
    except TextDecodeError as error:
        raise ClinicalFileError([Problem(path, error.line, None, f"{error}; {_SAVE_AS}")]) from None


def _read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, refusing files above :data:`MAX_FILE_BYTES` without reading them."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ClinicalFileError(
            [Problem(path, 1, None, f"cannot be read ({error.strerror or error}); check it")]
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ClinicalFileError(
            [
                Problem(
                    path,
                    1,
                    None,
                    f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a clinical spreadsheet "
                    "of one patient; check that the right file is named so",
                )
            ]
        )
    return data


def read_table(
    path: Path,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    warnings: list[str] | None = None,
) -> tuple[list[Row], list[Problem]]:
    """Read a clinical CSV file into rows; check its header.

    Parameters
    ----------
    path : Path
        The CSV file.
    required, optional : tuple of str
        Column names (matched case-insensitively, surrounding spaces ignored). Unknown columns are a
        problem (a typo would otherwise silently drop a value).
    warnings : list of str, optional
        Receives a warning when the file is not UTF-8 (the encoding it was read with).

    Returns
    -------
    rows : list of Row
        The data lines (comments and empty lines skipped), column names normalised to lower case.
    problems : list of Problem
        Header problems (missing or unknown columns), broken lines and over-long cells; empty when
        the file is right.

    Raises
    ------
    ClinicalFileError
        When the file cannot be read as text at all (size, encoding).
    """
    text, encoding = decode_text(_read_bytes(path), path)
    if encoding == FALLBACK_ENCODING and warnings is not None:
        warnings.append(
            f"{path.name}: not UTF-8, read as Windows-1252 (latin-1); check accented names and "
            f"units (µg), or {_SAVE_AS}"
        )
    first = next(
        (ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
    )
    delimiter = max((",", ";", "\t"), key=first.count) if first else ","
    decimal_comma = delimiter == ";"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[Row] = []
    problems: list[Problem] = []
    number = 1
    while True:
        number = reader.line_num + 1  # the line this record starts on (1-based)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                message = (
                    f"a cell longer than {csv.field_size_limit()} characters, more than a "
                    f"spreadsheet cell holds ({MAX_CELL_CHARS}); shorten it"
                )
            else:
                message = f"cannot be split into cells ({error}); check the line"
            problems.append(Problem(path, number, None, message))
            break  # the reader cannot resume after a broken record
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        long = [i for i, c in enumerate(cells) if len(c) > MAX_CELL_CHARS]
        if long:
            column = header[long[0]] if header and long[0] < len(header) else None
            problems.append(
                Problem(
                    path,
                    number,
                    column,
                    f"a cell of {len(cells[long[0]])} characters, more than a spreadsheet cell "
                    f"holds ({MAX_CELL_CHARS}); shorten it",
                )
            )
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
                        f"unknown column(s) {', '.join(_printable(c)[:40] for c in unknown[:5])}; "
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
    if header is None and not problems:
        problems.append(
            Problem(path, 1, None, f"empty file; the header needs {', '.join(required)}")
        )
    return rows, problems
