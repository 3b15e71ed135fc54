"""Every table leukotrack writes (the case TSVs, cohort.tsv, the exports' TSV and Parquet, the
dashboard's downloads) passes its cells through :func:`safe_cell`: the one guard against CSV/formula
injection (OWASP "CSV Injection").

Text that came from a clinical file or a folder name and starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return would run as a formula when the table is opened in a spreadsheet
(``=cmd|' /C calc'!A0``, ``@SUM(1+1)``, ``=IMPORTXML(...)``). Such a cell is written with a leading
apostrophe, which spreadsheets show as text and do not evaluate, as OWASP recommends. Numbers are
never touched: a cell that is a plain number (``-60``, ``-1.5e-3``, ``+2``) stays as it is, so negative
days and values keep their meaning and numeric columns stay numeric; the guard is idempotent (an
escaped cell starts with the apostrophe and is left alone).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from imaging.quantify import as_cell

__all__ = ["FORMULA_TRIGGERS", "safe_cell", "safe_frame", "write_tsv"]

#: First characters that make a spreadsheet treat a cell as a formula (OWASP).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|nan)", re.IGNORECASE)


def safe_cell(value: Any) -> Any:
    """``value``, with a leading apostrophe when it is text a spreadsheet would run as a formula.

    >>> safe_cell("=cmd|' /C calc'!A0"), safe_cell("@SUM(1+1)"), safe_cell("-60"), safe_cell(-60)
    ("'=cmd|' /C calc'!A0", "'@SUM(1+1)", '-60', -60)
    """
    formula = isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)
    return "'" + value if formula and not _NUMBER.fullmatch(value) else value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`safe_cell` applied to its text columns (numbers untouched)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(safe_cell)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out


def write_tsv(path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
    """Write ``rows`` as a tab-separated table with a header of ``columns`` (missing cells empty).

    Cells pass :func:`imaging.quantify.as_cell` (None and NaN empty, 4 decimals) and
    :func:`safe_cell`.
    """
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow([safe_cell(c) for c in columns])
        for row in rows:
            writer.writerow([safe_cell(as_cell(row.get(column))) for column in columns])
