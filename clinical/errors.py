"""Named errors of the clinical layer.

Every message names the file, the line and the column, says what is wrong and what to write instead.
A file with any error is rejected whole: nothing is written from it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ClinicalError", "ClinicalFileError", "MissingClinicalValueError", "Problem"]


class ClinicalError(Exception):
    """Base class of every error raised by :mod:`clinical`."""


class Problem:
    """One problem in one cell or line of a clinical file (1-based line numbers, as a spreadsheet)."""

    __slots__ = ("column", "line", "message", "path")

    def __init__(self, path: Path | str, line: int, column: str | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.message = message

    def __str__(self) -> str:
        where = f"{self.path.name}:{self.line}"
        if self.column:
            where += f" ({self.column})"
        return f"{where}: {self.message}"


class ClinicalFileError(ClinicalError):
    """One or more clinical files are malformed; ``problems`` lists every one found.

    The message shows the first problems, each as ``file:line (column): what to do``.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"clinical files rejected, nothing written: {shown}{more}")


class MissingClinicalValueError(ClinicalError):
    """A computation needs a value the clinical files do not give (e.g. the weight for mg/kg)."""
